"""hivegraph's read path against raw Chroma on the same collection, side by side in one process.

For each size N a `Memory` is built in a temporary folder as `open_memory`
wires the embedded profile: a SQLite journal (which holds the keyword index)
and an embedded Chroma space (`HashEmbedder`, 384 dimensions; one live
collection per user and kind). The records are LoCoMo turns
(`EpisodicMemory.record`, one batch per session) copied as separate users:
user i holds the turns of conversation i mod 8 (a few hundred each), the last
user cut so that exactly N records are written. The same vectors also go into
one shared raw Chroma collection with the user as metadata: the baseline, what
a raw-Chroma user would build. Then, once the store is closed:

- **open**: a fresh subprocess opens the store (`MemoryStore.open` plus the
  `HybridRetriever`) and reports the seconds it took and its resident memory
  (VmRSS) after opening and after one search; another fresh subprocess does the
  same for raw Chroma (`PersistentClient` + `get_collection`, importing chromadb
  only). Import time is not counted.
- **search**: in this process, the store and a raw client share one Chroma
  system on the folder. Each of Q seeded queries (a LoCoMo question of a
  random user's conversation) runs, after the warm-up queries and in rotating
  order: `Memory.recall(k=10)` (vector and keyword from the journal, fused,
  records loaded from the journal: the p50/p95 of the table),
  `Memory.search(k=10)` (vector only, records loaded), and raw
  `collection.query(n_results=10, where={"scope_user_id": user},
  include=["distances"])` on the shared collection, the query embedded by the
  same embedder inside the timed region (as hivegraph embeds it inside; no
  question is asked twice in a run, so its query cache never answers). `exact`
  is a numpy top-10 over the user's own vectors with the query embedded
  untimed: the floor any layout could reach. The
  top-10 overlap of `Memory.search` with raw Chroma checks both find the same
  records.
- **disk**: bytes under the folder (journal and Chroma) per record; **growth**:
  the factor by which p50 grows per tenfold of records, between adjacent sizes.

    .venv/bin/python benchmarks/read_path.py --json read_path.json   # 1k (hash and MiniLM), 10k, 100k
    .venv/bin/python benchmarks/read_path.py --sizes 1000 --queries 50  # a quick look
    .venv/bin/python benchmarks/read_path.py --sizes 1000 --records 1000000  # the million, once
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as `python benchmarks/read_path.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:  # imported where used, so that the raw Chroma probe loads chromadb alone
    from chromadb.api.models.Collection import Collection

    from benchmarks.locomo_retrieval import Conversation
    from hivegraph.memory.facade import Memory
    from hivegraph.models.embedder import Embedder

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
PREFIX = "read-path"
RAW_COLLECTION = "raw-shared"
K = 10
USER_KEY = "scope_user_id"


@dataclass(frozen=True)
class User:
    user_id: str
    conversation: Conversation
    records: int
    """How many of the conversation's turns this user holds (its first ones)."""


@dataclass(frozen=True)
class Query:
    text: str
    user_id: str


@dataclass(frozen=True)
class Probe:
    """What a fresh process measured: seconds to open, and resident MB after opening and after one search."""

    open_s: float
    rss_mb: float
    rss_after_query_mb: float
    first_query_ms: float
    """The first search after opening (it loads what it reads: one tenant's collection, or raw's whole one)."""


@dataclass
class Latencies:
    recall_ms: list[float]
    search_ms: list[float]
    raw_ms: list[float]
    exact_ms: list[float]
    overlap: list[float]


# ---------------------------------------------------------------- shared by both processes


def rss_mb() -> float:
    """This process's resident memory (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def chroma_folder(folder: Path) -> str:
    """The embedded Chroma folder, resolved (chromadb shares one system per path string in a process)."""
    return str((folder / "chroma").resolve())


def embedder_of(name: str) -> Embedder:
    """The benchmark's embedder: the hash embedder (384 dimensions) or the bundled MiniLM."""
    from hivegraph.models.testing import HashEmbedder

    if name == "minilm":
        from hivegraph.models.minilm import MiniLMEmbedder

        return MiniLMEmbedder()
    return HashEmbedder(DIM)


async def open_store(folder: Path, embedder: str) -> Memory:
    """Open the memory in `folder` as `open_memory` wires the embedded profile."""
    from hivegraph.memory.facade import Memory
    from hivegraph.memory.journal_sqlite import SqliteJournal
    from hivegraph.memory.stores.chroma import ChromaSpace

    space = ChromaSpace.persistent_at(chroma_folder(folder), prefix=PREFIX, embedder=embedder_of(embedder))
    try:
        memory = Memory.of(space, journal=SqliteJournal(folder / "journal.sqlite"))
    except BaseException:
        await space.aclose()
        raise
    try:
        return await memory.open()
    except BaseException:
        await memory.aclose()
        raise


# ---------------------------------------------------------------- probes (fresh subprocesses)


HIVEGRAPH_MODULES = (
    "hivegraph.memory.journal_sqlite", "hivegraph.memory.facade", "hivegraph.memory.stores.chroma",
    "hivegraph.models.testing", "hivegraph.models.minilm",
)  # fmt: skip
"""What `open_store` imports: imported before the clock starts, as chromadb is for the raw probe."""


async def probe_hivegraph(folder: Path, query: Query, embedder: str) -> Probe:
    from hivegraph.memory.types import Scope

    for module in HIVEGRAPH_MODULES:
        importlib.import_module(module)
    started = time.perf_counter()
    memory = await open_store(folder, embedder)
    open_s = time.perf_counter() - started
    opened = rss_mb()
    try:
        started = time.perf_counter()
        await memory.recall(query.text, scope=Scope(user_id=query.user_id), k=K)
        first_ms = (time.perf_counter() - started) * 1000
    finally:
        await memory.aclose()
    return Probe(open_s=open_s, rss_mb=opened, rss_after_query_mb=rss_mb(), first_query_ms=first_ms)


def probe_raw(folder: Path, query: Query, embedding: list[float]) -> Probe:
    import chromadb
    from chromadb.config import Settings

    started = time.perf_counter()
    client = chromadb.PersistentClient(path=chroma_folder(folder), settings=Settings(anonymized_telemetry=False))
    collection = client.get_collection(RAW_COLLECTION)
    open_s = time.perf_counter() - started
    opened = rss_mb()
    started = time.perf_counter()
    collection.query(query_embeddings=[embedding], n_results=K, where={USER_KEY: query.user_id}, include=["distances"])
    first_ms = (time.perf_counter() - started) * 1000
    return Probe(open_s=open_s, rss_mb=opened, rss_after_query_mb=rss_mb(), first_query_ms=first_ms)


def run_probe(kind: str) -> None:
    """The subprocess side: read the job from stdin, print the `Probe` as JSON."""
    job: dict[str, Any] = json.loads(sys.stdin.read())
    folder, query = Path(job["folder"]), Query(job["query"], job["user_id"])
    if kind == "hivegraph":
        probe = asyncio.run(probe_hivegraph(folder, query, job["embedder"]))
    else:
        probe = probe_raw(folder, query, [float(v) for v in job["embedding"]])
    print(json.dumps(probe.__dict__))


def probe(kind: str, folder: Path, query: Query, embedding: list[float], embedder: str) -> Probe:
    """Run one probe in a fresh interpreter (so its RSS holds nothing of this process)."""
    job = {"folder": str(folder), "query": query.text, "user_id": query.user_id, "embedding": embedding,
           "embedder": embedder}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.read_path", "--probe", kind],
        cwd=ROOT, input=json.dumps(job), capture_output=True, text=True, check=False, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{kind} probe failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Probe(**json.loads(done.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- data and ingest


def plan_users(conversations: Sequence[Conversation], records: int) -> list[User]:
    """Users holding copies of the conversations in turn, `records` turns in all."""
    users: list[User] = []
    left = records
    while left > 0:
        conversation = conversations[len(users) % len(conversations)]
        take = min(left, len(conversation.turns))
        users.append(User(f"user-{len(users):05d}", conversation, take))
        left -= take
    return users


def plan_queries(users: Sequence[User], count: int, rng: random.Random, asked: set[str]) -> list[Query]:
    """`count` queries: a random user each, asking a question of its conversation not in `asked` (then added).

    No question is asked twice in a run, so no query is answered from hivegraph's cache of query vectors.
    """
    queries: list[Query] = []
    while len(queries) < count:
        user = rng.choice(users)
        fresh = [q.text for q in user.conversation.questions if q.text not in asked]
        if not fresh:
            if all(q.text in asked for u in users for q in u.conversation.questions):
                raise ValueError(f"fewer than {count} distinct questions in the data")
            continue
        text = rng.choice(fresh)
        asked.add(text)
        queries.append(Query(text, user.user_id))
    return queries


def touch_queries(users: Sequence[User], timed: Sequence[Query], asked: set[str]) -> list[Query]:
    """One more warm-up query for each user that `timed` asks about, each a question not in `asked` (then added).

    So that every user's collections were searched once before the timing starts, as raw Chroma's one
    collection was: the table's latencies are a warm process's; the probes time a cold first search.
    """
    queries: list[Query] = []
    for user in users:
        if any(q.user_id == user.user_id for q in timed):
            text = next((q.text for q in user.conversation.questions if q.text not in asked), None)
            if text is not None:
                asked.add(text)
                queries.append(Query(text, user.user_id))
    return queries


async def ingest(folder: Path, users: Sequence[User], embedder: str) -> float:
    """Record every user's turns and fill the raw collection; returns hivegraph's seconds.

    Each session is one `episodic.record` batch; the sessions of one user are recorded
    concurrently (as the agents of a team write), users one after another.
    """
    memory = await open_store(folder, embedder)
    spent = 0.0
    try:
        for number, user in enumerate(users, start=1):
            started = time.perf_counter()
            await _record_user(memory, user)
            spent += time.perf_counter() - started
            if number % 20 == 0:
                print(f"  ingested {number}/{len(users)} users", file=sys.stderr, flush=True)
        await fill_raw(folder, memory)
        return spent
    finally:
        await memory.aclose()


async def _record_user(memory: Memory, user: User) -> None:
    from hivegraph.memory.episodic import Turn
    from hivegraph.memory.types import Scope

    turns = user.conversation.turns[: user.records]
    scope = Scope(user_id=user.user_id)

    async def session(number: int) -> None:
        batch = [
            Turn(speaker=t.speaker, text=t.text, occurred_at=t.occurred_at, turn=t.index)
            for t in turns
            if t.session == number
        ]
        await memory.episodic.record(batch, scope=scope, session_id=f"session_{number}")

    await asyncio.gather(*(session(number) for number in sorted({turn.session for turn in turns})))


async def fill_raw(folder: Path, memory: Memory) -> None:
    """The baseline: every current version's vector in one shared collection, the user as metadata."""
    import chromadb

    from hivegraph.memory.stores.chroma_client import chroma_settings, close_client

    client = chromadb.PersistentClient(path=chroma_folder(folder), settings=chroma_settings())
    try:
        raw = client.create_collection(RAW_COLLECTION, configuration={"hnsw": {"space": "cosine"}},
                                       embedding_function=None)  # fmt: skip
        for name in await memory.store.space.names():
            if not name.startswith("live-"):
                continue
            items = await memory.store.space.collection(name).get()
            for start in range(0, len(items), 2000):
                chunk = items[start : start + 2000]
                vectors = memory.store.space.embedder.embed([item.text for item in chunk])
                raw.add(ids=[item.id for item in chunk], embeddings=[list(v) for v in vectors],
                        metadatas=[{USER_KEY: str(item.metadata[USER_KEY])} for item in chunk])  # fmt: skip
    finally:
        close_client(client)


def disk_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def raw_disk_bytes(folder: Path) -> int:
    """Bytes of the raw collection's vector segment (its rows in Chroma's SQLite file are not separable)."""
    import chromadb

    from hivegraph.memory.stores.chroma_client import chroma_settings, close_client

    client = chromadb.PersistentClient(path=chroma_folder(folder), settings=chroma_settings())
    try:
        raw_id = str(client.get_collection(RAW_COLLECTION).id)
    finally:
        close_client(client)
    segments = [p for p in Path(chroma_folder(folder)).iterdir() if p.is_dir()]
    return sum(disk_bytes(p) for p in segments if _segment_of(p) == raw_id)


def _segment_of(folder: Path) -> str | None:
    import sqlite3

    db = sqlite3.connect(folder.parent / "chroma.sqlite3")
    try:
        row = db.execute("SELECT collection FROM segments WHERE id = ?", (folder.name,)).fetchone()
    finally:
        db.close()
    return str(row[0]) if row else None


# ---------------------------------------------------------------- search latency (this process)


async def measure(
    folder: Path, records: int, warmup: Sequence[Query], timed: Sequence[Query], embedder: str
) -> Latencies:
    """Time `Memory.recall`, `Memory.search`, raw Chroma and exact numpy, query by query."""
    import chromadb

    from hivegraph.memory.stores.chroma_client import chroma_settings, close_client

    memory = await open_store(folder, embedder)
    client = chromadb.PersistentClient(path=chroma_folder(folder), settings=chroma_settings())  # the same system
    try:
        collection = client.get_collection(RAW_COLLECTION)
        if collection.count() != records:
            raise RuntimeError(f"the raw collection holds {collection.count()} items, not {records}")
        vectors = _user_vectors(collection, {q.user_id for q in (*warmup, *timed)})
        latencies = Latencies([], [], [], [], [])
        for turn, query in enumerate(warmup):
            await _one(memory, collection, vectors, query, turn, Latencies([], [], [], [], []))
        for turn, query in enumerate(timed):
            await _one(memory, collection, vectors, query, turn, latencies)
        return latencies
    finally:
        close_client(client)
        await memory.aclose()


def _user_vectors(collection: Collection, users: set[str]) -> dict[str, tuple[list[str], Any]]:
    """Each user's ids and unit vectors from the raw collection (for the exact search; not timed)."""
    import numpy as np

    found: dict[str, tuple[list[str], Any]] = {}
    for user in sorted(users):
        got = collection.get(where={USER_KEY: user}, include=["embeddings"])
        matrix = np.asarray(got["embeddings"], dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        found[user] = (list(got["ids"]), matrix / np.where(norms == 0, 1, norms))
    return found


async def _one(
    memory: Memory,
    collection: Collection,
    vectors: dict[str, tuple[list[str], Any]],
    query: Query,
    turn: int,
    into: Latencies,
) -> None:
    """Run one query on all four paths, starting with a different one each turn."""
    import numpy as np

    from hivegraph.memory.types import Scope

    scope = Scope(user_id=query.user_id)
    embedder = memory.store.space.embedder
    embedding = embedder.embed([query.text])[0]  # exact's query vector, not timed
    unit = np.asarray(embedding, dtype=np.float32)
    unit /= np.linalg.norm(unit) or 1.0
    ids, matrix = vectors[query.user_id]
    raw_ids: list[str] = []
    search_ids: list[str] = []
    for step in range(4):
        path = (turn + step) % 4
        started = time.perf_counter()
        if path == 0:
            await memory.recall(query.text, scope=scope, k=K)
        elif path == 1:
            search_ids = [hit.id for hit in await memory.search(query.text, scope=scope, k=K)]
        elif path == 2:  # a raw Chroma user embeds the query too
            raw_ids = collection.query(
                query_embeddings=[embedder.embed([query.text])[0]], n_results=K, where={USER_KEY: query.user_id},
                include=["distances"],
            )["ids"][0]  # fmt: skip
        else:
            similarity = matrix @ unit
            top = np.argpartition(-similarity, min(K, len(ids) - 1))[:K]
            _ = [ids[int(i)] for i in top[np.argsort(-similarity[top])]]
        elapsed = (time.perf_counter() - started) * 1000
        (into.recall_ms, into.search_ms, into.raw_ms, into.exact_ms)[path].append(elapsed)
    into.overlap.append(len(set(raw_ids) & set(search_ids)) / max(1, len(raw_ids)))


# ---------------------------------------------------------------- one size, and the report


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` quantile (inclusive method)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


async def run_size(
    records: int, embedder: str, conversations: Sequence[Conversation], args: argparse.Namespace
) -> dict[str, Any]:
    users = plan_users(conversations, records)
    rng = random.Random(f"{args.seed}:{records}")
    asked: set[str] = set()
    warmup, timed = plan_queries(users, args.warmup, rng, asked), plan_queries(users, args.queries, rng, asked)
    warmup += touch_queries(users, timed, asked)
    with tempfile.TemporaryDirectory(prefix="hivegraph-read-path-") as tmp:
        folder = Path(tmp)
        print(f"{records} records ({embedder}): ingesting {len(users)} users", file=sys.stderr, flush=True)
        ingest_s = await ingest(folder, users, embedder)
        disk = disk_bytes(folder) - raw_disk_bytes(folder)
        embedding = embedder_of(embedder).embed([timed[0].text])[0]
        hive = probe("hivegraph", folder, timed[0], embedding, embedder)
        raw = probe("raw", folder, timed[0], embedding, embedder)
        print(f"{records} records: {len(warmup)} warm-up + {args.queries} timed queries", file=sys.stderr, flush=True)
        latencies = await measure(folder, records, warmup, timed, embedder)
    return figures(records, len(users), ingest_s, disk, hive, raw, latencies)


def figures(
    records: int, users: int, ingest_s: float, disk: int, hive: Probe, raw: Probe, latencies: Latencies
) -> dict[str, Any]:
    p50, p95 = percentile(latencies.recall_ms, 0.5), percentile(latencies.recall_ms, 0.95)
    raw_p50, raw_p95 = percentile(latencies.raw_ms, 0.5), percentile(latencies.raw_ms, 0.95)
    search_p50, search_p95 = percentile(latencies.search_ms, 0.5), percentile(latencies.search_ms, 0.95)
    exact_p50 = percentile(latencies.exact_ms, 0.5)
    return {
        "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
        "raw_p50_ms": round(raw_p50, 2), "raw_p95_ms": round(raw_p95, 2),
        "p50_ratio": round(p50 / raw_p50, 2), "p95_ratio": round(p95 / raw_p95, 2),
        "open_s": round(hive.open_s, 3), "rss_mb": round(hive.rss_mb, 1), "raw_rss_mb": round(raw.rss_mb, 1),
        "disk_bytes_per_record": round(disk / records),
        "search_p50_ms": round(search_p50, 2), "search_p95_ms": round(search_p95, 2),
        "search_p50_ratio": round(search_p50 / raw_p50, 2), "search_p95_ratio": round(search_p95 / raw_p95, 2),
        "raw_open_s": round(raw.open_s, 3), "exact_p50_ms": round(exact_p50, 3),
        "first_query_ms": round(hive.first_query_ms, 1), "raw_first_query_ms": round(raw.first_query_ms, 1),
        "rss_after_query_mb": round(hive.rss_after_query_mb, 1),
        "raw_rss_after_query_mb": round(raw.rss_after_query_mb, 1),
        "top10_overlap": round(statistics.mean(latencies.overlap), 3),
        "queries": len(latencies.recall_ms), "users": users, "ingest_s": round(ingest_s, 1),
    }  # fmt: skip


def add_growth(results: dict[int, dict[str, Any]]) -> None:
    """Per size after the first: how p50 grew per tenfold of records since the previous size (hash rows)."""
    sizes = sorted(results)
    for small, large in itertools.pairwise(sizes):
        tenfolds = math.log10(large / small)
        for key in ("p50_ms", "search_p50_ms", "raw_p50_ms"):
            growth = (results[large][key] / results[small][key]) ** (1 / tenfolds)
            results[large][key.removesuffix("_ms") + "_growth_per_10x"] = round(growth, 2)


COLUMNS = (
    ("records", "{}", None), ("embedder", "{}", "embedder"), ("users", "{}", "users"),
    ("recall p50", "{:.2f}", "p50_ms"),
    ("p95", "{:.2f}", "p95_ms"), ("search p50", "{:.2f}", "search_p50_ms"), ("p95", "{:.2f}", "search_p95_ms"),
    ("raw p50", "{:.2f}", "raw_p50_ms"), ("p95", "{:.2f}", "raw_p95_ms"), ("exact", "{:.3f}", "exact_p50_ms"),
    ("ratio p50", "{:.2f}x", "p50_ratio"),
    ("p95", "{:.2f}x", "p95_ratio"), ("search", "{:.2f}x", "search_p50_ratio"),
    ("growth", "{:.2f}x", "p50_growth_per_10x"), ("raw", "{:.2f}x", "raw_p50_growth_per_10x"),
    ("open s", "{:.2f}", "open_s"), ("raw", "{:.2f}", "raw_open_s"),
    ("first ms", "{:.1f}", "first_query_ms"), ("raw", "{:.1f}", "raw_first_query_ms"), ("RSS MB", "{:.0f}", "rss_mb"),
    ("raw", "{:.0f}", "raw_rss_mb"), ("B/record", "{}", "disk_bytes_per_record"),
    ("overlap", "{:.2f}", "top10_overlap"), ("ingest s", "{:.1f}", "ingest_s"),
)  # fmt: skip


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = [[c[0] for c in COLUMNS]]
    for row in sorted(results.values(), key=lambda r: (r["records"], r["embedder"])):
        rows.append([fmt.format(row["records"] if key is None else row[key]) if key is None or key in row else "-"
                     for _, fmt, key in COLUMNS])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for number, row in enumerate(rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            print("  ".join("-" * width for width in widths))
    print(
        "\nms per query (k=10): recall = Memory.recall (vector + journal keyword, fused, records loaded), search = "
        "Memory.search (vector only, records loaded), raw = one shared Chroma collection filtered on the user (ids "
        "and distances; the query embedded inside the timing, as hivegraph does), exact = numpy top-10 over the "
        "user's own vectors; every user queried was searched once before the timing (as raw's one collection "
        "was); ratio = recall / raw; growth = p50 factor per tenfold of records (hash rows); open s, first ms (the "
        "first recall, which loads what it reads) and RSS MB after open in a fresh process; B/record = "
        "hivegraph's disk (journal + its Chroma collections) per record; overlap = share "
        "of raw Chroma's top 10 in Memory.search's."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="record counts with the hash embedder, "
                        "comma-separated (default %(default)s)")  # fmt: skip
    parser.add_argument(
        "--minilm", type=int, default=1000, help="one more size with MiniLM (0: none; default %(default)s)"
    )
    parser.add_argument("--records", type=int, help="one more size, e.g. 100000 or 1000000")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per size (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="LoCoMo JSON (default: ../shared/data/locomo/locomo_dev.json)")
    parser.add_argument("--json", type=Path, help="also write the figures, keyed by size, to this file")
    parser.add_argument("--probe", choices=("hivegraph", "raw"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        run_probe(args.probe)
        return
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} | ({args.records} if args.records else set()))
    if not sizes or sizes[0] < 1 or args.queries < 2:
        parser.error("sizes must be positive and --queries at least 2")
    asyncio.run(run(sizes, args))


async def run(sizes: Sequence[int], args: argparse.Namespace) -> None:
    from benchmarks.locomo_retrieval import DEFAULT_DATA, load

    conversations = load(args.data or DEFAULT_DATA, None)
    started = time.perf_counter()
    hashed = {size: await run_size(size, "hash", conversations, args) for size in sizes}
    add_growth(hashed)
    results = {str(size): row | {"records": size, "embedder": "hash"} for size, row in hashed.items()}
    if args.minilm:
        row = await run_size(args.minilm, "minilm", conversations, args)
        results[f"{args.minilm}-minilm"] = row | {"records": args.minilm, "embedder": "minilm"}
    print(f"\nread path, embedded Chroma + SQLite journal ({DIM} dims); {args.queries} queries per size "
          f"after {args.warmup} warm-up; {time.perf_counter() - started:.0f} s in all\n")  # fmt: skip
    print_table(results)
    if args.json:
        payload = results
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
