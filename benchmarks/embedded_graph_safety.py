"""Is ladybug as safe as SQLite for the embedded graph? The evidence, side by side, in one run.

Each check runs against `SqliteGraph` and `LadybugGraph`, and against raw
ladybug where the hazard is the engine's own; every process that could crash
is a child, so the run reports its return code instead of dying with it:

(a) two processes write the same new file at once (N batches of K tasks each,
    all joined to one hub): how many batches land, and what the second opener
    gets;
(b) reader processes open the file again and again while a writer process
    commits batches and checkpoints (`LadybugGraph(checkpoint_mb=1)`; SQLite
    checkpoints its WAL every 1,000 pages): each attempt opens, reads the cursor
    and the batches around it in one snapshot, and closes. Counted: opens that
    fail, reads that fail, batches half visible (neither 0 nor K tasks), batches
    at or below the cursor that are missing, readers that died of a signal;
(c) raw ladybug: a second connection's `BEGIN` fails while the first holds
    the write transaction, then the next statement runs on it (`reuse`), or on
    a new connection after closing it (`replace`, what `LadybugGraph` does);
(d) kill -9 trials: a writer streams chained batches of K tasks (one seq each,
    printing it once acknowledged) and is SIGKILLed at a random moment (seeded)
    after a few acknowledgements; the next trial's writer resumes after the
    last acknowledged seq. Then every batch is checked: acknowledged ones whole,
    none half there;
(e) `neighbours` latency, 1 and 2 hops from Q random starts, on a random graph
    of N tasks and E `SIMILAR` edges (seeded), as in `graph_hops.py`.

    .venv/bin/python benchmarks/embedded_graph_safety.py [--trials 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/embedded_graph_safety.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hivegraph.errors import BackendUnavailableError, HivegraphError
from hivegraph.memory.graph import GraphEdge, GraphNode, GraphStore, SqliteGraph
from hivegraph.memory.graph.ladybug import LadybugGraph
from hivegraph.memory.types import Scope

ADA = Scope(user_id="ada")
BACKENDS = ("sqlite", "ladybug")
SCRIPT = str(Path(__file__).resolve())


def open_graph(backend: str, path: str | Path) -> GraphStore:
    """The graph of `backend` at `path`, as a user would open it (ladybug checkpointing every 1 MB of WAL)."""
    return SqliteGraph(path) if backend == "sqlite" else LadybugGraph(path, checkpoint_mb=1)


def batch(seq: int, size: int) -> tuple[list[GraphNode], list[GraphEdge]]:
    """Batch `seq`: `size` tasks joined in a chain."""
    ids = [f"b{seq}-{i}" for i in range(size)]
    nodes = [GraphNode(i, "Task", ADA, f"task {i}") for i in ids]
    return nodes, [GraphEdge(f"{a}>{b}", "SIMILAR", a, b, ADA) for a, b in pairwise(ids)]


# ---------------------------------------------------------------- children


async def child_writer(backend: str, path: str, name: str, batches: str, size: str, go: str) -> None:
    """(a) Open (or print why not), wait for `go`, write the batches, each joined to the hub."""
    try:
        graph = open_graph(backend, path)
    except BackendUnavailableError as exc:
        print(f"refused {type(exc).__name__}: {exc}", flush=True)
        return
    print("ready", flush=True)
    while not Path(go).exists():
        await asyncio.sleep(0.005)
    for k in range(int(batches)):
        ids = [f"{name}{k}-{i}" for i in range(int(size))]
        nodes = [GraphNode(i, "Task", ADA) for i in ids]
        await graph.upsert(nodes, [GraphEdge(f"hub>{i}", "SIMILAR", "hub", i, ADA) for i in ids], seq=k + 2)
    print("done", flush=True)
    await graph.aclose()


async def child_stream(backend: str, path: str, size: str, first: str) -> None:
    """(b), (d) Write batch after batch from seq `first`, advancing the cursor, printing each seq acknowledged."""
    graph = open_graph(backend, path)
    for seq in range(int(first), int(first) + 1_000_000):
        await graph.upsert(*batch(seq, int(size)), seq=seq)
        await graph.advance(seq)
        print(seq, flush=True)


async def child_reader(kind: str, path: str, size: str, seconds: str) -> None:
    """(b) Open, read the cursor and the batches around it, close; again until `seconds` pass. One line each."""
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        print(await _read_once(kind, path, int(size)), flush=True)


async def _read_once(kind: str, path: str, size: int) -> str:
    try:
        reader: Callable[[], Coroutine[Any, Any, tuple[int, dict[int, int]]]]
        if kind == "raw":
            reader = _raw_reader(path, size)
        else:
            graph = open_graph(kind, path)
            reader = _graph_reader(graph, size)
    except (HivegraphError, RuntimeError) as exc:
        return f"open_error {_first_line(exc)}"
    try:
        cursor, found = await reader()
    except (HivegraphError, RuntimeError) as exc:
        return f"read_error {_first_line(exc)}"
    half = [seq for seq, n in found.items() if n not in (0, size)]
    missing = [seq for seq, n in found.items() if seq <= cursor and n != size]
    return f"half {half}" if half else f"missing {missing}" if missing else f"ok {cursor}"


def _graph_reader(graph: GraphStore, size: int) -> Callable[[], Coroutine[Any, Any, tuple[int, dict[int, int]]]]:
    async def read() -> tuple[int, dict[int, int]]:
        try:
            cursor = await graph.cursor()
            seqs = [s for s in (cursor - 1, cursor, cursor + 1) if s >= 1]
            nodes = await graph.get_nodes([f"b{s}-{i}" for s in seqs for i in range(size)], scope=ADA)
            return cursor, {s: sum(n.id.startswith(f"b{s}-") for n in nodes) for s in seqs}
        finally:
            await graph.aclose()

    return read


def _raw_reader(path: str, size: int) -> Callable[[], Coroutine[Any, Any, tuple[int, dict[int, int]]]]:
    import ladybug

    database = ladybug.Database(path, read_only=True)

    async def read() -> tuple[int, dict[int, int]]:
        try:
            db = ladybug.Connection(database)
            rows = _all(db.execute("MATCH (m:HgGraphMeta) WHERE m.key = 'cursor' RETURN m.value"))
            cursor = int(rows[0][0]) if rows else 0
            seqs = [s for s in (cursor - 1, cursor, cursor + 1) if s >= 1]
            ids = [f"b{s}-{i}" for s in seqs for i in range(size)]
            query = "UNWIND $ids AS i MATCH (n:Task) WHERE n.id = i RETURN n.id"
            got = [str(row[0]) for row in _all(db.execute(query, {"ids": ids}))]
            db.close()
            return cursor, {s: sum(i.startswith(f"b{s}-") for i in got) for s in seqs}
        finally:
            database.close()

    return read


def _all(result: Any) -> list[list[Any]]:
    return list(result.get_all())


def child_begin(mode: str, path: str) -> None:
    """(c) Fail a second connection's BEGIN, then run a statement on it (`reuse`) or on a new one (`replace`)."""
    import ladybug

    database = ladybug.Database(path)
    first = ladybug.Connection(database)
    first.execute("CREATE NODE TABLE T(id STRING, PRIMARY KEY (id))")
    second = ladybug.Connection(database)
    first.execute("BEGIN TRANSACTION")
    try:
        second.execute("BEGIN TRANSACTION")
    except RuntimeError as exc:
        print(f"begin failed: {_first_line(exc)}", flush=True)
    if mode == "replace":
        second.close()
        second = ladybug.Connection(database)
    print("rows:", _all(second.execute("MATCH (n:T) RETURN count(*)")), flush=True)
    first.execute("COMMIT")


CHILDREN: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
    "writer": child_writer,
    "stream": child_stream,
    "reader": child_reader,
}


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


def _spawn(*args: object) -> subprocess.Popen[str]:
    argv = [sys.executable, SCRIPT, "--child", *map(str, args)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------- checks


@dataclass
class Report:
    concurrent_writers: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    readers: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    failed_begin: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    kill_trials: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    latency: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])


async def check_writers(backend: str, folder: Path, batches: int, size: int) -> dict[str, Any]:
    """(a) Two processes open one file (holding the hub) and write at once."""
    path, go = folder / f"a-{backend}.db", folder / f"a-{backend}.go"
    graph = open_graph(backend, path)
    await graph.upsert([GraphNode("hub", "Task", ADA)], [], seq=1)
    await graph.aclose()
    writers = [_spawn("writer", backend, path, name, batches, size, go) for name in ("a", "b")]
    firsts = [(w.stdout.readline().strip() if w.stdout else "") for w in writers]
    go.touch()
    outs = [w.communicate(timeout=300) for w in writers]
    graph = open_graph(backend, path)
    landed = len(await graph.neighbours(["hub"], scope=ADA)) // size
    await graph.aclose()
    refused = [line for line in firsts if line.startswith("refused")]
    return {
        "opened": sum(line == "ready" for line in firsts),
        "refused": refused[0][:120] if refused else "",
        "return_codes": [w.returncode for w in writers],
        "batches_landed": landed,
        "batches_asked": 2 * batches,
        "stderr": [err[-300:] for _, err in outs if err],
    }


def raw_second_open(folder: Path) -> dict[str, Any]:
    """(a) raw: a second read-write `Database` on a file another process holds."""
    path = folder / "a-raw.db"
    holder = _spawn_python(
        f"import ladybug,time\ndb = ladybug.Database({str(path)!r})\nprint('held', flush=True)\ntime.sleep(30)"
    )
    assert holder.stdout is not None
    holder.stdout.readline()
    probe = subprocess.run(
        [sys.executable, "-c", f"import ladybug\ntry:\n ladybug.Database({str(path)!r})\n print('opened')\n"
         "except RuntimeError as e:\n print('RuntimeError:', str(e).splitlines()[0][:100])"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    holder.kill()
    holder.communicate()
    return {"return_code": probe.returncode, "said": probe.stdout.strip()}


def _spawn_python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_readers(
    backend: str, kinds: list[str], folder: Path, size: int, readers: int, seconds: float
) -> dict[str, Any]:
    """(b) Readers of each kind open the file over and over while a writer streams batches."""
    path = folder / f"b-{backend}.db"
    writer = _spawn("stream", backend, path, size, 1)
    assert writer.stdout is not None
    for _ in range(3):  # the file exists and holds a few batches
        writer.stdout.readline()
    results: dict[str, Any] = {}
    for kind in kinds:
        procs = [_spawn("reader", kind, path, size, seconds) for _ in range(readers)]
        outs = [proc.communicate(timeout=seconds + 120) for proc in procs]
        tally: Counter[str] = Counter()
        examples: dict[str, str] = {}
        for out, _ in outs:
            for line in out.splitlines():
                what = line.split(" ", 1)[0]
                tally[what] += 1
                examples.setdefault(what, line[:140])
        results[kind] = {
            "attempts": sum(tally.values()),
            "ok": tally["ok"],
            "open_errors": tally["open_error"],
            "read_errors": tally["read_error"],
            "half_visible": tally["half"],
            "missing_acknowledged": tally["missing"],
            "crashed": sum(proc.returncode < 0 for proc in procs),
            "return_codes": sorted({proc.returncode for proc in procs}),
            "examples": {k: v for k, v in examples.items() if k != "ok"},
        }
    writer.kill()
    rest, err = writer.communicate(timeout=60)
    results["writer_batches"] = len(rest.split()) + 3
    results["writer_return_code"] = writer.returncode
    if writer.returncode != -signal.SIGKILL:
        results["writer_stderr"] = err[-300:]
    return results


def check_failed_begin(folder: Path) -> dict[str, dict[str, Any]]:
    """(c) The statement after a failed BEGIN, on the same connection and on a new one."""
    found: dict[str, dict[str, Any]] = {}
    for mode in ("reuse", "replace"):
        child = subprocess.run(
            [sys.executable, SCRIPT, "--begin", mode, str(folder / f"c-{mode}.db")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        found[mode] = {"return_code": child.returncode, "said": child.stdout.strip().splitlines()}
    return found


async def check_kills(backend: str, folder: Path, trials: int, size: int, rng: random.Random) -> dict[str, Any]:
    """(d) Kill -9 the writer at random moments; then every acknowledged batch must be whole, none half there."""
    path, acknowledged, killed = folder / f"d-{backend}.db", [0], 0
    for _ in range(trials):
        writer = _spawn("stream", backend, path, size, acknowledged[-1] + 1)
        assert writer.stdout is not None
        acks = [int(writer.stdout.readline() or 0) for _ in range(3)]
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(writer.pid, signal.SIGKILL)
        rest, _ = writer.communicate(timeout=60)
        killed += writer.returncode == -signal.SIGKILL
        acknowledged += [seq for seq in acks if seq] + [int(line) for line in rest.split()]
    graph = open_graph(backend, path)
    lost = half = 0
    for seq in range(1, acknowledged[-1] + 2):
        nodes, _ = batch(seq, size)
        found = len(await graph.get_nodes([node.id for node in nodes], scope=ADA))
        lost += seq in acknowledged and found != size
        half += found not in (0, size)
    await graph.aclose()
    return {"trials": trials, "killed": killed, "acknowledged": len(acknowledged) - 1, "lost": lost, "half": half}


async def check_latency(backend: str, folder: Path, nodes: int, edges: int, queries: int, seed: int) -> dict[str, Any]:
    """(e) 1-hop and 2-hop `neighbours` p50 / p95 on one random graph."""
    rng = random.Random(seed)
    ids = [f"t{n}" for n in range(nodes)]
    graph_nodes = [GraphNode(i, "Task", ADA, f"task {i}", {"outcome": "success"}) for i in ids]
    pairs = (rng.sample(ids, 2) for _ in range(edges))
    graph_edges = [GraphEdge(f"SIMILAR:{n}", "SIMILAR", a, b, ADA, rng.random()) for n, (a, b) in enumerate(pairs)]
    graph = open_graph(backend, folder / f"e-{backend}.db")
    started = time.perf_counter()
    for seq, first in enumerate(range(0, nodes, 1_000), start=1):
        await graph.upsert(graph_nodes[first : first + 1_000], [], seq=seq)
    for seq, first in enumerate(range(0, edges, 2_000), start=1_000):
        await graph.upsert([], graph_edges[first : first + 2_000], seq=seq)
    result: dict[str, Any] = {"build_s": round(time.perf_counter() - started, 1)}
    await graph.aclose()  # timed as a process that opens a built graph finds it
    graph = open_graph(backend, folder / f"e-{backend}.db")
    starts = random.Random(seed + 1).choices(ids, k=queries + 20)
    for hops in (1, 2):
        seconds: list[float] = []
        found = 0
        for n, start in enumerate(starts):
            began = time.perf_counter()
            got = await graph.neighbours([start], scope=ADA, hops=hops)
            if n >= 20:  # warm-up left out
                seconds.append(time.perf_counter() - began)
                found += len(got)
        cuts = statistics.quantiles(seconds, n=20)
        result[f"{hops}hop"] = {
            "p50_ms": round(statistics.median(seconds) * 1e3, 3),
            "p95_ms": round(cuts[18] * 1e3, 3),
            "mean_found": round(found / len(seconds), 2),
        }
    await graph.aclose()
    return result


# ---------------------------------------------------------------- report


def table(report: Report) -> str:
    """One table: a row per figure, a column per store."""
    rows: list[tuple[str, ...]] = [("check", "SqliteGraph", "LadybugGraph", "raw ladybug")]
    writers = report.concurrent_writers

    def wrote(name: str) -> str:
        w = writers[name]
        refused = w["refused"].split(":", 1)[0].removeprefix("refused ")
        shown = f"2nd refused: {refused}" if refused else "both wrote"
        return f"{shown}; {w['batches_landed']}/{w['batches_asked']} batches; rc {w['return_codes']}"

    raw = writers["raw"]
    said = "opened (!)" if raw["said"] == "opened" else "refused: " + raw["said"].split(":", 1)[0]
    lock = " (lock)" if "Could not set lock" in raw["said"] else ""
    rows.append(
        ("(a) 2nd process writes at once", wrote("sqlite"), wrote("ladybug"), f"{said}{lock}; rc {raw['return_code']}")
    )
    for what, key in (
        ("open attempts", "attempts"),
        ("  open failed", "open_errors"),
        ("  read failed", "read_errors"),
        ("  half-visible batch", "half_visible"),
        ("  acked batch missing", "missing_acknowledged"),
        ("  reader crashed (signal)", "crashed"),
    ):
        cells = [
            str(report.readers["sqlite"]["sqlite"][key]),
            str(report.readers["ladybug"]["ladybug"][key]),
            str(report.readers["ladybug"]["raw"][key]),
        ]
        rows.append((f"(b) {what}", cells[0], cells[1], cells[2]))
    rows.append((
        "(b) writer batches meanwhile",
        str(report.readers["sqlite"]["writer_batches"]),
        str(report.readers["ladybug"]["writer_batches"]),
        "(same writer)",
    ))  # fmt: skip
    begin = report.failed_begin
    rows.append((
        "(c) statement after failed BEGIN", "n/a (one writer lock)",
        f"replaced: rc {begin['replace']['return_code']}", f"reused: rc {begin['reuse']['return_code']}",
    ))  # fmt: skip
    for name in ("acknowledged", "lost", "half"):
        cells = [str(report.kill_trials[b][name]) for b in BACKENDS]
        rows.append((f"(d) kill -9: batches {name}", cells[0], cells[1], ""))
    rows.append(("(d) kill -9: trials (killed)", *(
        f"{report.kill_trials[b]['trials']} ({report.kill_trials[b]['killed']})" for b in BACKENDS), ""))  # fmt: skip
    for hops in ("1hop", "2hop"):
        cells = [f"{report.latency[b][hops]['p50_ms']:.3f} / {report.latency[b][hops]['p95_ms']:.3f}" for b in BACKENDS]
        rows.append((f"(e) {hops} p50 / p95 ms", cells[0], cells[1], ""))
    rows.append(("(e) build s", *(str(report.latency[b]["build_s"]) for b in BACKENDS), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)


async def main(args: argparse.Namespace) -> None:
    report, rng = Report(), random.Random(args.seed)
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for backend in BACKENDS:
            report.concurrent_writers[backend] = await check_writers(backend, folder, args.batches, args.size)
        report.concurrent_writers["raw"] = raw_second_open(folder)
        print(f"(a) done at {time.monotonic() - began:.0f} s", file=sys.stderr)
        report.readers["sqlite"] = check_readers("sqlite", ["sqlite"], folder, args.size, args.readers, args.seconds)
        kinds = ["ladybug", "raw"]
        report.readers["ladybug"] = check_readers("ladybug", kinds, folder, args.size, args.readers, args.seconds)
        print(f"(b) done at {time.monotonic() - began:.0f} s", file=sys.stderr)
        report.failed_begin = check_failed_begin(folder)
        for backend in BACKENDS:
            report.kill_trials[backend] = await check_kills(backend, folder, args.trials, args.size, rng)
        print(f"(c, d) done at {time.monotonic() - began:.0f} s", file=sys.stderr)
        for backend in BACKENDS:
            report.latency[backend] = await check_latency(
                backend, folder, args.nodes, args.edges, args.queries, args.seed
            )
    print(table(report))
    print(f"\n{time.monotonic() - began:.0f} s; readers {args.readers} x {args.seconds:g} s per store; "
          f"batches of {args.size} tasks; {args.nodes} nodes / {args.edges} edges, {args.queries} starts")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(CHILDREN[sys.argv[2]](*sys.argv[3:]))
    elif sys.argv[1:2] == ["--begin"]:
        child_begin(sys.argv[2], sys.argv[3])
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--trials", type=int, default=5, help="kill -9 trials per store")
        parser.add_argument("--size", type=int, default=50, help="tasks per batch")
        parser.add_argument("--batches", type=int, default=20, help="batches per writer in (a)")
        parser.add_argument("--readers", type=int, default=2, help="reader processes per kind in (b)")
        parser.add_argument("--seconds", type=float, default=10.0, help="how long each reader keeps reopening")
        parser.add_argument("--nodes", type=int, default=10_000)
        parser.add_argument("--edges", type=int, default=20_000)
        parser.add_argument("--queries", type=int, default=300, help="timed starts per hop count")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--json", help="write the figures to this file")
        asyncio.run(main(parser.parse_args()))
