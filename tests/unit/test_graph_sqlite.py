"""`SqliteGraph`: the graph conformance suite on a file and in memory, writers in several processes, a kill -9
mid-write, the query plans of the reads, and the file it cannot open."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from itertools import pairwise
from pathlib import Path
from typing import cast

import pytest

from hivegraph.errors import (
    BackendUnavailableError,
    ConfigError,
    InvalidInputError,
    JournalSchemaError,
    MemoryStoreError,
)
from hivegraph.memory.graph import GraphCounts, GraphEdge, GraphNode, GraphStore, InMemoryGraph, SqliteGraph
from hivegraph.memory.graph.conformance import ADA, GRAPH_CHECKS, edge, graph_checks, insight, message, task
from hivegraph.memory.journal_sqlite import SqliteJournal
from tests.unit.graph_crash import expect_whole_batches, stream_and_kill

BACKEND = "hivegraph.memory.graph.sqlite:SqliteGraph"
ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import asyncio, sys, time
from pathlib import Path
from hivegraph.memory.graph import SqliteGraph
from hivegraph.memory.graph.conformance import edge, task

async def main(path: str, name: str, batches: int, size: int, go: str) -> None:
    graph = SqliteGraph(path)
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.005)
    start = time.monotonic()
    for k in range(batches):
        ids = [f"{name}{k}-{i}" for i in range(size)]
        await graph.upsert([task(i) for i in ids], [edge("SIMILAR", "hub", i) for i in ids], seq=k + 2)
        await graph.advance(k + 2)
    print(start, time.monotonic(), flush=True)
    await graph.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
"""
"""Writes `batches` upserts of `size` tasks, each joined to the hub, once the file `go` exists."""


def _python(script: str, *args: object) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", script, *map(str, args)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("name", graph_checks(persistent=True))
async def test_conformance_on_a_file(name: str, tmp_path: Path) -> None:
    async def open_graph() -> GraphStore:
        return SqliteGraph(tmp_path / "graph.sqlite")

    await GRAPH_CHECKS[name](open_graph)


@pytest.mark.parametrize("name", graph_checks(persistent=False))
async def test_conformance_in_memory(name: str) -> None:
    async def open_graph() -> GraphStore:
        return SqliteGraph(":memory:")

    await GRAPH_CHECKS[name](open_graph)


async def test_a_file_graph_is_a_persistent_graph_store_and_an_in_memory_one_is_not(tmp_path: Path) -> None:
    on_file, in_memory = SqliteGraph(tmp_path / "g.sqlite"), SqliteGraph(":memory:")
    assert isinstance(on_file, GraphStore)
    assert (on_file.persistent, in_memory.persistent) == (True, False)
    await on_file.aclose()
    await in_memory.aclose()


async def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path, go, batches, size = tmp_path / "graph.sqlite", tmp_path / "go", 30, 20
    graph = SqliteGraph(path)
    await graph.upsert([task("hub")], [], seq=1)
    writers = [_python(WRITER, path, name, batches, size, go) for name in ("a", "b")]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready", writer.stderr
    go.touch()
    spans = [writer.communicate(timeout=120) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], spans
    (start_a, end_a), (start_b, end_b) = (map(float, out.split()) for out, _ in spans)
    assert max(start_a, start_b) < min(end_a, end_b), "the writers did not overlap"
    written = 2 * batches * size
    assert await graph.counts() == GraphCounts(1 + written, written, 0, 0)
    assert len(await graph.neighbours(["hub"], scope=ADA)) == written
    assert await graph.cursor() == batches + 1
    await graph.aclose()


async def test_writers_killed_mid_stream_leave_every_acknowledged_batch_whole_and_no_half_batch(
    tmp_path: Path,
) -> None:
    path, size, acknowledged = tmp_path / "graph.sqlite", 300, [0]
    for fraction in (0.2, 0.5, 0.8):  # a restarted writer replays the batch after its last acknowledged one
        acknowledged += stream_and_kill(
            "hivegraph.memory.graph.sqlite:SqliteGraph", path, size, acknowledged[-1] + 1, fraction
        )
        with closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    graph = SqliteGraph(path)
    await expect_whole_batches(graph, acknowledged, size)
    await graph.aclose()


async def _chain_of_tasks(graph: SqliteGraph) -> None:
    ids = [f"t{n}" for n in range(300)]
    steps = [message(f"m{n}", n) for n in range(20)]
    await graph.upsert(
        [*(task(i) for i in ids), *steps, insight("i", 2.0)],
        [
            *(edge("SIMILAR", a, b) for a, b in pairwise(ids)),
            *(edge("HAS_STEP", "t0", m.id) for m in steps),
            edge("SUPPORTS", "t1", "i"),
        ],
        seq=1,
    )


READS: dict[str, Callable[[SqliteGraph], Awaitable[object]]] = {
    "neighbours_both": lambda g: g.neighbours(["t5"], scope=ADA, hops=2),
    "neighbours_typed_out": lambda g: g.neighbours(["t5"], scope=ADA, hops=3, edge_types=["SIMILAR"], direction="out"),
    "neighbours_in_labelled": lambda g: g.neighbours(["t5"], scope=ADA, hops=2, labels=["Task"], direction="in"),
    "subgraph": lambda g: g.subgraph(["t5", "t9"], scope=ADA, hops=2),
    "trajectory": lambda g: g.trajectory("t0", scope=ADA),
    "insights_for": lambda g: g.insights_for(["t1", "t2"], scope=ADA),
    "nodes_of": lambda g: g.nodes_of("Message", scope=ADA, limit=5),
    "get_nodes": lambda g: g.get_nodes(["t1", "t2"], scope=ADA),
}


@pytest.mark.parametrize("name", READS)
async def test_reads_use_indexes_not_full_scans(tmp_path: Path, name: str) -> None:
    graph = SqliteGraph(tmp_path / "graph.sqlite", synchronous="OFF")
    await _chain_of_tasks(graph)
    statements: list[str] = []
    graph.trace(statements.append)
    assert await READS[name](graph)
    graph.trace(None)
    reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert reads
    with closing(sqlite3.connect(tmp_path / "graph.sqlite")) as db:
        plans = [row[3] for sql in reads for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
    # the recursive walk's own queue, its per-node minimum, and the ids asked (a JSON list)
    allowed = ("SCAN walk", "SCAN best", "SCAN json_each VIRTUAL TABLE")
    scans = [step for step in plans if step.startswith("SCAN") and not step.startswith(allowed)]
    assert scans == [], plans
    assert not any("AUTOMATIC" in step for step in plans), plans  # an index built for one query reads every row
    if name.startswith(("neighbours", "subgraph")):
        assert any("USING INDEX hg_graph_edges_" in step for step in plans), plans


async def test_unopenable_paths_are_backend_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database, " * 100)
    for path in (tmp_path, tmp_path / "a-file" / "graph.sqlite", tmp_path / "junk.sqlite"):
        with pytest.raises(BackendUnavailableError, match="sqlite graph") as refused:
            SqliteGraph(path)
        assert str(path) in refused.value.backend
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteGraph(tmp_path / "g.sqlite", synchronous="FULL; DROP TABLE x")


async def test_a_file_held_by_another_writer_is_waited_for_then_reported_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "graph.sqlite"
    graph = SqliteGraph(path, busy_timeout_s=0.01)
    await graph.upsert([task("a")], [], seq=1)
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        with pytest.raises(MemoryStoreError, match="locked by another writer") as busy:
            await graph.upsert([task("b")], [], seq=2)
        waited = time.monotonic() - started
        assert [n.id for n in await graph.get_nodes(["a", "b"], scope=ADA)] == ["a"], "a read beside the writer"
        ticker.cancel()
        holder.execute("ROLLBACK")
    assert str(path) in str(busy.value)
    assert ticks > waited / 0.01 / 4, "the event loop was blocked while the write waited"
    await graph.upsert([task("b")], [], seq=2)
    assert await graph.counts() == GraphCounts(2, 0, 0, 0)
    await graph.aclose()


async def test_the_graph_shares_a_file_with_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    journal = SqliteJournal(path, synchronous="OFF")
    graph = SqliteGraph(path, synchronous="OFF")
    await graph.upsert([task("a"), task("b")], [edge("SIMILAR", "a", "b")], seq=1)
    await graph.advance(1)
    assert (await journal.last_seq(), await journal.cursor("graph")) == (0, 0)
    await graph.reset()
    with closing(sqlite3.connect(path)) as db:
        tables = {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"hg_graph_nodes", "hg_graph_edges", "hg_graph_meta", "hg_ops", "hg_meta", "hg_cursors"} <= tables
    await graph.aclose()
    await journal.aclose()


async def test_graph_tables_of_a_newer_hivegraph_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "graph.sqlite"
    await SqliteGraph(path).aclose()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("UPDATE hg_graph_meta SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(JournalSchemaError, match="schema 99"):
        SqliteGraph(path)


async def test_a_closed_graph_refuses_calls_naming_the_file(tmp_path: Path) -> None:
    graph = SqliteGraph(tmp_path / "graph.sqlite")
    await graph.aclose()
    with pytest.raises(MemoryStoreError, match=r"graph\.sqlite is closed"):
        await graph.counts()


@pytest.mark.parametrize(
    ("nodes", "edges"), [("t1", []), ([None], []), ([task("t1")], 7), ([task("t1")], [task("t2")])]
)
async def test_malformed_lists_are_refused_as_the_reference_refuses_them(nodes: object, edges: object) -> None:
    refused: list[str] = []
    for graph in (InMemoryGraph(), SqliteGraph(":memory:")):
        with pytest.raises(InvalidInputError) as error:
            await graph.upsert(cast(list[GraphNode], nodes), cast(list[GraphEdge], edges), seq=1)
        refused.append(error.value.field)
        assert await graph.counts() == GraphCounts(0, 0, 0, 0)
    assert refused[0] == refused[1]
