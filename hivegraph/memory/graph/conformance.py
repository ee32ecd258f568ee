"""One conformance suite that every `GraphStore` must pass: the in-memory reference and each backend.

Each check is an async function that takes an `OpenGraph` (a callable that
opens the store under test at one location; calling it again opens the same
location) and raises `AssertionError` on a deviation from the reference
(`InMemoryGraph`). Each check starts from an empty store. A test module
parametrises over backends::

    @pytest.mark.parametrize("name", graph_checks(persistent=True))
    async def test_embedded(name: str, tmp_path: Path) -> None:
        await GRAPH_CHECKS[name](lambda: open_embedded(tmp_path))

Decisions the checks pin down: the start nodes of `neighbours` are never in
its result (not even when a cycle leads back to them); `labels` filters what is
returned, not what is passed through; `subgraph` returns every visible edge
between two returned nodes; at one `seq`, retirement wins over a write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from itertools import pairwise
from typing import TypeVar, cast

from hivegraph.errors import DanglingEdgeError, InvalidInputError, ScopeViolationError
from hivegraph.memory.graph.store import GraphCounts, GraphEdge, GraphNode, GraphStore, Retired
from hivegraph.memory.types import Scope
from hivegraph.memory.validation import Scalar
from hivegraph.memory.vocabulary import Direction, EdgeType, NodeLabel, Outcome

E = TypeVar("E", bound=Exception)
OpenGraph = Callable[[], Awaitable[GraphStore]]
"""Opens the store under test; every call opens the same location."""
GraphCheck = Callable[[OpenGraph], Awaitable[None]]

GRAPH_CHECKS: dict[str, GraphCheck] = {}
"""Every check, by name."""
GRAPH_PERSISTENCE_CHECKS = frozenset({"survives_reopen"})
"""Checks that need a store another handle can open again."""

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
TEAM = Scope(team_id="red")
RUN = Scope(team_id="red", run_id="r1")
WRITERS = 16


def graph_checks(*, persistent: bool) -> list[str]:
    """The names of the checks that apply to a store (persistence checks need `persistent`)."""
    return [name for name in GRAPH_CHECKS if persistent or name not in GRAPH_PERSISTENCE_CHECKS]


def _check(fn: GraphCheck) -> GraphCheck:
    GRAPH_CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


@asynccontextmanager
async def _opened(open_graph: OpenGraph) -> AsyncGenerator[GraphStore]:
    graph = await open_graph()
    try:
        yield graph
    finally:
        await graph.aclose()


def _expect(got: object, want: object, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


async def _raises(error: type[E], call: Callable[[], Awaitable[object]], what: str) -> E:
    try:
        await call()
    except error as exc:
        return exc
    raise AssertionError(f"{what}: expected {error.__name__}, nothing was raised")


def task(node_id: str, *, scope: Scope = ADA, text: str = "", outcome: Outcome | None = None) -> GraphNode:
    """A `Task` node."""
    properties: dict[str, Scalar] = {"outcome": outcome} if outcome is not None else {}
    return GraphNode(node_id, "Task", scope, text or f"task {node_id}", properties)


def message(node_id: str, step: int, *, scope: Scope = ADA, agent: str = "planner") -> GraphNode:
    """A `Message` node at `step`."""
    return GraphNode(node_id, "Message", scope, f"message {node_id}", {"step": step, "agent": agent})


def insight(node_id: str, score: float, *, scope: Scope = ADA) -> GraphNode:
    """An `Insight` node with `score`."""
    return GraphNode(node_id, "Insight", scope, f"insight {node_id}", {"score": score})


def entity(node_id: str, name: str, *, scope: Scope = ADA) -> GraphNode:
    """An `Entity` node named `name`."""
    return GraphNode(node_id, "Entity", scope, name)


def memory(node_id: str, *, scope: Scope = ADA) -> GraphNode:
    """A `Memory` node (an episodic or semantic record)."""
    return GraphNode(node_id, "Memory", scope, f"memory {node_id}", {"record_version": 1})


def edge(type_: EdgeType, source: str, target: str, *, scope: Scope = ADA, weight: float = 1.0) -> GraphEdge:
    """An edge whose id names its type and ends."""
    return GraphEdge(f"{type_}:{source}->{target}", type_, source, target, scope, weight)


def _task_with(key: str, value: Scalar) -> GraphNode:
    return GraphNode("t", "Task", ADA, "", {key: value})


async def _ids(
    graph: GraphStore,
    start: str,
    *,
    scope: Scope = ADA,
    hops: int = 1,
    edge_types: list[EdgeType] | None = None,
    labels: list[NodeLabel] | None = None,
    direction: Direction = "both",
) -> list[str]:
    found = await graph.neighbours(
        [start], scope=scope, hops=hops, edge_types=edge_types, labels=labels, direction=direction
    )
    return [n.node.id for n in found]


async def _chain(graph: GraphStore, ids: str, *, seq: int = 1) -> None:
    """Tasks named by the letters of `ids`, joined in order by SIMILAR edges."""
    nodes = [task(n) for n in ids]
    await graph.upsert(nodes, [edge("SIMILAR", a, b) for a, b in pairwise(ids)], seq=seq)


@_check
async def check_upsert_round_trips(open_graph: OpenGraph) -> None:
    """What is written reads back equal, stamped with its seq; reads keep the order asked and skip unknown ids."""
    async with _opened(open_graph) as graph:
        props: dict[str, Scalar] = {"step": 0, "agent": "coder", "ok": True, "cost": 0.25}
        first = GraphNode("m1", "Message", ADA, "hello", props)
        similar = GraphEdge("s", "SIMILAR", "t1", "t2", ADA, 0.875, {"why": "same goal"})
        await graph.upsert([first, task("t1"), task("t2")], [similar], seq=7)
        props["agent"] = "changed after the call"
        got = await graph.get_nodes(["t2", "missing", "m1"], scope=ADA)
        _expect([n.id for n in got], ["t2", "m1"], "ids in the order asked")
        _expect(
            got[1],
            GraphNode("m1", "Message", ADA, "hello", {"step": 0, "agent": "coder", "ok": True, "cost": 0.25}, seq=7),
            "node",
        )
        _expect(
            await graph.get_edges(["s"], scope=ADA),
            [GraphEdge("s", "SIMILAR", "t1", "t2", ADA, 0.875, {"why": "same goal"}, seq=7)],
            "edge",
        )
        _expect(await graph.counts(), GraphCounts(3, 1, 0, 0), "counts")


@_check
async def check_upsert_is_idempotent_by_seq(open_graph: OpenGraph) -> None:
    """Writing at the seq an item was last written at, or an older one, changes nothing; a newer seq replaces it."""
    async with _opened(open_graph) as graph:
        await graph.upsert([task("t1", text="v1"), task("t2")], [edge("SIMILAR", "t1", "t2")], seq=5)
        await graph.upsert([task("t1", text="replayed")], [edge("SIMILAR", "t1", "t2", weight=0.1)], seq=5)
        await graph.upsert([task("t1", text="older")], [], seq=4)
        _expect([(n.text, n.seq) for n in await graph.get_nodes(["t1"], scope=ADA)], [("v1", 5)], "after replays")
        _expect([e.weight for e in await graph.get_edges(["SIMILAR:t1->t2"], scope=ADA)], [1.0], "edge weight")
        await graph.upsert([task("t1", text="v2", outcome="success")], [], seq=6)
        (node,) = await graph.get_nodes(["t1"], scope=ADA)
        _expect((node.text, dict(node.properties), node.seq), ("v2", {"outcome": "success"}, 6), "after seq 6")
        _expect(await graph.counts(), GraphCounts(2, 1, 0, 0), "counts")


@_check
async def check_upsert_is_all_or_nothing(open_graph: OpenGraph) -> None:
    """A refused upsert writes none of its items, not even those before the bad one."""
    async with _opened(open_graph) as graph:
        await graph.upsert([task("t1")], [], seq=1)
        await _raises(
            DanglingEdgeError,
            lambda: graph.upsert(
                [task("t2", text="new"), task("t1", text="changed")], [edge("SIMILAR", "t1", "nowhere")], seq=2
            ),
            "dangling",
        )
        await _raises(InvalidInputError, lambda: graph.upsert([task("t3"), message("m", -1)], [], seq=3), "bad step")
        _expect([n.id for n in await graph.get_nodes(["t1", "t2", "t3"], scope=ADA)], ["t1"], "nodes kept")
        _expect([n.text for n in await graph.get_nodes(["t1"], scope=ADA)], ["task t1"], "t1 unchanged")


@_check
async def check_retire_cascades_to_edges(open_graph: OpenGraph) -> None:
    """Retiring a node retires every edge it has, in any scope, so no current edge touches a retired node."""
    async with _opened(open_graph) as graph:
        await graph.upsert(
            [task("a", scope=RUN), task("b", scope=RUN), task("c", scope=RUN)],
            [
                edge("SIMILAR", "a", "b", scope=RUN),
                edge("SIMILAR", "c", "a", scope=TEAM),
                edge("SIMILAR", "b", "c", scope=RUN),
            ],
            seq=1,
        )
        retired = await graph.retire(node_ids=["a"], scope=RUN, seq=2)
        _expect(retired, Retired(["a"], ["SIMILAR:a->b", "SIMILAR:c->a"]), "retired")
        everything = await graph.subgraph(["a", "b", "c"], scope=TEAM, hops=2)
        _expect([n.id for n in everything.nodes], ["b", "c"], "current nodes")
        _expect([e.id for e in everything.edges], ["SIMILAR:b->c"], "current edges")
        kept = await graph.get_edges(["SIMILAR:c->a"], scope=TEAM, include_retired=True)
        _expect([(e.retired, e.retired_seq, e.seq) for e in kept], [(True, 2, 1)], "the team edge, kept and closed")
        _expect(await graph.counts(), GraphCounts(2, 1, 1, 2), "counts")


@_check
async def check_retired_items_are_kept_and_invisible(open_graph: OpenGraph) -> None:
    """Retired nodes and edges drop out of every read but `include_retired` ones, with the seq that closed them."""
    async with _opened(open_graph) as graph:
        await graph.upsert(
            [task("t"), message("m0", 0), message("m1", 1), insight("i", 2)],
            [edge("HAS_STEP", "t", "m0"), edge("HAS_STEP", "t", "m1"), edge("SUPPORTS", "t", "i")],
            seq=1,
        )
        await graph.retire(node_ids=["m1"], edge_ids=["SUPPORTS:t->i"], scope=ADA, seq=2)
        _expect(await graph.get_nodes(["m1"], scope=ADA), [], "get_nodes")
        _expect([n.retired_seq for n in await graph.get_nodes(["m1"], scope=ADA, include_retired=True)], [2], "kept")
        _expect([n.id for n in await graph.trajectory("t", scope=ADA)], ["m0"], "trajectory")
        _expect(await graph.insights_for(["t"], scope=ADA), [], "insights")
        _expect([n.id for n in await graph.nodes_of("Message", scope=ADA)], ["m0"], "nodes_of")
        _expect(await _ids(graph, "t"), ["m0"], "neighbours")


@_check
async def check_retire_is_idempotent_and_retirement_wins_at_one_seq(open_graph: OpenGraph) -> None:
    """A second retire changes nothing; a write at the retiring seq is passed over; a later write revives the node."""
    async with _opened(open_graph) as graph:
        await _chain(graph, "ab", seq=1)
        await graph.retire(node_ids=["a"], scope=ADA, seq=3)
        again = await graph.retire(node_ids=["a"], edge_ids=["SIMILAR:a->b"], scope=ADA, seq=4)
        _expect(again, Retired(), "retired again")
        _expect([n.retired_seq for n in await graph.get_nodes(["a"], scope=ADA, include_retired=True)], [3], "seq")
        await graph.upsert([task("a", text="replayed")], [], seq=3)
        _expect(await graph.get_nodes(["a"], scope=ADA), [], "a write at the retiring seq")
        await graph.upsert([task("a", text="back")], [], seq=5)
        _expect([(n.text, n.seq) for n in await graph.get_nodes(["a"], scope=ADA)], [("back", 5)], "revived")
        _expect(await graph.get_edges(["SIMILAR:a->b"], scope=ADA), [], "its edge stays retired")
        await graph.upsert([task("c")], [], seq=9)
        _expect((await graph.retire(node_ids=["c"], scope=ADA, seq=8)).nodes, [], "a retire older than the write")


@_check
async def check_retire_passes_over_unknown_and_other_scopes(open_graph: OpenGraph) -> None:
    """Unknown ids and another scope's ids are passed over; the other scope's nodes and edges stay current."""
    async with _opened(open_graph) as graph:
        await graph.upsert(
            [task("b1", scope=BOB), task("b2", scope=BOB)], [edge("SIMILAR", "b1", "b2", scope=BOB)], seq=1
        )
        retired = await graph.retire(node_ids=["b1", "nope"], edge_ids=["SIMILAR:b1->b2"], scope=ADA, seq=2)
        _expect(retired, Retired(), "retired from Ada's scope")
        _expect(await _ids(graph, "b1", scope=BOB), ["b2"], "Bob's graph")


@_check
async def check_neighbours_within_hops(open_graph: OpenGraph) -> None:
    """Neighbours within 1 and 2 hops of a chain, each with the fewest hops, ordered by (hops, id)."""
    async with _opened(open_graph) as graph:
        await _chain(graph, "abcde")
        _expect(await _ids(graph, "c"), ["b", "d"], "1 hop")
        found = await graph.neighbours(["a"], scope=ADA, hops=2)
        _expect([(n.node.id, n.hops) for n in found], [("b", 1), ("c", 2)], "2 hops")
        _expect(await _ids(graph, "missing", hops=4), [], "an unknown start")


@_check
async def check_neighbours_in_cycles_leave_out_the_starts(open_graph: OpenGraph) -> None:
    """A cycle back to a start does not return it; with several starts, none of them is returned."""
    async with _opened(open_graph) as graph:
        await _chain(graph, "abcd")
        await graph.upsert([], [edge("SIMILAR", "d", "a")], seq=2)
        found = await graph.neighbours(["a"], scope=ADA, hops=4)
        _expect([(n.node.id, n.hops) for n in found], [("b", 1), ("d", 1), ("c", 2)], "around the cycle")
        _expect([n.node.id for n in await graph.neighbours(["a", "b"], scope=ADA)], ["c", "d"], "two starts")


@_check
async def check_neighbours_follow_types_directions_and_labels(open_graph: OpenGraph) -> None:
    """`edge_types` and `direction` limit the edges followed; `labels` filters the result, not the path."""
    async with _opened(open_graph) as graph:
        await graph.upsert(
            [task("t"), task("u"), message("m", 0), insight("i", 1.0)],
            [edge("HAS_STEP", "t", "m"), edge("SUPPORTS", "t", "i"), edge("SIMILAR", "u", "t")],
            seq=1,
        )
        _expect(await _ids(graph, "t", edge_types=["SUPPORTS"]), ["i"], "SUPPORTS only")
        _expect(await _ids(graph, "t", direction="out"), ["i", "m"], "out")
        _expect(await _ids(graph, "t", direction="in"), ["u"], "in")
        _expect(await _ids(graph, "u", hops=2, labels=["Insight"]), ["i"], "an insight two hops away, via a task")
        _expect(await _ids(graph, "m", direction="out"), [], "nothing leaves a message")


@_check
async def check_subgraph_holds_every_edge_among_its_nodes(open_graph: OpenGraph) -> None:
    """The nodes within `hops` and every visible edge between two of them; `hops=0` gives the edges among the ids."""
    async with _opened(open_graph) as graph:
        await _chain(graph, "abcd")
        await graph.upsert([], [edge("SIMILAR", "a", "c")], seq=2)
        around = await graph.subgraph(["a"], scope=ADA, hops=1)
        _expect([n.id for n in around.nodes], ["a", "b", "c"], "nodes")
        _expect([e.id for e in around.edges], ["SIMILAR:a->b", "SIMILAR:a->c", "SIMILAR:b->c"], "edges")
        among = await graph.subgraph(["a", "d", "c", "zz"], scope=ADA, hops=0)
        _expect(
            ([n.id for n in among.nodes], [e.id for e in among.edges]),
            (["a", "c", "d"], ["SIMILAR:a->c", "SIMILAR:c->d"]),
            "hops=0",
        )


@_check
async def check_scopes_are_isolated(open_graph: OpenGraph) -> None:
    """No read in one scope sees another's items; no edge crosses scopes; an id of another scope is refused."""
    async with _opened(open_graph) as graph:
        await graph.upsert([task("a1"), task("a2")], [edge("SIMILAR", "a1", "a2")], seq=1)
        await graph.upsert(
            [task("b1", scope=BOB), insight("bi", 9, scope=BOB)], [edge("SUPPORTS", "b1", "bi", scope=BOB)], seq=2
        )
        _expect(await graph.get_nodes(["b1", "bi"], scope=ADA), [], "get_nodes")
        _expect(await graph.get_edges(["SUPPORTS:b1->bi"], scope=ADA), [], "get_edges")
        _expect(await _ids(graph, "b1"), [], "neighbours")
        _expect((await graph.subgraph(["b1"], scope=ADA)).nodes, [], "subgraph")
        _expect(await graph.insights_for(["b1"], scope=ADA), [], "insights_for")
        _expect(await graph.nodes_of("Insight", scope=ADA), [], "nodes_of")
        crossing = await _raises(
            DanglingEdgeError, lambda: graph.upsert([], [edge("SIMILAR", "a1", "b1")], seq=3), "cross"
        )
        _expect((crossing.edge_id, crossing.node_id), ("SIMILAR:a1->b1", "b1"), "the dangling end")
        taken = await _raises(ScopeViolationError, lambda: graph.upsert([task("b1")], [], seq=4), "taken id")
        _expect("bob" in str(taken), False, "the owner is not named")
        _expect([n.scope for n in await graph.get_nodes(["b1"], scope=BOB)], [BOB], "Bob's node stays his")


@_check
async def check_wider_scopes_see_narrower_ones(open_graph: OpenGraph) -> None:
    """A team read sees its runs' nodes and team edges between them; a run read does not see the team's edges."""
    async with _opened(open_graph) as graph:
        other_run = Scope(team_id="red", run_id="r2")
        await graph.upsert(
            [task("t1", scope=RUN), task("t2", scope=other_run)], [edge("SIMILAR", "t1", "t2", scope=TEAM)], seq=1
        )
        _expect(await _ids(graph, "t1", scope=TEAM), ["t2"], "team read")
        _expect(await _ids(graph, "t1", scope=RUN), [], "run read")
        await _raises(
            DanglingEdgeError, lambda: graph.upsert([], [edge("SIMILAR", "t2", "t1", scope=RUN)], seq=2), "r1 edge"
        )


@_check
async def check_entities_are_found_by_name_in_scope(open_graph: OpenGraph) -> None:
    """`entities_named` finds current `Entity` nodes by exact text, one per scope it sees; `MENTIONS` joins them."""
    async with _opened(open_graph) as graph:
        ada_run = Scope(user_id="ada", run_id="r1")
        nodes = [
            entity("e:ada:paris", "paris"), entity("e:ada:rome", "rome"), entity("e:run:paris", "paris", scope=ada_run),
            entity("e:bob:paris", "paris", scope=BOB), memory("m1"), memory("m2", scope=BOB),
        ]  # fmt: skip
        mentions = [edge("MENTIONS", "m1", "e:ada:paris"), edge("MENTIONS", "m2", "e:bob:paris", scope=BOB)]
        await graph.upsert(nodes, mentions, seq=1)
        found = await graph.entities_named(["paris", "nowhere"], scope=ADA)
        _expect([n.id for n in found], ["e:ada:paris", "e:run:paris"], "Ada's entities named paris")
        _expect([n.id for n in await graph.entities_named(["paris"], scope=ada_run)], ["e:run:paris"], "a run read")
        _expect([n.id for n in await graph.entities_named(["Paris"], scope=ADA)], [], "exact text only")
        held = [(n.id, n.text, dict(n.properties)) for n in await graph.nodes_of("Memory", scope=ADA)]
        _expect(held, [("m1", "memory m1", {"record_version": 1})], "Memory nodes of Ada")
        _expect(await _ids(graph, "e:ada:paris", edge_types=["MENTIONS"]), ["m1"], "who mentions paris")
        await graph.retire(node_ids=["e:ada:paris"], scope=ADA, seq=2)
        _expect([n.id for n in await graph.entities_named(["paris"], scope=ADA)], ["e:run:paris"], "retired")
        _expect([n.id for n in await graph.entities_named(["paris"], scope=BOB)], ["e:bob:paris"], "Bob's")
        await _raises(DanglingEdgeError, lambda: graph.upsert([], [edge("MENTIONS", "m1", "e:bob:paris")], seq=3), "x")
        await _raises(InvalidInputError, lambda: graph.entities_named("paris", scope=ADA), "a bare string")


@_check
async def check_trajectory_is_in_step_order(open_graph: OpenGraph) -> None:
    """A task's messages by step, then id; nothing for an unknown id or a node that is not a task."""
    async with _opened(open_graph) as graph:
        steps = [message("late", 2), message("b", 1), message("a", 1), message("first", 0)]
        await graph.upsert(
            [task("t"), task("other"), *steps, message("x", 0)],
            [
                *(edge("HAS_STEP", "t", m.id) for m in steps),
                edge("HAS_STEP", "other", "x"),
                edge("NEXT", "first", "a"),
                edge("ANSWERS", "b", "a"),
            ],
            seq=1,
        )
        _expect([n.id for n in await graph.trajectory("t", scope=ADA)], ["first", "a", "b", "late"], "trajectory")
        _expect(await graph.trajectory("nope", scope=ADA), [], "unknown task")
        _expect(await graph.trajectory("first", scope=ADA), [], "a message")
        _expect(await graph.trajectory("t", scope=BOB), [], "another scope")


@_check
async def check_insights_rank_by_support_then_score(open_graph: OpenGraph) -> None:
    """Most supporting tasks among those asked, then highest score, then the earliest supporting task asked, then id.

    Contradictions are no support.
    """
    async with _opened(open_graph) as graph:
        insights = [insight("low", 1), insight("high", 5), insight("tie-b", 3), insight("tie-a", 3), insight("x", 9)]
        supports = [("t1", "low"), ("t2", "low"), ("t1", "high"), ("t1", "tie-b"), ("t2", "tie-a"), ("t3", "x")]
        await graph.upsert(
            [task("t1"), task("t2"), task("t3"), *insights],
            [*(edge("SUPPORTS", t, i) for t, i in supports), edge("CONTRADICTS", "t2", "high")],
            seq=1,
        )
        ranked = await graph.insights_for(["t1", "t2", "t1"], scope=ADA)
        want = [("low", 2, 0), ("high", 1, 0), ("tie-b", 1, 0), ("tie-a", 1, 1)]
        _expect([(r.insight.id, r.support, r.first) for r in ranked], want, "ranking")
        ranked = await graph.insights_for(["t2", "t1"], scope=ADA)
        want = [("low", 2, 0), ("high", 1, 1), ("tie-a", 1, 0), ("tie-b", 1, 1)]
        _expect([(r.insight.id, r.support, r.first) for r in ranked], want, "ranking by the order asked")
        _expect(
            [r.insight.id for r in await graph.insights_for(["t1", "t2"], scope=ADA, limit=2)], ["low", "high"], "limit"
        )


@_check
async def check_cursor_moves_forward_and_reset_forgets(open_graph: OpenGraph) -> None:
    """The cursor starts at 0 and never moves back; `reset` forgets every item and the cursor."""
    async with _opened(open_graph) as graph:
        _expect(await graph.cursor(), 0, "new cursor")
        await _chain(graph, "ab", seq=3)
        await graph.advance(3)
        await graph.advance(2)
        _expect(await graph.cursor(), 3, "after advancing to 3, then 2")
        await graph.reset()
        _expect((await graph.cursor(), await graph.counts()), (0, GraphCounts(0, 0, 0, 0)), "after reset")
        await _chain(graph, "ab", seq=1)
        _expect(len(await graph.get_nodes(["a", "b"], scope=ADA)), 2, "a rebuild from seq 1")


@_check
async def check_bad_input_is_refused_naming_the_field(open_graph: OpenGraph) -> None:
    """Malformed calls raise `InvalidInputError` naming what was wrong, and write nothing."""
    async with _opened(open_graph) as graph:
        await _chain(graph, "ab")
        person, knows, a_dict = cast(NodeLabel, "Person"), cast(EdgeType, "KNOWS"), cast(Scope, {"user_id": "ada"})
        bad: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("nodes[0].label", lambda: graph.upsert([GraphNode("x", person, ADA)], [], seq=2)),
            ("nodes[0].id", lambda: graph.upsert([GraphNode(" ", "Task", ADA)], [], seq=2)),
            ("nodes[1].id", lambda: graph.upsert([task("x"), task("x")], [], seq=2)),
            ("nodes[0].properties.score", lambda: graph.upsert([GraphNode("i", "Insight", ADA)], [], seq=2)),
            ("nodes[0].properties.outcome", lambda: graph.upsert([_task_with("outcome", "meh")], [], seq=2)),
            ("nodes[0].properties.x", lambda: graph.upsert([_task_with("x", float("nan"))], [], seq=2)),
            ("nodes[0].scope", lambda: graph.upsert([GraphNode("t", "Task", a_dict)], [], seq=2)),
            ("nodes[0].label", lambda: graph.upsert([message("a", 0)], [], seq=2)),
            ("edges[0].type", lambda: graph.upsert([], [GraphEdge("e", knows, "a", "b", ADA)], seq=2)),
            ("edges[0].target", lambda: graph.upsert([], [edge("SIMILAR", "a", "a")], seq=2)),
            ("edges[0]", lambda: graph.upsert([], [edge("SUPPORTS", "a", "b")], seq=2)),
            ("seq", lambda: graph.upsert([task("x")], [], seq=0)),
            ("ids", lambda: graph.neighbours("a", scope=ADA)),
            ("hops", lambda: graph.neighbours(["a"], scope=ADA, hops=0)),
            ("edge_types[0]", lambda: graph.neighbours(["a"], scope=ADA, edge_types=[knows])),
            ("labels[0]", lambda: graph.neighbours(["a"], scope=ADA, labels=[person])),
            ("limit", lambda: graph.insights_for(["a"], scope=ADA, limit=0)),
            ("node_ids[0]", lambda: graph.retire(node_ids=[""], scope=ADA, seq=2)),
        ]
        for field, call in bad:
            error = await _raises(InvalidInputError, call, field)
            _expect(error.field, field, f"the field named by {error}")
        await _raises(
            InvalidInputError, lambda: graph.subgraph(["a"], scope=ADA, hops=5), "subgraph hops over the limit"
        )
        _expect(await graph.counts(), GraphCounts(2, 1, 0, 0), "nothing written")


@_check
async def check_identity_never_changes(open_graph: OpenGraph) -> None:
    """A node's label and an edge's type and ends are fixed by its first write."""
    async with _opened(open_graph) as graph:
        await _chain(graph, "abc")
        await graph.upsert([insight("i", 1)], [], seq=2)
        await _raises(InvalidInputError, lambda: graph.upsert([insight("a", 1)], [], seq=3), "relabel a task")
        moved = GraphEdge("SIMILAR:a->b", "SIMILAR", "a", "c", ADA)
        await _raises(InvalidInputError, lambda: graph.upsert([], [moved], seq=3), "move an edge's end")
        retyped = GraphEdge("SIMILAR:a->b", "SUPPORTS", "a", "i", ADA)
        await _raises(InvalidInputError, lambda: graph.upsert([], [retyped], seq=3), "retype an edge")
        _expect(await _ids(graph, "a"), ["b"], "unchanged")


@_check
async def check_text_that_looks_like_a_query_is_stored_verbatim(open_graph: OpenGraph) -> None:
    """Quotes, backslashes, Cypher and SQL in ids, text and properties are data, stored and read back as given."""
    async with _opened(open_graph) as graph:
        nasty = "x'}) DETACH DELETE n; MATCH (m) RETURN m //\"\\ $param `tick` {{}} ; DROP TABLE nodes; -- ü ✓"
        node = GraphNode(nasty, "Task", ADA, nasty, {nasty[:100]: nasty, "n": -(2**63)})
        await graph.upsert([node, task("plain")], [GraphEdge(nasty + "e", "SIMILAR", "plain", nasty, ADA)], seq=1)
        (got,) = await graph.get_nodes([nasty], scope=ADA)
        _expect((got.id, got.text, dict(got.properties)), (nasty, nasty, {nasty[:100]: nasty, "n": -(2**63)}), "node")
        _expect(await _ids(graph, "plain"), [nasty], "reached through its edge")
        _expect(await graph.counts(), GraphCounts(2, 1, 0, 0), "nothing else happened")


@_check
async def check_concurrent_writes_all_land(open_graph: OpenGraph) -> None:
    """Many upserts, retires and advances at once on one store: every one applies, none is lost."""
    async with _opened(open_graph) as graph:
        await graph.upsert([task("hub")], [], seq=1)

        async def write(n: int) -> None:
            await graph.upsert([task(f"t{n}")], [edge("SIMILAR", "hub", f"t{n}")], seq=n + 2)
            await graph.advance(n + 2)

        await asyncio.gather(*(write(n) for n in range(WRITERS)))
        _expect(len(await _ids(graph, "hub")), WRITERS, "edges from the hub")
        retire = (graph.retire(node_ids=[f"t{n}"], scope=ADA, seq=100 + n) for n in range(0, WRITERS, 2))
        await asyncio.gather(*retire)
        _expect(await graph.counts(), GraphCounts(1 + WRITERS // 2, WRITERS // 2, WRITERS // 2, WRITERS // 2), "counts")
        _expect(await graph.cursor(), WRITERS + 1, "cursor")


@_check
async def check_survives_reopen(open_graph: OpenGraph) -> None:
    """Nodes, edges, retirements and the cursor are there when the store is opened again."""
    async with _opened(open_graph) as graph:
        await _chain(graph, "abc")
        await graph.retire(node_ids=["c"], scope=ADA, seq=2)
        await graph.advance(2)
    async with _opened(open_graph) as graph:
        _expect(await _ids(graph, "a", hops=2), ["b"], "neighbours after reopening")
        _expect((await graph.cursor(), await graph.counts()), (2, GraphCounts(2, 1, 1, 1)), "cursor and counts")
