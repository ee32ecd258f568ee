"""`LadybugGraph`: the graph conformance suite on a file, one process per file (a second one is refused cleanly,
never crashed), one database per file within a process, a kill -9 mid-write, a connection whose BEGIN failed, and
text that looks like a query stored as data."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import cast

import pytest

from hivegraph.errors import BackendUnavailableError, ConfigError, JournalSchemaError, MemoryStoreError
from hivegraph.memory.graph import EDGE_ENDPOINTS, GraphCounts, GraphEdge, GraphNode, GraphStore, InMemoryGraph
from hivegraph.memory.graph.conformance import ADA, GRAPH_CHECKS, graph_checks, task
from hivegraph.memory.graph.ladybug import HELD_ELSEWHERE, LadybugGraph
from hivegraph.memory.types import Scope
from hivegraph.memory.vocabulary import NODE_LABELS, Direction, EdgeType, NodeLabel
from tests.unit.graph_crash import expect_whole_batches, stream_and_kill

BACKEND = "hivegraph.memory.graph.ladybug:LadybugGraph"
ROOT = Path(__file__).resolve().parents[2]
OPENER = """
import asyncio, sys
from hivegraph.errors import BackendUnavailableError
from hivegraph.memory.graph.conformance import ADA
from hivegraph.memory.graph.ladybug import LadybugGraph

async def main(path: str) -> None:
    try:
        graph = LadybugGraph(path)
    except BackendUnavailableError as exc:
        print("refused:", exc, flush=True)
        return
    print("opened:", [n.id for n in await graph.get_nodes(["a"], scope=ADA)], flush=True)
    await graph.aclose()

asyncio.run(main(sys.argv[1]))
"""
"""Opens the graph at `path`: prints the refusal, or what it read."""
FAILED_BEGIN = """
import asyncio, sys
import ladybug
from hivegraph.errors import MemoryStoreError
from hivegraph.memory.graph.conformance import ADA, task
from hivegraph.memory.graph.ladybug import LadybugGraph

async def main(path: str) -> None:
    graph = LadybugGraph(path)
    await graph.upsert([task("a")], [], seq=1)
    other = ladybug.Connection(graph._handle.database)  # a writer beside the graph's own connection
    other.execute("BEGIN TRANSACTION")
    try:
        await graph.upsert([task("b")], [], seq=2)  # its BEGIN fails: that connection must never run again
    except MemoryStoreError as exc:
        print("refused:", exc, flush=True)
    print("beside:", (await graph.counts()).nodes, flush=True)  # a plain statement: the one that crashed
    other.execute("ROLLBACK")
    other.close()
    await graph.upsert([task("c")], [], seq=3)
    print("after:", [n.id for n in await graph.get_nodes(["a", "b", "c"], scope=ADA)], flush=True)
    await graph.aclose()

asyncio.run(main(sys.argv[1]))
"""
"""Makes the graph's `BEGIN` fail once (ladybug allows one write transaction), then reads, writes and reads again."""

FORKED = """
import asyncio, os, sys
from hivegraph.errors import HivegraphError
from hivegraph.memory.graph.conformance import task
from hivegraph.memory.graph.ladybug import LadybugGraph

graph = LadybugGraph(sys.argv[1])
asyncio.run(graph.upsert([task("a")], [], seq=1))
pid = os.fork()
if pid == 0:
    for call in (graph.counts, graph.aclose, lambda: asyncio.to_thread(LadybugGraph, sys.argv[1])):
        try:
            print("child:", asyncio.run(call()), flush=True)
        except HivegraphError as exc:
            print("child refused:", exc, flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("parent:", os.waitstatus_to_exitcode(status), asyncio.run(graph.counts()).nodes, flush=True)
asyncio.run(graph.aclose())
"""
"""Opens the graph, forks, and uses the graph in the child (refused, and the parent's database left alone)."""


def _python(script: str, *args: object) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", script, *map(str, args)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(script: str, *args: object) -> tuple[int, str, str]:
    child = _python(script, *args)
    out, err = child.communicate(timeout=120)
    return child.returncode, out, err


@pytest.mark.parametrize("name", graph_checks(persistent=True))
async def test_conformance_on_a_file(name: str, tmp_path: Path) -> None:
    async def open_graph() -> GraphStore:
        return LadybugGraph(tmp_path / "graph.lbug")

    await GRAPH_CHECKS[name](open_graph)


async def test_a_second_process_is_refused_with_a_clear_error_and_may_open_the_file_once_it_is_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "graph.lbug"
    graph = LadybugGraph(path)
    assert isinstance(graph, GraphStore) and graph.persistent
    await graph.upsert([task("a")], [], seq=1)
    rc, out, err = _run(OPENER, path)
    assert rc == 0, f"the second process ended with {rc} (a negative code is a signal): {err}"
    assert out.startswith("refused: ladybug graph"), (out, err)
    assert str(path) in out and HELD_ELSEWHERE in out
    assert "another process" in out and "sqlite graph backend" in out
    assert [n.id for n in await graph.get_nodes(["a"], scope=ADA)] == ["a"], "the holder goes on unharmed"
    await graph.aclose()
    assert _run(OPENER, path)[:2] == (0, "opened: ['a']\n")


async def test_graphs_on_one_file_in_one_process_share_one_database(tmp_path: Path) -> None:
    path = tmp_path / "graph.lbug"
    first = LadybugGraph(path)
    second = LadybugGraph(tmp_path / "sub" / ".." / "graph.lbug", buffer_pool_mb=64)  # the same file, spelled apart
    await first.upsert([task("a")], [], seq=1)
    assert [n.id for n in await second.get_nodes(["a"], scope=ADA)] == ["a"]
    await first.aclose()
    await first.aclose()  # twice changes nothing
    with pytest.raises(MemoryStoreError, match=r"graph\.lbug is closed"):
        await first.counts()
    await second.upsert([task("b")], [], seq=2)
    assert (await second.counts()).nodes == 2
    assert _run(OPENER, path)[1].startswith("refused:"), "still held while one graph is open"
    await second.aclose()
    assert _run(OPENER, path)[1] == "opened: ['a']\n", "let go with the last graph"


def test_a_connection_whose_begin_failed_is_replaced_not_reused(tmp_path: Path) -> None:
    rc, out, err = _run(FAILED_BEGIN, tmp_path / "graph.lbug")
    assert rc == 0, f"the process ended with {rc} (-11 is the segfault of a reused connection): {err}"
    refused, beside, after = out.splitlines()
    assert refused.startswith("refused: ladybug graph") and "write transaction" in refused
    assert beside == "beside: 1"
    assert after == "after: ['a', 'c']"


async def test_writers_killed_mid_stream_leave_every_acknowledged_batch_whole_and_no_half_batch(
    tmp_path: Path,
) -> None:
    path, size, acknowledged = tmp_path / "graph.lbug", 200, [0]
    for fraction in (0.2, 0.5, 0.8):  # a restarted writer replays the batch after its last acknowledged one
        acknowledged += stream_and_kill(
            "hivegraph.memory.graph.ladybug:LadybugGraph", path, size, acknowledged[-1] + 1, fraction
        )
    graph = LadybugGraph(path)
    await expect_whole_batches(graph, acknowledged, size)
    await graph.aclose()


async def test_text_that_looks_like_cypher_is_stored_as_plain_data(tmp_path: Path) -> None:
    path = tmp_path / "graph.lbug"
    graph = LadybugGraph(path)
    attacks = [
        "a'}) MATCH (n) DETACH DELETE n //",
        '"}]->(x) CREATE (y:Task {id: "owned"}) RETURN 1; //',
        "$id` ) RETURN n UNION MATCH (m) RETURN m //",
        "x\\' OR 1=1 -- \u0000-free but \u2028 odd \U0001f600",
    ]
    scope = Scope(user_id=attacks[0], team_id=attacks[1])
    nodes = [GraphNode(text, "Task", scope, text, {text: text, "json": '{"a": [1, "}"]}'}) for text in attacks]
    edges = [GraphEdge(f"{a}->{b}", "SIMILAR", a, b, scope, 0.5, {b: a}) for a, b in pairwise(attacks)]
    await graph.upsert(nodes, edges, seq=1)
    assert await graph.get_nodes(attacks, scope=scope) == [
        GraphNode(n.id, "Task", scope, n.text, n.properties, seq=1) for n in nodes
    ]
    got_edges = await graph.get_edges([e.id for e in edges], scope=scope)
    assert [(e.source, e.target, dict(e.properties)) for e in got_edges] == [
        (a, b, {b: a}) for a, b in pairwise(attacks)
    ]
    reached = await graph.neighbours([attacks[0]], scope=scope, hops=3)
    assert [(n.node.id, n.hops) for n in reached] == [(attacks[1], 1), (attacks[2], 2), (attacks[3], 3)]
    assert await graph.get_nodes(attacks, scope=ADA) == []
    assert await graph.counts() == GraphCounts(len(attacks), len(edges), 0, 0), "nothing created or deleted"
    assert (await graph.retire(node_ids=[attacks[1]], scope=scope, seq=2)).edges == sorted(e.id for e in edges[:2])
    await graph.aclose()
    import ladybug  # the stored columns hold the text itself

    with ladybug.Database(str(path), read_only=True) as database, ladybug.Connection(database) as db:
        result = db.execute(
            "MATCH (n:Task) WHERE n.id = $id RETURN n.text, n.properties, n.user_id", {"id": attacks[1]}
        )
        assert not isinstance(result, list)
        ((text, properties, user),) = result.get_all()
    assert (text, json.loads(properties)[attacks[1]], user) == (attacks[1], attacks[1], attacks[0])


async def test_unopenable_paths_are_backend_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "junk.lbug").write_bytes(b"this is not a database, " * 200)
    for path in (tmp_path, tmp_path / "a-file" / "graph.lbug", tmp_path / "junk.lbug"):
        with pytest.raises(BackendUnavailableError, match="ladybug graph") as refused:
            LadybugGraph(path)
        assert str(path) in refused.value.backend
    for bad in ("", ":memory:"):
        with pytest.raises(ConfigError, match="file path"):
            LadybugGraph(bad)


async def test_graph_tables_of_a_newer_hivegraph_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "graph.lbug"
    await LadybugGraph(path).aclose()
    import ladybug

    with ladybug.Database(str(path)) as database, ladybug.Connection(database) as db:
        db.execute("MATCH (m:HgGraphMeta) WHERE m.key = 'schema_version' SET m.value = 99")
    for _ in range(2):  # the refusal lets go of the file: the second try is refused for the schema again
        with pytest.raises(JournalSchemaError, match="schema 99"):
            LadybugGraph(path)


def test_hivegraph_imports_without_ladybug_and_names_the_extra(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['ladybug'] = None\n"
        "import hivegraph.memory.graph, hivegraph.memory.graph.ladybug as lg\n"
        "try:\n    lg.LadybugGraph(sys.argv[1])\nexcept ImportError as exc:\n    print(exc)\n"
    )
    rc, out, err = _run(script, tmp_path / "graph.lbug")
    assert (rc, out.strip()) == (0, "LadybugGraph needs the 'ladybug' extra: pip install 'hivegraph[ladybug]'"), err


async def test_walks_match_the_reference_on_a_random_graph_of_every_label_and_type(tmp_path: Path) -> None:
    rng, labels = random.Random(3), cast(list[NodeLabel], sorted(NODE_LABELS))
    scopes = [ADA, Scope(user_id="ada", run_id="r1"), Scope(user_id="bob")]
    nodes = [
        GraphNode(f"n{i}", rng.choice(labels), rng.choice(scopes), "", {"step": i, "score": 1.0}) for i in range(40)
    ]
    edges: list[GraphEdge] = []
    for n in range(120):
        type_ = rng.choice(list(EDGE_ENDPOINTS))
        source, target = (rng.choice([x for x in nodes if x.label == want]) for want in EDGE_ENDPOINTS[type_])
        wider = source.scope if source.scope.contains(target.scope) else target.scope
        if source.id != target.id and wider.contains(source.scope) and wider.contains(target.scope):
            edges.append(GraphEdge(f"e{n}", type_, source.id, target.id, wider))
    reference, graph = InMemoryGraph(), LadybugGraph(tmp_path / "graph.lbug")
    for store in (reference, graph):
        await store.upsert(nodes, edges, seq=1)
        await store.retire(node_ids=["n3", "n17"], edge_ids=[e.id for e in edges[::9]], scope=ADA, seq=2)
    kinds: list[list[EdgeType] | None] = [
        None,
        ["SIMILAR"],
        ["HAS_STEP", "NEXT"],
        ["SUPPORTS", "CONTRADICTS", "ANSWERS"],
        ["MENTIONS"],
    ]
    directions: list[Direction] = ["out", "in", "both"]
    filters: list[list[NodeLabel] | None] = [None, ["Message"], ["Task", "Insight"]]
    for hops in (1, 2, 4):
        for types in kinds:
            starts = [node.id for node in rng.sample(nodes, 3)]
            for direction in directions:
                scope = rng.choice([ADA, *scopes])
                found = [await store.neighbours(starts, scope=scope, hops=hops, edge_types=types, direction=direction)
                         for store in (reference, graph)]  # fmt: skip
                assert found[0] == found[1], (starts, scope, hops, types, direction)
                wanted = rng.choice(filters)
                labelled = [
                    await store.neighbours(starts, scope=scope, hops=hops, labels=wanted)
                    for store in (reference, graph)
                ]
                assert labelled[0] == labelled[1], (starts, scope, hops, wanted)
            around = [
                await store.subgraph(starts, scope=ADA, hops=hops - 1, edge_types=types) for store in (reference, graph)
            ]
            assert around[0] == around[1], (starts, hops - 1, types)
    assert any(n.hops == 4 for n in await graph.neighbours(["n0", "n1", "n2"], scope=ADA, hops=4)), (
        "a deep enough graph"
    )
    await graph.aclose()


def test_a_graph_opened_before_a_fork_is_refused_in_the_child_and_left_alone_for_the_parent(tmp_path: Path) -> None:
    rc, out, err = _run(FORKED, tmp_path / "graph.lbug")
    assert rc == 0, err
    counts, closed, reopened, parent = out.splitlines()
    assert counts.startswith("child refused:") and "before this process forked" in counts
    assert closed == "child: None"
    assert reopened.startswith("child refused:") and HELD_ELSEWHERE in reopened
    assert parent == "parent: 0 1"
