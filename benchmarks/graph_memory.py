"""G-Memory at 1,000 and 10,000 synthetic tasks: write throughput and retrieval latency, per graph backend.

A deterministic generator makes team tasks of five families (lookup, compare,
summarise, plan, fix), each a templated text over seeded fillers, with 3 to 6
steps by `planner`, `searcher` and `solver`; about 20% fail. Each family has
three insights, added by its first successful task; every later successful
task AGREEs with one of them (in turn). The same tasks go into one `Memory` per
backend, one after another, with the hash embedder (384 dimensions; say
`--embedder minilm` for the bundled MiniLM, much slower to seed), the
in-memory vector space and a `SqliteJournal` in a temporary folder, so only the
graph differs (the reference `InMemoryJournal` is left out: its link and
duplicate checks scan every open record, so seeding it is quadratic and 10,000
tasks take hours):

- `sqlite` (the default): a `SqliteGraph` in the journal's file, as shipped;
- `inmemory`: `InMemoryGraph` (the baseline of the `x inmem` ratios when it runs);
- `bolt` (with `--bolt`: it starts a server): `Neo4jGraph` on an ArcadeDB
  server with its Bolt plugin, started on loopback for the run (the test
  suite's fixture) and stopped after. ArcadeDB stands in for Neo4j's driver
  path; its times are not Neo4j's.

`record_task` is slow enough to set the sizes: on this 2-core machine it ran
at 14 tasks/s one at a time and 16 with eight in flight (300 tasks, bound by the
journal and graph work in their threads), and writing the same records and links
in journal batches of 100 tasks gave 18 tasks/s, so neither is used: the figure
is one task at a time. Shared with other jobs, the SQLite backend took 2.3
minutes to 1k and about 45 minutes to 10k. The default is therefore 1k and 3k
on `sqlite` (under 15 minutes); the 10k figures come from `--sizes 1000,10000`,
and `--backends inmemory,sqlite,bolt` compares the graphs (one after another).

Seeding is cumulative: the store is filled to the first size, measured, then
filled on to the next. **write tasks/s** is tasks recorded per second of
`record_task` alone, one task at a time, awaited one after another (the
search for SIMILAR neighbours, the embedding of the task and its steps, the
journal batch and the graph projection all count; the insight ops do not, and
`revise ops/s` times them apart). **retrieve p50/p95** is
`memory.gmemory.retrieve` over a fixed set of probe tasks from the same
generator with another seed (never recorded), after warm-up calls, each call
timed alone; **search p50** is plain `memory.search(kinds=("query",), k=3)`
on the same probes in the same loop, the vector-only baseline of the `x
search` ratio; `x inmem` is the ratio to the in-memory backend at the same
size; `growth` is p50 at this size over p50 at the previous size.

    .venv/bin/python benchmarks/graph_memory.py                         # 1k and 3k, sqlite (~10 min)
    .venv/bin/python benchmarks/graph_memory.py --sizes 1000,10000      # 1k and 10k, sqlite (~45 min)
    .venv/bin/python benchmarks/graph_memory.py --backends inmemory,sqlite,bolt --sizes 1000 --probes 100
    .venv/bin/python benchmarks/graph_memory.py --sizes 1000 --probes 50
    .venv/bin/python benchmarks/graph_memory.py --bolt --sizes 1000,10000 --json graph_memory.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from uuid import UUID

if __package__ in (None, ""):  # run as `python benchmarks/graph_memory.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hivegraph.memory.facade import Memory
from hivegraph.memory.gmemory import AgreeInsight, NewInsight, Step
from hivegraph.memory.graph import GraphStore, InMemoryGraph, SqliteGraph
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.journal import Journal
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import Scope
from hivegraph.memory.vocabulary import Outcome
from hivegraph.models.embedder import Embedder

TEAM = Scope(team_id="synthetic")
BACKENDS = ("inmemory", "sqlite", "bolt")
AGENTS = ("planner", "searcher", "solver")
FAILURE_RATE = 0.2
WORDS = {
    "entity": ["river delta", "copper mine", "harbour bridge", "pine forest", "steel mill", "glacier lake",
               "wind farm", "salt marsh", "rail depot", "coral reef", "paper mill", "tea estate"],
    "attr": ["population", "founding year", "annual output", "area", "height", "budget", "staff count", "age"],
    "city": ["Lisbon", "Osaka", "Quito", "Tromso", "Accra", "Perth", "Riga", "Cusco", "Hanoi", "Oslo"],
    "doc": ["quarterly sales", "incident", "safety audit", "user survey", "hiring", "energy use", "latency"],
    "component": ["parser", "scheduler", "cache", "billing", "login", "export", "search", "upload"],
}  # fmt: skip
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "lookup": ("Find the {attr} of the {entity} near {city}", (
        "Look the entity up by its full name and place before reading a figure.",
        "Quote the figure with its year: figures change.",
        "When two pages disagree, prefer the official source.",
    )),
    "compare": ("Which has the larger {attr}: the {entity} or the {entity2}?", (
        "Read the same attribute, in the same unit, for both sides.",
        "Search each side separately; one page rarely covers both.",
        "State the two figures before naming the larger.",
    )),
    "summarise": ("Summarise the {doc} report of the {component} team for {city}", (
        "Open the latest version of the report first.",
        "Lead with the numbers that changed since the last report.",
        "Keep the summary under five sentences.",
    )),
    "plan": ("Plan a {days}-day visit to {city} to inspect the {entity}", (
        "Check opening days before fixing the order of visits.",
        "Leave a free half-day for delays.",
        "Group sites by district to cut travel time.",
    )),
    "fix": ("Fix the failing {component} test after the {doc} change", (
        "Reproduce the failure locally before changing code.",
        "Read the diff of the change that broke it first.",
        "Add a test that fails without the fix.",
    )),
}  # fmt: skip


@dataclass(frozen=True)
class SyntheticTask:
    run_id: str
    family: str
    text: str
    steps: tuple[Step, ...]
    outcome: Outcome


def synthetic_tasks(n: int, seed: int, *, prefix: str = "task") -> list[SyntheticTask]:
    """`n` deterministic tasks: a family and its fillers, 3-6 steps, about 20% failures."""
    rng = random.Random(seed)
    return [_task(rng, f"{prefix}-{i}") for i in range(n)]


def _task(rng: random.Random, run_id: str) -> SyntheticTask:
    family = rng.choice(sorted(FAMILIES))
    template = FAMILIES[family][0]
    fill = {key: rng.choice(words) for key, words in WORDS.items()}
    fill |= {"entity2": rng.choice([e for e in WORDS["entity"] if e != fill["entity"]]), "days": str(rng.randint(2, 9))}
    text = template.format(**fill)
    failed = rng.random() < FAILURE_RATE
    n = rng.randint(3, 6)
    steps = [Step("planner", f"Plan: split '{text}' into searches for the {fill['attr']} and the {fill['entity']}")]
    for k in range(1, n - 1):
        agent = AGENTS[1 + (k % 2)] if k > 1 else "searcher"
        steps.append(Step(agent, f"Step {k}: looked up the {fill['attr']} of the {fill['entity']} in {fill['city']}"))
    steps.append(Step("solver", "Finish: could not find a source" if failed else f"Finish: answered '{text}'"))
    return SyntheticTask(run_id, family, text, tuple(steps), "failure" if failed else "success")


def embedder_of(name: str) -> Embedder:
    """The hash embedder (384 dimensions, the default here) or the bundled MiniLM."""
    from hivegraph.models.testing import HashEmbedder

    if name == "minilm":
        from hivegraph.models.minilm import MiniLMEmbedder

        return MiniLMEmbedder()
    return HashEmbedder(384)


@dataclass
class Seeder:
    """Fills a memory with synthetic tasks and their family insights, timing `record_task` and `revise` apart."""

    memory: Memory
    record_s: float = 0.0
    revise_s: float = 0.0
    revise_ops: int = 0
    links: int = 0
    family_insights: dict[str, list[UUID]] = field(default_factory=dict[str, list[UUID]])

    async def add(self, tasks: Sequence[SyntheticTask]) -> None:
        for task in tasks:
            started = time.perf_counter()
            recorded = await self.memory.gmemory.record_task(
                task.text, task.steps, scope=TEAM, run_id=task.run_id, outcome=task.outcome
            )
            self.record_s += time.perf_counter() - started
            self.links += len(recorded.similar)
            if task.outcome == "success":
                await self._reflect(task, recorded.task.id)

    async def _reflect(self, task: SyntheticTask, task_id: UUID) -> None:
        known = self.family_insights.get(task.family)
        started = time.perf_counter()
        if known is None:
            ops = [NewInsight(text, ("solver",) if n == 2 else ()) for n, text in enumerate(FAMILIES[task.family][1])]
            changes = await self.memory.gmemory.revise(ops, task_id=task_id, scope=TEAM)
            self.family_insights[task.family] = [c.insight_id for c in changes]
        else:
            agreed = known[self.revise_ops % len(known)]
            await self.memory.gmemory.revise([AgreeInsight(agreed)], task_id=task_id, scope=TEAM)
        self.revise_s += time.perf_counter() - started
        self.revise_ops += 1


@dataclass(frozen=True)
class Row:
    backend: str
    size: int
    write_tasks_s: float
    revise_ops_s: float
    similar_links: int
    retrieve_p50_ms: float
    retrieve_p95_ms: float
    search_p50_ms: float
    search_p95_ms: float
    found_tasks: float
    found_insights: float


async def latencies(memory: Memory, probes: Sequence[str], warmup: int) -> tuple[list[float], list[float], list[int]]:
    """Seconds of each `retrieve` and each `search` on the probes (after warm-up), and what `retrieve` found."""
    for probe in probes[:warmup]:
        await memory.gmemory.retrieve(probe, scope=TEAM)
        await memory.search(probe, scope=TEAM, k=3, kinds=("query",))
    retrieve: list[float] = []
    search: list[float] = []
    found: list[int] = []
    for probe in probes[warmup:]:
        started = time.perf_counter()
        ctx = await memory.gmemory.retrieve(probe, scope=TEAM)
        retrieve.append(time.perf_counter() - started)
        started = time.perf_counter()
        await memory.search(probe, scope=TEAM, k=3, kinds=("query",))
        search.append(time.perf_counter() - started)
        found += [len(ctx.tasks), len(ctx.insights)]
    return retrieve, search, found


def p50_p95(seconds: Sequence[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=20)
    return statistics.median(seconds) * 1e3, cuts[18] * 1e3


async def measure(name: str, memory: Memory, args: argparse.Namespace) -> list[Row]:
    """Fill `memory` to each size in turn and measure it there."""
    tasks = synthetic_tasks(max(args.sizes), args.seed)
    probes = [t.text for t in synthetic_tasks(args.probes + args.warmup, args.seed + 1, prefix="probe")]
    seeder, rows, done = Seeder(memory), list[Row](), 0
    for size in sorted(args.sizes):
        before = (seeder.record_s, seeder.revise_s, seeder.revise_ops)
        await seeder.add(tasks[done:size])
        record_s, revise_s = seeder.record_s - before[0], seeder.revise_s - before[1]
        retrieve, search, found = await latencies(memory, probes, args.warmup)
        r50, r95 = p50_p95(retrieve)
        s50, s95 = p50_p95(search)
        rows.append(Row(
            name, size, (size - done) / record_s, (seeder.revise_ops - before[2]) / revise_s if revise_s else 0.0,
            seeder.links, r50, r95, s50, s95, statistics.fmean(found[0::2]), statistics.fmean(found[1::2]),
        ))  # fmt: skip
        print(f"  {name} at {size}: seeded {size - done} tasks in {record_s + revise_s:.1f} s", flush=True)
        done = size
    return rows


def parts(name: str, folder: Path) -> tuple[Journal, GraphStore]:
    """The journal (SQLite for every backend) and the backend's own graph (bolt's comes from the server)."""
    journal = SqliteJournal(folder / "memory.sqlite")
    return journal, SqliteGraph(folder / "memory.sqlite") if name == "sqlite" else InMemoryGraph()


async def run_backend(name: str, graph: GraphStore | None, folder: Path, args: argparse.Namespace) -> list[Row]:
    journal, own = parts(name, folder)
    memory = Memory.of(InMemorySpace(embedder_of(args.embedder)), journal=journal,
                       projections=[GraphProjection(graph or own)])  # fmt: skip
    await memory.open()
    try:
        return await measure(name, memory, args)
    finally:
        await memory.aclose()


@contextmanager
def bolt_graph(folder: Path) -> Generator[GraphStore]:
    """A `Neo4jGraph` on a fresh database of an ArcadeDB server started in `folder`, stopped on exit."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test fixtures start the server
    from hivegraph.memory.graph.neo4j import Neo4jGraph
    from tests.fixtures.bolt_server import BOLT_PORTS, HTTP_PORTS, running_arcadedb, server_command
    from tests.fixtures.ports import first_free_port

    with running_arcadedb(folder / "arcadedb", first_free_port(BOLT_PORTS), first_free_port(HTTP_PORTS)) as server:
        print(f"ArcadeDB answered on Bolt after {server.started_in_s:.1f} s")
        server_command(server, "create database graph_memory")
        yield Neo4jGraph(server.uri, user=server.user, password=server.password, database="graph_memory", timeout_s=60)


def print_table(rows: Sequence[Row], args: argparse.Namespace) -> None:
    print(f"\nG-Memory on synthetic tasks (embedder {args.embedder}; in-memory vectors; "
          f"{args.probes} probes after {args.warmup} warm-up)")  # fmt: skip
    head = ("backend", "tasks", "write t/s", "revise/s", "links", "ret p50", "ret p95", "srch p50", "x search",
            "x inmem", "growth", "tasks", "insights")  # fmt: skip
    print(f"{head[0]:<9} {head[1]:>6} " + " ".join(f"{h:>9}" for h in head[2:]))
    base = {r.size: r for r in rows if r.backend == "inmemory"}
    previous: dict[str, Row] = {}
    for r in rows:
        inmem = f"{r.retrieve_p50_ms / base[r.size].retrieve_p50_ms:.2f}" if r.size in base else "-"
        last = previous.get(r.backend)
        growth = f"{r.retrieve_p50_ms / last.retrieve_p50_ms:.2f}" if last else "-"
        cells = (f"{r.write_tasks_s:.1f}", f"{r.revise_ops_s:.1f}", str(r.similar_links), f"{r.retrieve_p50_ms:.2f}",
                 f"{r.retrieve_p95_ms:.2f}", f"{r.search_p50_ms:.2f}", f"{r.retrieve_p50_ms / r.search_p50_ms:.1f}",
                 inmem, growth, f"{r.found_tasks:.1f}", f"{r.found_insights:.1f}")  # fmt: skip
        print(f"{r.backend:<9} {r.size:>6} " + " ".join(f"{c:>9}" for c in cells))
        previous[r.backend] = r
    print("ms for latencies; x search: retrieve p50 / search p50 (same probes, same store); x inmem: retrieve p50 / "
          "the in-memory backend's at the same size; growth: p50 / p50 at the previous size")  # fmt: skip


async def run_all(args: argparse.Namespace, folder: Path, bolt: GraphStore | None) -> list[Row]:
    rows: list[Row] = []
    for name in args.backends:
        print(f"{name}: seeding and measuring", flush=True)
        (folder / name).mkdir()
        rows += await run_backend(name, bolt if name == "bolt" else None, folder / name, args)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_ints, default=[1_000, 3_000], help="comma-separated task counts")
    parser.add_argument("--backends", type=_names, default=None, help=f"comma-separated, of {', '.join(BACKENDS)}")
    parser.add_argument("--bolt", action="store_true", help="add the bolt backend (starts an ArcadeDB server)")
    parser.add_argument("--embedder", choices=("hash", "minilm"), default="hash")
    parser.add_argument("--probes", type=int, default=200, help="timed probe tasks per size")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    if args.backends is None:
        args.backends = ["sqlite", *(["bolt"] if args.bolt else [])]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if "bolt" in args.backends:
            with bolt_graph(folder) as bolt:
                rows = asyncio.run(run_all(args, folder, bolt))
        else:
            rows = asyncio.run(run_all(args, folder, None))
    print_table(rows, args)
    if args.json is not None:
        figures = {"config": {k: v for k, v in vars(args).items() if k != "json"}, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backends {unknown}; choose from {', '.join(BACKENDS)}")
    return names


if __name__ == "__main__":
    main()
