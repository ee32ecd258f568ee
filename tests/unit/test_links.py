"""Links in the journal and the graph projected from them: on the reference parts and on SQLite files.

A link is a journaled op with before and after; the graph shows an edge while its
link is open and both ends are current; undo, history, `as_of`, rebuild and verify
work for links as for any record; writers in several processes and a kill -9 lose nothing.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from hivegraph.errors import InvalidInputError, RecordNotFoundError, ScopeViolationError
from hivegraph.memory.facade import Memory, MemoryOptions
from hivegraph.memory.graph import GraphEdge, GraphStore, InMemoryGraph, SqliteGraph
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import AddOp, DeleteOp, LinkOp, MemoryKind, NoopOp, Scalar, Scope, UpdateOp
from hivegraph.memory.vocabulary import EdgeType
from hivegraph.models.testing import HashEmbedder

ROOT = Path(__file__).resolve().parents[2]
TEAM = Scope(team_id="crew")
OTHER = Scope(team_id="rivals")


def open_memory(kind: str, folder: Path, options: MemoryOptions | None = None) -> Memory:
    """A memory whose graph is projected: the reference parts, or a SQLite journal and graph in one file."""
    if kind == "reference":
        journal, graph = InMemoryJournal(), InMemoryGraph()
    else:
        journal, graph = SqliteJournal(folder / "memory.sqlite"), SqliteGraph(folder / "memory.sqlite")
    return Memory.of(
        InMemorySpace(HashEmbedder()), journal=journal, projections=[GraphProjection(graph)], options=options
    )


@pytest.fixture(params=["reference", "sqlite"])
async def memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Memory]:
    opened = await open_memory(request.param, tmp_path).open()
    yield opened
    await opened.aclose()


def graph_of(memory: Memory) -> GraphStore:
    assert memory.graph is not None
    return memory.graph


async def record(memory: Memory, text: str, kind: MemoryKind, scope: Scope = TEAM, **metadata: Scalar) -> UUID:
    result = await memory.apply([AddOp(text=text, kind=kind, metadata=metadata)], scope=scope, actor="t")
    after = result.applied[0].after
    assert after is not None, result.refused
    return after.id


async def edges(memory: Memory, scope: Scope = TEAM) -> set[tuple[str, str, str, float]]:
    """Every current edge visible in `scope`, as (type, source, target, weight)."""
    graph = graph_of(memory)
    nodes = [n.id for label in ("Task", "Message", "Insight") for n in await graph.nodes_of(label, scope=scope)]
    found = await graph.subgraph(nodes, scope=scope, hops=0) if nodes else None
    return {(e.type, e.source, e.target, e.weight) for e in (found.edges if found else [])}


async def test_links_become_the_edges_g_memory_reads(memory: Memory) -> None:
    task = await record(memory, "plan a dinner", "query", outcome="success")
    first = await record(memory, "planner: book a table", "interaction", step=0)
    second = await record(memory, "writer: table booked", "interaction", step=1)
    lesson = await record(memory, "book early on Fridays", "insight", score=2)
    links: list[tuple[UUID, UUID, EdgeType]] = [
        (task, first, "HAS_STEP"), (task, second, "HAS_STEP"), (second, first, "ANSWERS"), (first, second, "NEXT"),
        (task, lesson, "SUPPORTS"),
    ]  # fmt: skip
    for source, target, relation in links:
        entry = await memory.link(source, target, relation, scope=TEAM)
        assert entry.op.event == "LINK" and entry.before is None and entry.after is not None
        assert entry.after.kind == "link" and entry.after.metadata["relation"] == relation
    graph = graph_of(memory)
    assert [n.text for n in await graph.trajectory(str(task), scope=TEAM)] == [
        "planner: book a table", "writer: table booked"
    ]  # fmt: skip
    (ranked,) = await graph.insights_for([str(task)], scope=TEAM)
    assert (ranked.insight.text, ranked.insight.properties["score"], ranked.support) == ("book early on Fridays", 2, 1)
    (task_node,) = await graph.get_nodes([str(task)], scope=TEAM)
    assert task_node.label == "Task" and task_node.properties["outcome"] == "success"
    assert await graph.get_nodes([str(task)], scope=OTHER) == []  # a read never crosses scopes


async def test_linking_again_is_a_noop_and_a_new_weight_is_an_update_with_history(memory: Memory) -> None:
    a, b = await record(memory, "task a", "query"), await record(memory, "task b", "query")
    made = await memory.link(a, b, "SIMILAR", scope=TEAM, weight=0.5)
    again = await memory.link(a, b, "SIMILAR", scope=TEAM, weight=0.5)
    assert made.after is not None and isinstance(again.op, NoopOp) and again.op.record_id == made.after.id
    when = datetime.now(UTC)
    moved = await memory.link(a, b, "SIMILAR", scope=TEAM, weight=0.9)
    assert moved.before is not None and moved.after is not None
    assert (moved.before.metadata["weight"], moved.after.metadata["weight"]) == (0.5, 0.9)
    assert await edges(memory) == {("SIMILAR", str(a), str(b), 0.9)}
    history = await memory.history(made.after.id, scope=TEAM)
    assert [e.op.event for e in history.entries] == ["LINK", "LINK"]
    past = await memory.get(made.after.id, scope=TEAM, as_of=when)
    assert past is not None and past.metadata["weight"] == 0.5


async def test_unlink_retires_the_edge_and_undo_brings_it_back(memory: Memory) -> None:
    task, lesson = await record(memory, "task", "query"), await record(memory, "lesson", "insight", score=1)
    made = await memory.link(task, lesson, "SUPPORTS", scope=TEAM)
    gone = await memory.unlink(task, lesson, "SUPPORTS", scope=TEAM)
    assert gone.op.event == "UNLINK" and gone.before is not None and gone.before.valid_to is not None
    assert await edges(memory) == set()
    assert await graph_of(memory).insights_for([str(task)], scope=TEAM) == []
    await memory.undo(gone.op_id, scope=TEAM)
    assert await edges(memory) == {("SUPPORTS", str(task), str(lesson), 1.0)}
    assert made.after is not None and [
        e.op.event for e in (await memory.history(made.after.id, scope=TEAM)).entries
    ] == ["LINK", "UNLINK", "UPDATE"]  # the undo reopened the link as a new version


async def test_undo_of_a_link_removes_its_edge(memory: Memory) -> None:
    a, b = await record(memory, "task a", "query"), await record(memory, "task b", "query")
    made = await memory.link(a, b, "SIMILAR", scope=TEAM)
    await memory.undo(made.op_id, scope=TEAM)
    assert await edges(memory) == set()
    assert await memory.get(made.after.id if made.after else uuid4(), scope=TEAM) is None


async def test_deleting_an_end_hides_its_edges_and_undoing_the_delete_brings_them_back(memory: Memory) -> None:
    task = await record(memory, "task", "query")
    step = await record(memory, "agent: step", "interaction", step=0)
    lesson = await record(memory, "lesson", "insight", score=1)
    await memory.link(task, step, "HAS_STEP", scope=TEAM)
    await memory.link(task, lesson, "SUPPORTS", scope=TEAM)
    deleted = await memory.apply([DeleteOp(record_id=task)], scope=TEAM, actor="t")
    assert await edges(memory) == set()
    assert await graph_of(memory).get_nodes([str(task)], scope=TEAM) == []
    await memory.undo(deleted.applied[0].op_id, scope=TEAM)
    assert await edges(memory) == {("HAS_STEP", str(task), str(step), 1.0), ("SUPPORTS", str(task), str(lesson), 1.0)}
    assert (await memory.verify()).clean


async def test_an_updated_record_updates_its_node(memory: Memory) -> None:
    lesson = await record(memory, "check the oven", "insight", score=1)
    await memory.apply([UpdateOp(record_id=lesson, text="check the oven twice", metadata={"score": 3})], scope=TEAM,
                       actor="reflector")  # fmt: skip
    (node,) = await graph_of(memory).get_nodes([str(lesson)], scope=TEAM)
    assert (node.text, node.properties["score"], node.properties["record_version"]) == ("check the oven twice", 3, 2)


async def test_bad_links_are_refused_with_the_reason_and_write_nothing(memory: Memory) -> None:
    task, other_task = await record(memory, "task", "query"), await record(memory, "task 2", "query")
    fact = await record(memory, "Ada likes tea", "semantic")
    theirs = await record(memory, "their task", "query", scope=OTHER)
    before = await memory.journal.last_seq()
    with pytest.raises(RecordNotFoundError, match="no current memory record"):
        await memory.link(task, uuid4(), "SIMILAR", scope=TEAM)
    with pytest.raises(ScopeViolationError, match="not inside scope"):
        await memory.link(task, theirs, "SIMILAR", scope=TEAM)
    with pytest.raises(InvalidInputError, match="target must be a insight record, not a query"):
        await memory.link(task, other_task, "SUPPORTS", scope=TEAM)
    with pytest.raises(InvalidInputError, match="source must be a query record, not a semantic"):
        await memory.link(fact, task, "SIMILAR", scope=TEAM)
    with pytest.raises(InvalidInputError, match="linked to itself"):
        await memory.link(task, task, "SIMILAR", scope=TEAM)
    with pytest.raises(RecordNotFoundError, match="no SIMILAR link"):
        await memory.unlink(task, other_task, "SIMILAR", scope=TEAM)
    refused = await memory.apply([AddOp(text="SIMILAR a b", kind="link")], scope=TEAM, actor="t")
    assert refused.refused[0].code == "invalid" and "LinkOp" in refused.refused[0].reason
    made = await memory.link(task, other_task, "SIMILAR", scope=TEAM)
    assert made.after is not None
    before = await memory.journal.last_seq()
    rewrite = await memory.apply([UpdateOp(record_id=made.after.id, text="SIMILAR x y")], scope=TEAM, actor="t")
    assert rewrite.refused[0].code == "invalid" and await memory.journal.last_seq() == before
    with pytest.raises(InvalidInputError, match="weight"):
        LinkOp(source=task, target=other_task, relation="SIMILAR", weight=float("nan"))
    with pytest.raises(ValueError, match="relation"):
        LinkOp.model_validate({"source": task, "target": other_task, "relation": "OWNS"})


async def test_links_are_never_returned_by_searches(memory: Memory) -> None:
    a, b = await record(memory, "similar tasks", "query"), await record(memory, "other similar task", "query")
    made = await memory.link(a, b, "SIMILAR", scope=TEAM)
    assert made.after is not None
    recalled = await memory.recall(f"SIMILAR {a} {b}", scope=TEAM, k=10)
    assert recalled.hits and all(hit.loaded.kind != "link" for hit in recalled.hits)
    assert all(hit.loaded.kind != "link" for hit in await memory.search(made.after.text, scope=TEAM, k=10))


async def test_a_lost_graph_is_found_by_verify_and_rederived_by_rebuild(memory: Memory) -> None:
    task = await record(memory, "task", "query")
    step = await record(memory, "agent: step", "interaction", step=0)
    await memory.link(task, step, "HAS_STEP", scope=TEAM)
    assert (await memory.verify()).clean
    graph = graph_of(memory)
    await graph.reset()  # the graph is lost; the journal is not
    report = await memory.verify()
    assert sorted((d.projection, d.kind) for d in report.divergences) == [("graph", "missing")] * 3
    assert await memory.rebuild() > 0
    assert (await memory.verify()).clean
    assert await edges(memory) == {("HAS_STEP", str(task), str(step), 1.0)}


async def test_verify_repairs_an_edge_the_journal_does_not_hold(memory: Memory) -> None:
    a, b = await record(memory, "task a", "query"), await record(memory, "task b", "query")
    stray = GraphEdge("not-a-link", "SIMILAR", str(a), str(b), TEAM, 1.0, {"record_version": 1, "record_hash": "x"})
    await graph_of(memory).upsert([], [stray], seq=await memory.journal.last_seq())
    report = await memory.verify(repair=True)
    assert [(d.kind, d.version_id) for d in report.divergences] == [("extra", "not-a-link:1")]
    assert (await memory.verify()).clean and await edges(memory) == set()


async def test_replaying_entries_changes_nothing(memory: Memory) -> None:
    task, step = await record(memory, "task", "query"), await record(memory, "agent: step", "interaction", step=0)
    made = await memory.link(task, step, "HAS_STEP", scope=TEAM)
    await memory.unlink(task, step, "HAS_STEP", scope=TEAM)
    assert made.after is not None
    projection = next(p for p in memory.store.projections if isinstance(p, GraphProjection))
    counts = await graph_of(memory).counts()
    await projection.project(await memory.journal.read())  # a crash before the cursor moved
    assert await graph_of(memory).counts() == counts and await edges(memory) == set()


async def test_concurrent_writers_of_links_lose_nothing(memory: Memory) -> None:
    hub = await record(memory, "hub task", "query")
    tasks = [await record(memory, f"task {n}", "query") for n in range(12)]
    await asyncio.gather(*(memory.link(hub, t, "SIMILAR", scope=TEAM, weight=0.5) for t in tasks))
    await asyncio.gather(*(memory.apply([LinkOp(source=t, target=hub, relation="SIMILAR")], scope=TEAM, actor=f"a{n}")
                           for n, t in enumerate(tasks)))  # fmt: skip
    assert len(await edges(memory)) == 24
    assert (await memory.verify()).clean


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tests.unit.test_links import open_memory, TEAM
    from hivegraph.memory.types import AddOp, LinkOp

    async def main(folder: str, name: str) -> None:
        memory = await open_memory("sqlite", Path(folder)).open()
        hub = (await memory.apply([AddOp(text="hub", kind="query")], scope=TEAM, actor=name)).applied[0]
        hub_id = hub.after.id if hub.after else hub.op.record_id
        for n in range(100_000):
            ops = [AddOp(text=f"{name} task {n}", kind="query")]
            added = (await memory.apply(ops, scope=TEAM, actor=name)).applied[0].after
            await memory.apply([LinkOp(source=hub_id, target=added.id, relation="SIMILAR")], scope=TEAM, actor=name)
            print(n, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_two_processes_linking_at_once_then_killed_leave_a_graph_that_verifies(tmp_path: Path) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for name in ("left", "right")
    ]  # fmt: skip
    acknowledged: list[int] = []
    for writer in writers:
        assert writer.stdout is not None
        for _ in range(15):  # each writer has linked 15 tasks to the hub
            line = writer.stdout.readline()
            assert line, writer.stderr.read() if writer.stderr else ""
        writer.send_signal(signal.SIGKILL)
    for writer in writers:
        rest, _ = writer.communicate(timeout=60)
        acknowledged.append(15 + len(rest.split()))
        assert writer.returncode == -signal.SIGKILL
    memory = await open_memory("sqlite", tmp_path).open()  # catches the graph up with whatever the journal holds
    try:
        assert (await memory.verify()).clean
        found = await edges(memory)
        assert len(found) >= sum(acknowledged)  # every acknowledged link is an edge (a last one may be unacknowledged)
        links = await memory.journal.records(scope=TEAM, kinds=["link"])
        assert len(found) == len(links)
    finally:
        await memory.aclose()


async def test_a_task_its_steps_and_their_links_are_written_in_one_batch(memory: Memory) -> None:
    task, step = uuid4(), uuid4()
    ops = [
        AddOp(record_id=task, text="plan a dinner", kind="query"),
        AddOp(record_id=step, text="planner: book a table", kind="interaction", metadata={"step": 0}),
        LinkOp(source=task, target=step, relation="HAS_STEP"),
    ]
    result = await memory.apply(ops, scope=TEAM, actor="team", idempotency_key="run-1")
    assert not result.refused and [e.after.id for e in result.applied if e.after] == [
        task,
        step,
        result.applied[2].after.id if result.applied[2].after else None,
    ]
    assert [n.id for n in await graph_of(memory).trajectory(str(task), scope=TEAM)] == [str(step)]
    replayed = await memory.apply(ops, scope=TEAM, actor="team", idempotency_key="run-1")
    assert [e.op_id for e in replayed.applied] == [
        e.op_id for e in result.applied
    ]  # a replayed step writes nothing twice
    taken = await memory.apply([AddOp(record_id=task, text="another task", kind="query")], scope=TEAM, actor="t")
    assert [r.code for r in taken.refused] == ["conflict"]


async def test_hostile_link_metadata_is_refused_naming_the_field_and_writes_nothing(memory: Memory) -> None:
    a, b = await record(memory, "task a", "query"), await record(memory, "task b", "query")
    with pytest.raises(InvalidInputError, match="metadata"):
        LinkOp(source=a, target=b, relation="SIMILAR", metadata={"note": "bad \udc80 text"})
    before = await memory.journal.last_seq()
    smuggled = LinkOp.model_construct(source=a, target=b, relation="SIMILAR", weight=1.0, metadata={"n": float("nan")})
    result = await memory.apply([smuggled], scope=TEAM, actor="t")
    assert [r.code for r in result.refused] == ["invalid"] and "metadata.n" in result.refused[0].reason
    assert await memory.journal.last_seq() == before and await edges(memory) == set()
