"""The graph conformance suite against the in-memory reference, plus the shared checks every backend calls."""

from __future__ import annotations

import asyncio
import threading
from itertools import pairwise

import pytest

from hivegraph.errors import DanglingEdgeError, InvalidInputError, ScopeViolationError
from hivegraph.memory.graph import GraphEdge, GraphNode, GraphStore, InMemoryGraph
from hivegraph.memory.graph.conformance import (
    ADA,
    BOB,
    GRAPH_CHECKS,
    GRAPH_PERSISTENCE_CHECKS,
    TEAM,
    edge,
    graph_checks,
    insight,
    task,
)
from hivegraph.memory.graph.plan import check_ids, check_node, plan_retire, plan_upsert, referenced
from hivegraph.memory.vocabulary import EDGE_ENDPOINTS, EDGE_TYPES, MAX_HOPS


async def _open() -> GraphStore:
    return InMemoryGraph()


@pytest.mark.parametrize("name", graph_checks(persistent=False))
async def test_conformance(name: str) -> None:
    await GRAPH_CHECKS[name](_open)


def test_persistence_checks_are_left_out_only_for_stores_that_do_not_persist() -> None:
    assert InMemoryGraph().persistent is False
    assert GRAPH_PERSISTENCE_CHECKS.isdisjoint(graph_checks(persistent=False))
    assert set(graph_checks(persistent=True)) == set(GRAPH_CHECKS)


def test_the_reference_is_a_graph_store() -> None:
    assert isinstance(InMemoryGraph(), GraphStore)


def test_every_edge_type_joins_known_labels() -> None:
    assert set(EDGE_ENDPOINTS) == EDGE_TYPES


async def test_threads_writing_at_once_lose_nothing() -> None:
    graph = InMemoryGraph()
    await graph.upsert([task("hub")], [], seq=1)

    def write(n: int) -> None:
        asyncio.run(graph.upsert([task(f"t{n}")], [edge("SIMILAR", "hub", f"t{n}")], seq=n + 2))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(await graph.neighbours(["hub"], scope=ADA)) == 32


async def test_hops_up_to_the_limit_are_served_and_beyond_it_refused() -> None:
    graph = InMemoryGraph()
    ids = [f"t{n}" for n in range(MAX_HOPS + 3)]
    await graph.upsert([task(i) for i in ids], [edge("SIMILAR", a, b) for a, b in pairwise(ids)], seq=1)
    found = await graph.neighbours([ids[0]], scope=ADA, hops=MAX_HOPS)
    assert [n.hops for n in found] == list(range(1, MAX_HOPS + 1))
    with pytest.raises(InvalidInputError, match="hops"):
        await graph.neighbours([ids[0]], scope=ADA, hops=MAX_HOPS + 1)


def test_plan_upsert_stamps_what_it_writes_and_passes_over_what_is_newer() -> None:
    stored = {
        "old": GraphNode("old", "Task", ADA, "stored", seq=9),
        "gone": GraphNode("gone", "Task", ADA, seq=2, retired_seq=4),
    }
    given = [GraphNode("old", "Task", ADA, "stale", seq=123), GraphNode("new", "Task", ADA, seq=77, retired_seq=1)]
    plan = plan_upsert(given, [edge("SIMILAR", "new", "old")], 5, known_nodes=stored, known_edges={})
    assert plan.nodes == [GraphNode("new", "Task", ADA, seq=5)]
    assert [(e.id, e.seq, e.retired_seq) for e in plan.edges] == [("SIMILAR:new->old", 5, None)]
    with pytest.raises(DanglingEdgeError) as dangling:
        plan_upsert([], [edge("SIMILAR", "old", "gone")], 5, known_nodes=stored, known_edges={})
    assert (dangling.value.edge_id, dangling.value.node_id) == ("SIMILAR:old->gone", "gone")


def test_plan_upsert_refuses_an_id_of_another_scope_without_naming_it() -> None:
    stored = {"x": GraphNode("x", "Task", BOB)}
    with pytest.raises(ScopeViolationError) as taken:
        plan_upsert([task("x")], [], 3, known_nodes=stored, known_edges={})
    assert "bob" not in str(taken.value)
    assert taken.value.record_id == "x"


def test_plan_retire_takes_every_edge_of_a_retired_node_whatever_its_scope() -> None:
    team_edge = GraphEdge("e1", "SIMILAR", "a", "b", TEAM, seq=1)
    own_edge = GraphEdge("e2", "SIMILAR", "b", "c", ADA, seq=1)
    nodes, edges = plan_retire(
        ["a", "unknown"], ["e2"], scope=ADA, seq=3,
        known_nodes={"a": task("a")}, known_edges={"e1": team_edge, "e2": own_edge},
    )  # fmt: skip
    assert [(n.id, n.retired_seq) for n in nodes] == [("a", 3)]
    assert [(e.id, e.retired_seq) for e in edges] == [("e1", 3), ("e2", 3)]


def test_referenced_names_the_nodes_and_edges_a_backend_reads_first() -> None:
    nodes = [task("t"), insight("i", 1)]
    assert referenced(nodes, [edge("SUPPORTS", "u", "i")]) == ({"t", "i", "u"}, {"SUPPORTS:u->i"})


@pytest.mark.parametrize(
    ("node", "field", "words"),
    [
        (GraphNode("m", "Message", ADA, "", {"step": True}), "n.properties.step", "integer step"),
        (GraphNode("m", "Message", ADA, "", {"step": 1.5}), "n.properties.step", "integer step"),
        (GraphNode("i", "Insight", ADA, "", {"score": "high"}), "n.properties.score", "numeric score"),
        (GraphNode("t", "Task", ADA, "\udc80"), "n.text", "UTF-8"),
        (GraphNode("t" * 257, "Task", ADA), "n.id", "over the limit"),
        (GraphNode("t", "Task", ADA, "x" * 32_001), "n.text", "over the limit"),
    ],
)
def test_check_node_names_the_bad_field(node: GraphNode, field: str, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words) as refused:
        check_node(node, "n")
    assert refused.value.field == field


def test_check_ids_keeps_the_first_of_each_and_refuses_a_bare_string() -> None:
    assert check_ids(["b", "a", "b"]) == ["b", "a"]
    with pytest.raises(InvalidInputError, match="list of ids"):
        check_ids("ab")
