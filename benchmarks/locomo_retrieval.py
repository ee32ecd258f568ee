"""Answer-free retrieval on LoCoMo: hivegraph episodic memory against BM25 over turns.

Each conversation is ingested as episodic memory (one scope per conversation,
one batch per session, the session date as the event time, the text prefixed
by the speaker). For every question of categories 1-4 (evidence ids that name
no turn of the conversation are dropped; questions left without evidence are
skipped) it measures evidence recall: the share of the evidence turns present
in the retrieved context.

- `bm25`: plain BM25 (rank-bm25's Okapi) over the turns of the conversation,
  `"<speaker>: <text>"`, lowercase words minus stop words, no stemming; the
  top k turns. The data README gives R@10 = 0.572 for it: check this first.
- `hivegraph`: `EpisodicMemory.search` with a token budget equal to the mean
  tokens of the baseline's top k (so R@10 compares recall at the same mean
  context size as the baseline's top 10), at most 3k blocks, with keyword
  search in the SQLite journal (FTS5) and the conversational heuristics this
  data suits turned on explicitly (`LOCOMO`: speaker and month boosts, speaker
  names out of the query, session-neighbour expansion, turns that mention a
  time favoured for "when" questions, question turns weighed less, the turns
  of strong sessions lifted; all off by default).
- `hg-bm25`: the same, with the in-memory reference journal, whose keyword
  search is the BM25 the keyword index used before it moved into the journal
  (Lucene IDF, statistics over every scope): the "before" of that move.
- `hg-plain`: the SQLite journal with the neutral defaults (no heuristics).
- `hg-graph` (with `--graph`): `hivegraph` plus the `graph` retrieval source
  (Personalized PageRank over the entity graph, in a SQLite graph on the
  journal's file, restarting at the query's entities and at the `--dense-seeds`
  best vector hits with `--dense-share` of the mass, as HippoRAG 2 does), fused
  with weight `--graph-weight`; the defaults are the configured ones.
- `chroma`: raw Chroma queries (same embedder, top k) for speed, and their recall.

Also ingest throughput (turns/s) and search latency p50/p95 for hivegraph and
for raw Chroma on the same data, with their ratio. Tokens are tiktoken
`o200k_base` counts of the block texts.

    .venv/bin/python benchmarks/locomo_retrieval.py                       # MiniLM + Chroma (minutes)
    .venv/bin/python benchmarks/locomo_retrieval.py --embedder hash --index inmemory --conversations 1
    .venv/bin/python benchmarks/locomo_retrieval.py --graph --no-speed --systems hivegraph,hg-graph
    .venv/bin/python benchmarks/locomo_retrieval.py --index inmemory --no-speed --embed-cache /tmp/locomo.npz

The last form is for tuning retrieval settings: exact in-memory vectors (the
same recall as Chroma's within a few thousandths here) and MiniLM vectors kept
between runs make a run of `hivegraph` about a minute instead of a quarter of an hour.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi  # pyright: ignore[reportMissingTypeStubs]

from hivegraph.config import RetrievalConfig
from hivegraph.memory.entities import WordEntities
from hivegraph.memory.episodic import EpisodicMemory, EpisodicSettings, Turn
from hivegraph.memory.facade import Memory, MemoryOptions
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.graph.source import GRAPH, GraphRetrievalSettings
from hivegraph.memory.graph.sqlite import SqliteGraph
from hivegraph.memory.journal import Journal
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.projection import Projection
from hivegraph.memory.retrieval import RetrievalSettings
from hivegraph.memory.stores.base import VectorSpace
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import Scope
from hivegraph.models.embedder import Embedder
from hivegraph.models.tokens import TokenCounter

DEFAULT_DATA = (Path(__file__).parents[1] / ".." / "shared" / "data" / "locomo" / "locomo_dev.json").resolve()
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
KS = (5, 10, 20)
README_BM25_R10 = 0.572
LOCOMO = MemoryOptions(
    retrieval=RetrievalSettings(after_share=0.5, before_share=0.3, session_lift=0.5),
    episodic=EpisodicSettings(
        speaker_boost=2.0, time_boost=3.0, strip_speakers=True, when_boost=1.6, question_factor=0.8
    ),
)
"""The conversational heuristics, turned on for this data (hivegraph's defaults are neutral)."""


@dataclass(frozen=True)
class DialogTurn:
    dia_id: str
    speaker: str
    text: str
    session: int
    index: int
    occurred_at: datetime

    @property
    def line(self) -> str:
        return f"{self.speaker}: {self.text}"


@dataclass(frozen=True)
class Question:
    text: str
    evidence: frozenset[str]
    category: str


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    turns: list[DialogTurn]
    questions: list[Question]


@dataclass
class Scores:
    """Recall and tokens per question, by category."""

    recall: dict[int, dict[str, list[float]]] = field(default_factory=lambda: {k: {} for k in KS})
    tokens: dict[int, dict[str, list[int]]] = field(default_factory=lambda: {k: {} for k in KS})
    blocks: dict[int, dict[str, list[int]]] = field(default_factory=lambda: {k: {} for k in KS})

    def add(self, question: Question, k: int, found: Sequence[str], tokens: int) -> None:
        for category in ("all", question.category):
            hit = len(question.evidence & set(found)) / len(question.evidence)
            self.recall[k].setdefault(category, []).append(hit)
            self.tokens[k].setdefault(category, []).append(tokens)
            self.blocks[k].setdefault(category, []).append(len(found))

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for category in ("all", *CATEGORIES.values()):
            if category not in self.recall[KS[0]]:
                continue
            row: dict[str, float] = {"n": len(self.recall[KS[0]][category])}
            for k in KS:
                row[f"R@{k}"] = round(statistics.mean(self.recall[k][category]), 4)
                row[f"tokens@{k}"] = round(statistics.mean(self.tokens[k][category]), 1)
                row[f"blocks@{k}"] = round(statistics.mean(self.blocks[k][category]), 2)
            out[category] = row
        return out


# ---------------------------------------------------------------- data


def parse_date(text: str) -> datetime:
    """A LoCoMo session date ("1:56 pm on 8 May, 2023"), taken as UTC."""
    return datetime.strptime(" ".join(text.replace(",", " ").split()), "%I:%M %p on %d %B %Y").replace(tzinfo=UTC)


def load(path: Path, limit: int | None) -> list[Conversation]:
    if not path.is_file():
        sys.exit(f"LoCoMo data not found at {path}; pass --data PATH (see ../shared/data/README.md)")
    samples = json.loads(path.read_text(encoding="utf-8"))
    return [_conversation(sample) for sample in samples[:limit]]


def _conversation(sample: dict[str, Any]) -> Conversation:
    conversation = sample["conversation"]
    turns: list[DialogTurn] = []
    numbers = sorted(int(m.group(1)) for key in conversation if (m := re.fullmatch(r"session_(\d+)", key)))
    for number in numbers:
        when = parse_date(conversation[f"session_{number}_date_time"])
        for index, turn in enumerate(conversation[f"session_{number}"]):
            turns.append(DialogTurn(turn["dia_id"], turn["speaker"], turn["text"], number, index, when))
    ids = {turn.dia_id for turn in turns}
    questions: list[Question] = []
    for qa in sample["qa"]:
        category = CATEGORIES.get(int(qa.get("category", 0)))
        listed: list[Any] = qa.get("evidence") or []
        evidence = frozenset(str(e) for e in listed if e in ids)
        if category is not None and evidence:
            questions.append(Question(str(qa["question"]), evidence, category))
    return Conversation(str(sample["sample_id"]), turns, questions)


# ---------------------------------------------------------------- baseline


def bm25_baseline(conversations: Sequence[Conversation], counter: TokenCounter) -> Scores:
    scores = Scores()
    for conversation in conversations:
        turns = conversation.turns
        model = BM25Okapi([tokenize(turn.line, stem=False) for turn in turns])
        costs = [counter.count(turn.line) for turn in turns]
        for question in conversation.questions:
            values = [float(v) for v in model.get_scores(tokenize(question.text, stem=False))]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType, reportUnknownArgumentType]
            order = sorted(range(len(turns)), key=lambda i: -values[i])
            for k in KS:
                top = order[:k]
                scores.add(question, k, [turns[i].dia_id for i in top], sum(costs[i] for i in top))
    return scores


# ---------------------------------------------------------------- hivegraph


def make_embedder(name: str) -> Embedder:
    if name == "hash":
        from hivegraph.models.testing import HashEmbedder

        return HashEmbedder(dim=256)
    from hivegraph.models.minilm import MiniLMEmbedder

    return MiniLMEmbedder()


class CachedEmbedder:
    """An embedder whose vectors are kept in a `.npz` file between runs (for tuning; `--embed-cache`)."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner, self.path = inner, path
        self.vectors: dict[str, list[float]] = {}
        self.added = False
        if path.is_file():
            with np.load(path, allow_pickle=False) as saved:
                if str(saved["embedder"]) != inner.name or saved["vectors"].shape[1] != inner.dim:
                    sys.exit(
                        f"{path} holds vectors of {saved['embedder']} ({saved['vectors'].shape[1]} dimensions), "
                        f"not of {inner.name} ({inner.dim}): pass another --embed-cache"
                    )
                self.vectors = dict(zip(saved["texts"].tolist(), saved["vectors"].tolist(), strict=True))

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        missing = [text for text in dict.fromkeys(texts) if text not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.inner.embed(missing), strict=True))
            self.added = True
        return [self.vectors[text] for text in texts]

    def save(self) -> None:
        if self.added:
            texts = list(self.vectors)
            np.savez(self.path, embedder=np.array(self.inner.name), texts=np.array(texts),
                     vectors=np.array([self.vectors[t] for t in texts], dtype=np.float32))  # fmt: skip


def make_space(name: str, embedder: Embedder, folder: Path, prefix: str) -> VectorSpace:
    if name == "inmemory":
        return InMemorySpace(embedder)
    from hivegraph.memory.stores.chroma import ChromaSpace

    return ChromaSpace.persistent_at(folder / "chroma", prefix=prefix, embedder=embedder)


@dataclass
class Timing:
    ingest_s: float = 0.0
    turns: int = 0
    searches_ms: list[float] = field(default_factory=list[float])

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.searches_ms) or [0.0]
        return {
            "ingest_turns_per_s": round(self.turns / self.ingest_s, 1) if self.ingest_s else 0.0,
            "search_p50_ms": round(ordered[len(ordered) // 2], 2),
            "search_p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        }


async def hivegraph_run(
    conversations: Sequence[Conversation],
    space: VectorSpace,
    journal: Journal,
    budgets: dict[int, int],
    options: MemoryOptions,
    label: str,
    projections: Sequence[Projection] = (),
) -> tuple[Scores, Timing]:
    memory = await Memory.of(space, journal=journal, options=options, projections=projections).open()
    scores, timing = Scores(), Timing()
    try:
        for conversation in conversations:
            dia_ids = await _ingest(memory.episodic, conversation, timing)
            await _ask(memory.episodic, conversation, dia_ids, budgets, scores, timing)
            print(f"  {label}: {conversation.sample_id} done", file=sys.stderr, flush=True)
    finally:
        await memory.aclose()
    return scores, timing


async def _ingest(memory: EpisodicMemory, conversation: Conversation, timing: Timing) -> dict[str, str]:
    scope = Scope(user_id=conversation.sample_id)
    dia_ids: dict[str, str] = {}
    for session in sorted({turn.session for turn in conversation.turns}):
        turns = [turn for turn in conversation.turns if turn.session == session]
        batch = [Turn(speaker=t.speaker, text=t.text, occurred_at=t.occurred_at, turn=t.index) for t in turns]
        started = time.perf_counter()
        records = await memory.record(batch, scope=scope, session_id=f"session_{session}")
        timing.ingest_s += time.perf_counter() - started
        timing.turns += len(records)
        dia_ids |= {str(record.id): turn.dia_id for record, turn in zip(records, turns, strict=True)}
    return dia_ids


async def _ask(
    memory: EpisodicMemory,
    conversation: Conversation,
    dia_ids: dict[str, str],
    budgets: dict[int, int],
    scores: Scores,
    timing: Timing,
) -> None:
    scope = Scope(user_id=conversation.sample_id)
    for question in conversation.questions:
        for k in KS:
            started = time.perf_counter()
            result = await memory.search(question.text, scope=scope, k=3 * k, token_budget=budgets[k])
            if k == 10:
                timing.searches_ms.append((time.perf_counter() - started) * 1000)
            found = [dia_ids[str(hit.record_id)] for hit in result.hits]
            scores.add(question, k, found, result.tokens)


# ---------------------------------------------------------------- raw chroma


def chroma_run(
    conversations: Sequence[Conversation], embedder: Embedder, folder: Path, counter: TokenCounter
) -> tuple[Scores, Timing]:
    import chromadb
    from chromadb.config import Settings

    from hivegraph.memory.stores.chroma import close_client
    from hivegraph.memory.stores.chroma_embedding import HivegraphEmbeddingFunction

    client = chromadb.PersistentClient(path=str(folder / "raw-chroma"), settings=Settings(anonymized_telemetry=False))
    try:
        collection = client.create_collection(
            "raw",
            embedding_function=HivegraphEmbeddingFunction(embedder),  # pyright: ignore[reportArgumentType]
            configuration={"hnsw": {"space": "cosine"}},
        )
        scores, timing = Scores(), Timing()
        for conversation in conversations:
            _chroma_ingest(collection, conversation, timing)
            _chroma_ask(collection, conversation, scores, timing, counter)
    finally:
        close_client(client)
    return scores, timing


def _chroma_ingest(collection: Any, conversation: Conversation, timing: Timing) -> None:
    for session in sorted({turn.session for turn in conversation.turns}):
        turns = [turn for turn in conversation.turns if turn.session == session]
        started = time.perf_counter()
        collection.add(
            ids=[f"{conversation.sample_id}/{t.dia_id}" for t in turns],
            documents=[t.line for t in turns],
            metadatas=[{"conversation": conversation.sample_id} for _ in turns],
        )
        timing.ingest_s += time.perf_counter() - started
        timing.turns += len(turns)


def _chroma_ask(
    collection: Any, conversation: Conversation, scores: Scores, timing: Timing, counter: TokenCounter
) -> None:
    by_id = {turn.dia_id: turn for turn in conversation.turns}
    for question in conversation.questions:
        started = time.perf_counter()
        result = collection.query(
            query_texts=[question.text], n_results=max(KS), where={"conversation": conversation.sample_id}
        )
        timing.searches_ms.append((time.perf_counter() - started) * 1000)
        found = [item.split("/", 1)[1] for item in result["ids"][0]]
        for k in KS:
            scores.add(question, k, found[:k], sum(counter.count(by_id[d].line) for d in found[:k]))


# ---------------------------------------------------------------- report


def print_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    header = f"{'system':<10} {'category':<12} {'n':>5}" + "".join(
        f" {'R@' + str(k):>6} {'tok@' + str(k):>7}" for k in KS
    )
    print(header)
    print("-" * len(header))
    for system, rows in results.items():
        for category, row in rows.items():
            cells = "".join(f" {row[f'R@{k}']:>6.3f} {row[f'tokens@{k}']:>7.1f}" for k in KS)
            print(f"{system:<10} {category:<12} {int(row['n']):>5}{cells}")
        print()


def print_speed(hivegraph: dict[str, float], chroma: dict[str, float]) -> dict[str, float]:
    ratio = {key: round(hivegraph[key] / chroma[key], 2) if chroma[key] else 0.0 for key in hivegraph}
    print(f"{'':<10} {'ingest turns/s':>15} {'search p50 ms':>14} {'search p95 ms':>14}")
    for name, row in (("hivegraph", hivegraph), ("chroma", chroma), ("ratio", ratio)):
        print(f"{name:<10} {row['ingest_turns_per_s']:>15} {row['search_p50_ms']:>14} {row['search_p95_ms']:>14}")
    return ratio


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--embedder", choices=("minilm", "hash"), default="minilm")
    parser.add_argument("--index", choices=("chroma", "inmemory"), default="chroma")
    parser.add_argument("--conversations", type=int, help="only the first N conversations")
    parser.add_argument("--no-speed", action="store_true", help="skip the raw Chroma comparison")
    parser.add_argument("--graph", action="store_true", help="also run hg-graph (the graph retrieval source)")
    parser.add_argument("--graph-weight", type=float, default=0.5, help="fusion weight of the graph source")
    parser.add_argument("--graph-hops", type=int, default=GraphRetrievalSettings.hops, help="hops of its subgraph")
    parser.add_argument("--dense-seeds", type=int, default=RetrievalConfig().graph_dense_seeds,
                        help="vector hits that also seed the walk (HippoRAG 2; 0: entities only)")  # fmt: skip
    parser.add_argument("--dense-share", type=float, default=RetrievalConfig().graph_dense_share,
                        help="share of the walk's restart mass on those hits")  # fmt: skip
    parser.add_argument("--systems", help="only these hivegraph runs, comma-separated (hivegraph is always run)")
    parser.add_argument("--embed-cache", type=Path, metavar="NPZ",
                        help="keep the vectors in this file between runs, for tuning (with it, ingest and "
                        "search times leave embedding out: compare them only between runs that use it)")  # fmt: skip
    args = parser.parse_args(argv)
    asyncio.run(run(args))


async def run(args: argparse.Namespace) -> None:
    conversations = load(args.data, args.conversations)
    counter = TokenCounter()
    baseline = bm25_baseline(conversations, counter)
    bm25 = baseline.summary()
    budgets = {k: int(bm25["all"][f"tokens@{k}"]) for k in KS}
    embedder = make_embedder(args.embedder)
    if args.embed_cache is not None:
        embedder = CachedEmbedder(embedder, args.embed_cache)
    with tempfile.TemporaryDirectory(prefix="hivegraph-locomo-") as tmp:
        folder = Path(tmp)
        runs: dict[str, tuple[Scores, Timing]] = {}
        try:
            for label, journal, options, projections in _systems(args, folder):
                space = make_space(args.index, embedder, folder / label, f"locomo-{args.embedder}")
                runs[label] = await hivegraph_run(conversations, space, journal, budgets, options, label, projections)
            raw = None if args.no_speed else chroma_run(conversations, embedder, folder, counter)
        finally:
            if isinstance(embedder, CachedEmbedder):
                embedder.save()
        timing = runs["hivegraph"][1]
    results = {label: run[0].summary() for label, run in runs.items()} | {"bm25": bm25}
    if raw is not None:
        results["chroma"] = raw[0].summary()
    _report(args, results, timing, raw, budgets)


def _systems(args: argparse.Namespace, folder: Path) -> list[tuple[str, Journal, MemoryOptions, list[Projection]]]:
    """The hivegraph runs asked for, each with its journal, options and extra projections."""
    systems: list[tuple[str, Journal, MemoryOptions, list[Projection]]] = [
        ("hivegraph", SqliteJournal(folder / "journal.db"), LOCOMO, []),
        ("hg-bm25", InMemoryJournal(), LOCOMO, []),
        ("hg-plain", SqliteJournal(folder / "plain.db"), MemoryOptions(), []),
    ]
    if args.graph:
        weights = {**LOCOMO.retrieval.weights, GRAPH: args.graph_weight}
        options = replace(LOCOMO, retrieval=replace(LOCOMO.retrieval, weights=weights))
        graph = GraphProjection(
            SqliteGraph(folder / "graph.db"), entities=WordEntities(),
            retrieval=GraphRetrievalSettings(
                hops=args.graph_hops, dense_seeds=args.dense_seeds, dense_share=args.dense_share
            ),
        )  # fmt: skip
        systems.append(("hg-graph", SqliteJournal(folder / "graph.db"), options, [graph]))
    wanted = {"hivegraph", *(args.systems.split(",") if args.systems else (name for name, *_ in systems))}
    return [system for system in systems if system[0] in wanted]


def _report(
    args: argparse.Namespace,
    results: dict[str, dict[str, dict[str, float]]],
    timing: Timing,
    raw: tuple[Scores, Timing] | None,
    budgets: dict[int, int],
) -> None:
    print(f"\nLoCoMo retrieval ({args.data.name}; embedder {args.embedder}, index {args.index}); "
          f"hivegraph token budgets {budgets} (the baseline's mean top-k tokens)\n")  # fmt: skip
    print_table(results)
    figures: dict[str, Any] = dict(results)
    speed = {"hivegraph": timing.summary()}
    if raw is not None:
        speed["chroma"] = raw[1].summary()
        speed["ratio"] = print_speed(speed["hivegraph"], speed["chroma"])
    figures["speed"] = speed
    figures["config"] = {"data": str(args.data), "embedder": args.embedder, "index": args.index, "budgets": budgets}
    hive, bm25 = results["hivegraph"]["all"], results["bm25"]["all"]
    verdict = hive["R@10"] >= 0.75 and hive["tokens@10"] <= bm25["tokens@10"]
    print(f"\nbm25 R@10 {bm25['R@10']:.3f} (data README: {README_BM25_R10}); hivegraph R@10 {hive['R@10']:.3f} "
          f"at {hive['tokens@10']:.0f} tokens vs {bm25['tokens@10']:.0f}: "
          f"target (R@10 >= 0.75, no more tokens) {'met' if verdict else 'NOT met'}")  # fmt: skip
    if "hg-graph" in results:
        graph = results["hg-graph"]
        rows = ", ".join(f"{c} {row['R@10']:.3f}" for c, row in graph.items())
        met = graph["all"]["R@10"] >= 0.80 and graph["all"]["tokens@10"] <= bm25["tokens@10"]
        print(f"hg-graph R@10: {rows}; target (R@10 >= 0.80 at no more tokens) {'met' if met else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
