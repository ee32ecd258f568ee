"""k-hop `neighbours` latency of `SqliteGraph` against the in-memory reference, on one random graph.

The same graph is built in `InMemoryGraph` and in a `SqliteGraph` file in a
temporary folder (`synchronous=FULL`, as shipped): N `Task` nodes of one user
and E `SIMILAR` edges between random distinct pairs (seeded), written in
batches of 1,000 nodes, then 2,000 edges, one seq each. Each store then answers
the same Q random starts for 1 hop and for 2 hops (any edge type, both
directions), after W warm-up calls; each call is timed alone, around the
`await` (for SQLite: the hop to a worker thread, one read transaction on a
pooled connection, the recursive query and the rows turned into nodes). The
table gives p50 and p95 in ms, the SQLite / in-memory ratio of each, and the
mean number of nodes returned (equal for both stores, or the run fails).

With `--bolt`, `Neo4jGraph` is timed too, on an ArcadeDB server with its Bolt
plugin started for the run on loopback (the test suite's fixture, from the
`arcadedb-embedded` test extra) and stopped after: each call is one read
transaction of one query per hop over Bolt. ArcadeDB stands in for Neo4j's
driver path; its times are not Neo4j's.

    .venv/bin/python benchmarks/graph_hops.py                           # 10k nodes, 20k edges, 500 starts
    .venv/bin/python benchmarks/graph_hops.py --nodes 1000 --edges 2000 --queries 100
    .venv/bin/python benchmarks/graph_hops.py --bolt --nodes 2000 --edges 4000 --queries 100
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hivegraph.memory.graph import GraphEdge, GraphNode, GraphStore, InMemoryGraph, SqliteGraph
from hivegraph.memory.types import Scope

ADA = Scope(user_id="ada")
NODE_BATCH = 1_000
EDGE_BATCH = 2_000


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p95_ms: float
    found: float


def random_graph(nodes: int, edges: int, seed: int) -> tuple[list[GraphNode], list[GraphEdge]]:
    rng = random.Random(seed)
    ids = [f"t{n}" for n in range(nodes)]
    graph_nodes = [GraphNode(i, "Task", ADA, f"task {i}", {"outcome": "success"}) for i in ids]
    pairs = (rng.sample(ids, 2) for _ in range(edges))
    graph_edges = [GraphEdge(f"SIMILAR:{n}", "SIMILAR", a, b, ADA, rng.random()) for n, (a, b) in enumerate(pairs)]
    return graph_nodes, graph_edges


async def build(graph: GraphStore, nodes: list[GraphNode], edges: list[GraphEdge]) -> float:
    started, seq = time.perf_counter(), 0
    for batch_nodes, batch_edges, size in ((nodes, [], NODE_BATCH), ([], edges, EDGE_BATCH)):
        for first in range(0, len(batch_nodes) + len(batch_edges), size):
            seq += 1
            await graph.upsert(batch_nodes[first : first + size], batch_edges[first : first + size], seq=seq)
    return time.perf_counter() - started


async def timed(graph: GraphStore, starts: list[str], hops: int, warmup: int) -> Timing:
    for start in starts[:warmup]:
        await graph.neighbours([start], scope=ADA, hops=hops)
    seconds: list[float] = []
    found: list[int] = []
    for start in starts[warmup:]:
        began = time.perf_counter()
        result = await graph.neighbours([start], scope=ADA, hops=hops)
        seconds.append(time.perf_counter() - began)
        found.append(len(result))
    cuts = statistics.quantiles(seconds, n=20)
    return Timing(statistics.median(seconds) * 1e3, cuts[18] * 1e3, statistics.fmean(found))


@contextmanager
def bolt_graph(folder: Path) -> Generator[GraphStore]:
    """A `Neo4jGraph` on a fresh database of an ArcadeDB server started in `folder`, stopped on exit."""
    if __package__ in (None, ""):  # run as `python benchmarks/graph_hops.py`: make `tests` importable
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hivegraph.memory.graph.neo4j import Neo4jGraph
    from tests.fixtures.bolt_server import BOLT_PORTS, HTTP_PORTS, running_arcadedb, server_command
    from tests.fixtures.ports import first_free_port

    with running_arcadedb(folder / "arcadedb", first_free_port(BOLT_PORTS), first_free_port(HTTP_PORTS)) as server:
        print(f"ArcadeDB answered on Bolt after {server.started_in_s:.1f} s")
        server_command(server, "create database graph_hops")
        yield Neo4jGraph(server.uri, user=server.user, password=server.password, database="graph_hops", timeout_s=60)


async def compare(stores: dict[str, GraphStore], args: argparse.Namespace) -> None:
    nodes, edges = random_graph(args.nodes, args.edges, args.seed)
    starts = random.Random(args.seed + 1).choices([node.id for node in nodes], k=args.queries + args.warmup)
    for name, store in stores.items():
        print(f"built {name}: {await build(store, nodes, edges):.1f} s ({args.nodes} nodes, {args.edges} edges)")
    print(f"\n{'hops':>4} {'store':>7} {'p50 ms':>8} {'p95 ms':>8} {'p50 x':>7} {'p95 x':>7} {'found':>7}")
    for hops in (1, 2):
        timings = {name: await timed(store, starts, hops, args.warmup) for name, store in stores.items()}
        memory = timings["memory"]
        for name, timing in timings.items():
            if timing.found != memory.found:
                raise SystemExit(f"{hops} hops: {name} disagrees with memory ({timing.found} vs {memory.found} nodes)")
            ratios = f"{timing.p50_ms / memory.p50_ms:>7.1f} {timing.p95_ms / memory.p95_ms:>7.1f}"
            print(f"{hops:>4} {name:>7} {timing.p50_ms:>8.3f} {timing.p95_ms:>8.3f} {ratios} {timing.found:>7.1f}")
    for store in stores.values():
        await store.aclose()


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        stores: dict[str, GraphStore] = {
            "memory": InMemoryGraph(),
            "sqlite": SqliteGraph(Path(folder) / "graph.sqlite"),
        }
        if not args.bolt:
            asyncio.run(compare(stores, args))
            return
        with bolt_graph(Path(folder)) as bolt:
            asyncio.run(compare(stores | {"bolt": bolt}, args))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=500, help="timed starts per hop count")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bolt", action="store_true", help="also time Neo4jGraph on an ArcadeDB Bolt server")
    main(parser.parse_args())
