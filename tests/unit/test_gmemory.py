"""G-Memory: the interaction, query and insight tiers, their retrieval, scoring and the reflector.

Every test takes a `memory` whose graph is the reference (`InMemoryGraph`) or the
embedded default (`SqliteGraph`, in the journal's file); the Bolt server runs the
same tests in tests/integration/test_gmemory_bolt.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from hivegraph.agents.reflector import Reflector, TrajectorySummarizer
from hivegraph.errors import ConfigError, InvalidInputError, ModelAPIError, RecordNotFoundError, UnexpectedModelOutput
from hivegraph.memory.condense import StepText
from hivegraph.memory.facade import Memory, MemoryOptions
from hivegraph.memory.gmemory import (
    AgreeInsight,
    EditInsight,
    GMemorySettings,
    NewInsight,
    RemoveInsight,
    Step,
)
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder, ScriptedModel
from tests.unit.test_links import graph_of
from tests.unit.test_links import open_memory as open_links_memory

ROOT = Path(__file__).resolve().parents[2]
TEAM = Scope(team_id="crew")
OTHER = Scope(team_id="rivals")
OPTIONS = MemoryOptions(gmemory=GMemorySettings(similarity_threshold=0.3))
"""The hash embedder's cosines are lower than MiniLM's: related tasks here share about half their words."""
CAPITAL = [
    Step("planner", "Search the encyclopedia page of France"),
    Step("searcher", "The page says Paris is the capital of France"),
    Step("planner", "ok"),
    Step("solver", "Finish: Paris"),
]


def open_memory(kind: str, folder: Path) -> Memory:
    """The reference parts, or a SQLite journal and graph in one file, with this file's G-Memory options."""
    return open_links_memory(kind, folder, OPTIONS)


@pytest.fixture(params=["reference", "sqlite"])
async def memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Memory]:
    opened = await open_memory(request.param, tmp_path).open()
    yield opened
    await opened.aclose()


async def solved(memory: Memory, task: str, run_id: str, *, outcome: str = "success", scope: Scope = TEAM) -> UUID:
    steps = [Step("planner", f"Search for {task}"), Step("solver", f"Finish: the answer to {task}")]
    recorded = await memory.gmemory.record_task(task, steps, scope=scope, run_id=run_id, outcome=outcome)  # type: ignore[arg-type]
    return recorded.task.id


async def lesson(memory: Memory, task_id: UUID, text: str, *roles: str, scope: Scope = TEAM) -> UUID:
    [change] = await memory.gmemory.revise([NewInsight(text, roles)], task_id=task_id, scope=scope)
    return change.insight_id


async def score(memory: Memory, insight_id: UUID, scope: Scope = TEAM) -> float | None:
    record = await memory.get(insight_id, scope=scope)
    return None if record is None else float(record.metadata["score"])  # type: ignore[arg-type]


# ---- the interaction graph and the query graph -------------------------------------------------------------------


async def test_a_task_becomes_a_task_node_with_its_interaction_graph(memory: Memory) -> None:
    recorded = await memory.gmemory.record_task(
        "What is the capital of France?", CAPITAL, scope=TEAM, run_id="r1", outcome="success"
    )
    graph = graph_of(memory)
    [task] = await graph.get_nodes([str(recorded.task.id)], scope=TEAM)
    assert (task.label, task.text, task.properties["outcome"]) == ("Task", "What is the capital of France?", "success")
    trajectory = await graph.trajectory(str(recorded.task.id), scope=TEAM)
    assert [(m.properties["agent"], m.text) for m in trajectory] == [(s.agent, s.content) for s in CAPITAL]
    ids = [m.id for m in trajectory]
    found = await graph.subgraph(ids, scope=TEAM, hops=0)
    edges = {(e.type, ids.index(e.source), ids.index(e.target)) for e in found.edges}
    assert {e for e in edges if e[0] == "NEXT"} == {("NEXT", 0, 1), ("NEXT", 1, 2), ("NEXT", 2, 3)}
    # each step answers the last earlier step of another agent: the planner's "ok" answers the searcher
    assert {e for e in edges if e[0] == "ANSWERS"} == {("ANSWERS", 1, 0), ("ANSWERS", 2, 1), ("ANSWERS", 3, 2)}
    assert not (await memory.verify()).divergences


async def test_recording_the_same_run_again_writes_nothing(memory: Memory) -> None:
    first = await memory.gmemory.record_task("Plan a trip", CAPITAL, scope=TEAM, run_id="r1", outcome="success")
    before = await memory.journal.last_seq()
    again = await memory.gmemory.record_task("Plan a trip", CAPITAL, scope=TEAM, run_id="r1", outcome="success")
    assert await memory.journal.last_seq() == before
    assert again.task.id == first.task.id and [s.id for s in again.steps] == [s.id for s in first.steps]


async def test_explicit_replies_become_answer_edges_and_bad_ones_are_refused(memory: Memory) -> None:
    steps = [Step("a", "question"), Step("b", "first answer"), Step("c", "second answer", reply_to=0)]
    recorded = await memory.gmemory.record_task("t", steps, scope=TEAM, run_id="r1", outcome=None)
    ids = [str(s.id) for s in recorded.steps]
    found = await graph_of(memory).subgraph(ids, scope=TEAM, hops=0)
    assert {(ids.index(e.source), ids.index(e.target)) for e in found.edges if e.type == "ANSWERS"} == {(1, 0), (2, 0)}
    with pytest.raises(InvalidInputError, match=r"steps\[1\].reply_to"):
        await memory.gmemory.record_task("t2", [Step("a", "x"), Step("b", "y", reply_to=1)], scope=TEAM,
                                         run_id="r2", outcome=None)  # fmt: skip
    with pytest.raises(InvalidInputError, match="outcome"):
        await memory.gmemory.record_task("t3", [], scope=TEAM, run_id="r3", outcome="maybe")  # type: ignore[arg-type]


async def test_similar_tasks_are_linked_above_the_threshold_only(memory: Memory) -> None:
    france = await solved(memory, "find the capital city of France", "r1")
    await solved(memory, "bake a chocolate cake for ten people", "r2")
    spain = await memory.gmemory.record_task(
        "find the capital city of Spain", [], scope=TEAM, run_id="r3", outcome="success"
    )
    assert [other for other, _ in spain.similar] == [france]
    [(_, similarity)] = spain.similar
    assert 0.3 <= similarity <= 1.0
    [near] = await graph_of(memory).neighbours([str(spain.task.id)], scope=TEAM, edge_types=["SIMILAR"])
    assert near.node.id == str(france)


# ---- retrieval --------------------------------------------------------------------------------------------------


async def test_retrieval_climbs_to_insights_by_support_then_score_and_descends_to_successful_trajectories(
    memory: Memory,
) -> None:
    a = await solved(memory, "find the capital city of France", "r1")
    b = await solved(memory, "find the capital city of Italy", "r2")
    failed = await solved(memory, "find the capital city of Spain", "r3", outcome="failure")
    shared = await lesson(memory, a, "check the encyclopedia page of the country first")
    await memory.gmemory.revise([AgreeInsight(shared)], task_id=b, scope=TEAM)  # support 2, score 3
    strong = await lesson(memory, a, "answer with the city name only")
    await memory.gmemory.revise([AgreeInsight(strong)], task_id=a, scope=TEAM)  # support 1, score 3 (one task)
    await memory.gmemory.revise([AgreeInsight(strong)], task_id=failed, scope=TEAM)  # support 2, score 4
    weak = await lesson(memory, b, "double-check spelling")  # support 1, score 2
    found = await memory.gmemory.retrieve("find the capital city of Portugal", scope=TEAM)
    assert [i.id for i in found.insights] == [strong, shared, weak]
    assert [(i.support, i.score) for i in found.insights] == [(2, 4.0), (2, 3.0), (1, 2.0)]
    assert failed in {t.id for t in found.tasks}
    assert {t.task_id for t in found.trajectories} <= {a, b} and len(found.trajectories) == 2
    assert all(t.condensed.steps for t in found.trajectories)
    text = found.render()
    assert "answer with the city name only" in text and "Finish: the answer to find the capital city of" in text


async def test_insights_that_tie_on_support_and_score_follow_the_rank_of_their_tasks(memory: Memory) -> None:
    tasks = {
        topic: await solved(memory, f"find the {topic}", f"r-{n}")
        for n, topic in enumerate(["capital city of France", "tallest mountain of Nepal", "longest river of Egypt"])
    }
    lessons = {topic: await lesson(memory, task, f"lesson from the {topic}") for topic, task in tasks.items()}
    for topic in tasks:
        found = await memory.gmemory.retrieve(f"what is the {topic}", scope=TEAM)
        assert found.tasks[0].id == tasks[topic]
        assert found.insights[0].id == lessons[topic], topic  # support 1 and score 2 each: the best task's comes first


async def test_a_neighbour_in_the_query_graph_joins_the_similar_tasks(memory: Memory) -> None:
    options = MemoryOptions(gmemory=GMemorySettings(similarity_threshold=0.3, similar_tasks=1))
    memory = Memory(memory.store, options=options, sources=[])
    seed = await solved(memory, "find the capital city of France", "r1")
    hop = await solved(memory, "find the capital city of France and its river", "r2")
    found = await memory.gmemory.retrieve("capital city of France", scope=TEAM)
    assert [(t.id, t.hops) for t in found.tasks] in ([(seed, 0), (hop, 1)], [(hop, 0), (seed, 1)])


async def test_trajectories_are_condensed_within_the_token_budget(memory: Memory) -> None:
    chatter = [Step("planner", f"step {n}: look up source number {n} and note what it says") for n in range(30)]
    steps = [Step("planner", "Start with the index"), *chatter, Step("solver", "Finish: 42")]
    await memory.gmemory.record_task("answer the big question", steps, scope=TEAM, run_id="r1", outcome="success")
    for budget in (40, 120, 400):
        found = await memory.gmemory.retrieve("answer the big question", scope=TEAM, token_budget=budget)
        [shown] = found.trajectories
        assert memory.counter.count(shown.render()) <= budget + 8  # the rendered header and markers
        kept = [s.content for s in shown.condensed.steps]
        if budget >= 120:
            assert kept[0] == "Start with the index" and kept[-1] == "Finish: 42"
        assert shown.condensed.omitted == len(steps) - len(kept)


async def test_insights_are_projected_for_each_role(memory: Memory) -> None:
    task = await solved(memory, "find the capital city of France", "r1")
    general = await lesson(memory, task, "cite the source")
    planner_only = await lesson(memory, task, "split the question in two", "planner")
    found = await memory.gmemory.retrieve("find the capital city of Peru", scope=TEAM)
    assert [i.id for i in found.insights_for("planner")] == [planner_only, general]
    assert [i.id for i in found.insights_for("solver")] == [general]
    assert "split the question" not in found.render(role="solver")


async def test_a_read_never_crosses_scopes(memory: Memory) -> None:
    task = await solved(memory, "find the capital city of France", "r1")
    await lesson(memory, task, "check the encyclopedia page")
    await solved(memory, "find the capital city of France", "r1", scope=OTHER)
    mine = await memory.gmemory.retrieve("find the capital city of France", scope=TEAM)
    theirs = await memory.gmemory.retrieve("find the capital city of France", scope=OTHER)
    assert [t.id for t in mine.tasks] == [task]
    assert task not in {t.id for t in theirs.tasks} and theirs.insights == []
    with pytest.raises(RecordNotFoundError):
        await memory.gmemory.revise([AgreeInsight(mine.insights[0].id)], task_id=task, scope=OTHER)


# ---- scoring ----------------------------------------------------------------------------------------------------


async def test_insight_ops_score_as_the_reference_code_does(memory: Memory) -> None:
    task = await solved(memory, "find the capital city of France", "r1")
    insight = await lesson(memory, task, "check the country page")
    assert await score(memory, insight) == 2.0
    [agreed] = await memory.gmemory.revise([AgreeInsight(insight)], task_id=task, scope=TEAM)
    [edited] = await memory.gmemory.revise([EditInsight(insight, "check the country's page first")],
                                           task_id=await solved(memory, "t2", "r2"), scope=TEAM)  # fmt: skip
    assert (agreed.score, edited.score) == (3.0, 4.0)
    record = await memory.get(insight, scope=TEAM)
    assert record is not None and record.text == "check the country's page first"
    [removed] = await memory.gmemory.revise([RemoveInsight(insight)], task_id=await solved(memory, "t3", "r3"),
                                            scope=TEAM)  # fmt: skip
    assert removed.score == 3.0 and not removed.retired
    with pytest.raises(RecordNotFoundError):
        await memory.gmemory.revise([AgreeInsight(uuid4())], task_id=task, scope=TEAM)


async def test_rewards_move_shown_insights_and_an_insight_at_zero_is_retired_not_erased(memory: Memory) -> None:
    task = await solved(memory, "find the capital city of France", "r1")
    insight = await lesson(memory, task, "check the country page")
    win = await solved(memory, "find the capital city of Spain", "r2")
    [up] = await memory.gmemory.reward([insight], task_id=win, success=True, scope=TEAM)
    assert up.score == 3.0
    loss = await solved(memory, "find the capital city of Peru", "r3", outcome="failure")
    [down] = await memory.gmemory.reward([insight], task_id=loss, success=False, scope=TEAM)
    assert (down.score, down.retired) == (1.0, False)
    contradicted = await graph_of(memory).neighbours([str(insight)], scope=TEAM, edge_types=["CONTRADICTS"])
    assert [n.node.id for n in contradicted] == [str(loss)]
    again = await memory.gmemory.reward([insight], task_id=loss, success=False, scope=TEAM)
    assert [c.score for c in again] == [1.0]  # the same task's reward is not applied twice
    loss2 = await solved(memory, "find the capital city of Chile", "r4", outcome="failure")
    [gone] = await memory.gmemory.reward([insight], task_id=loss2, success=False, scope=TEAM)
    assert (gone.score, gone.retired) == (-1.0, True)
    assert await memory.get(insight, scope=TEAM) is None
    found = await memory.gmemory.retrieve("find the capital city of France", scope=TEAM)
    assert insight not in {i.id for i in found.insights}
    history = await memory.history(insight, scope=TEAM)
    assert [v.metadata["score"] for v in history.versions] == [2.0, 3.0, 1.0, -1.0]
    delete = next(e for e in gone.entries if e.op.event == "DELETE")
    await memory.undo(delete.op_id, scope=TEAM)
    assert await score(memory, insight) == -1.0  # back, as it was, for a person to judge
    assert await memory.gmemory.reward([uuid4()], task_id=loss2, success=True, scope=TEAM) == []


async def test_an_insight_at_zero_whose_retirement_was_cut_short_is_not_shown(memory: Memory) -> None:
    task = await solved(memory, "find the capital city of France", "r1")
    insight = await lesson(memory, task, "check the country page")
    record = await memory.get(insight, scope=TEAM)
    assert record is not None  # the score's update landed; the process died before the retiring delete
    await memory.apply([UpdateOp(record_id=insight, text=record.text, metadata={"score": 0.0})], scope=TEAM, actor="t")
    assert (await memory.gmemory.retrieve("find the capital city of France", scope=TEAM)).insights == []


async def test_concurrent_rewards_lose_no_change(tmp_path: Path) -> None:
    """Three memories on one SQLite file (as three processes would be) reward one insight at once."""
    writers = [await open_memory("sqlite", tmp_path).open() for _ in range(3)]
    try:
        task = await solved(writers[0], "find the capital city of France", "r0")
        insight = await lesson(writers[0], task, "check the country page")
        tasks = [await solved(writers[0], f"task number {n}", f"r{n + 1}") for n in range(12)]
        await asyncio.gather(*(
            writers[n % 3].gmemory.reward([insight], task_id=t, success=True, scope=TEAM) for n, t in enumerate(tasks)
        ))  # fmt: skip
        assert await score(writers[1], insight) == 2.0 + 12
        supporters = await graph_of(writers[2]).neighbours([str(insight)], scope=TEAM, edge_types=["SUPPORTS"])
        assert len(supporters) == 13
    finally:
        for w in writers:
            await w.aclose()


async def test_without_a_graph_projection_g_memory_says_what_to_configure(tmp_path: Path) -> None:
    memory = await Memory.of(InMemorySpace(HashEmbedder()), journal=InMemoryJournal()).open()
    with pytest.raises(ConfigError, match="graph"):
        await memory.gmemory.retrieve("anything", scope=TEAM)
    await memory.aclose()


# ---- the reflector ----------------------------------------------------------------------------------------------


def reply(*ops: Mapping[str, object]) -> str:
    return json.dumps({"ops": list(ops)})


async def test_the_reflector_maps_aliases_to_insights_and_retries_an_invented_one(memory: Memory) -> None:
    first = await solved(memory, "find the capital city of France", "r1")
    known = await lesson(memory, first, "check the country page")
    task = await solved(memory, "find the capital city of Spain", "r2")
    model = ScriptedModel([
        reply({"op": "AGREE", "id": 7, "text": "", "roles": []}),  # no insight 7 was shown
        reply({"op": "AGREE", "id": None, "text": "", "roles": []}),  # an AGREE needs an id
        reply({"op": "AGREE", "id": 0, "text": "", "roles": []},
              {"op": "ADD", "id": None, "text": "spell the city as the page does", "roles": ["solver"]}),
    ])  # fmt: skip
    steps = [StepText("planner", "search Spain", 0), StepText("solver", "Finish: Madrid", 1)]
    result = await Reflector(model, memory).reflect(
        "find the capital city of Spain", steps, outcome="success", task_id=task, scope=TEAM, shown=[known]
    )
    invented, missing = (r.messages[-1].content for r in model.requests[1:3])
    assert "ops.0.AGREE.id: Value error, 7 is not one of the listed insights (valid: 0)" in invented
    assert "ops.0.AGREE.id: Input should be a valid integer" in missing  # an AGREE must name a shown insight
    assert [(c.event, c.score) for c in result.changes] == [("AGREE", 3.0), ("ADD", 2.0)]
    added = await memory.get(result.changes[1].insight_id, scope=TEAM)
    assert added is not None and added.metadata["roles"] == "solver"
    assert "[0] check the country page" in model.requests[0].messages[-1].content


async def test_a_reflection_that_never_validates_changes_nothing(memory: Memory) -> None:
    task = await solved(memory, "find the capital city of France", "r1")
    before = await memory.journal.last_seq()
    model = ScriptedModel(["not json", reply({"op": "REMOVE", "id": None}), "{}"])
    with pytest.raises(UnexpectedModelOutput):
        await Reflector(model, memory, max_retries=2).reflect("t", [], outcome="failure", task_id=task, scope=TEAM)
    assert await memory.journal.last_seq() == before


INJECTIONS = [
    "x'}) DETACH DELETE n //",
    'x"}) MATCH (m) DETACH DELETE m RETURN 1 //',
    "'); DROP TABLE hg_graph_nodes; --",
    "{id: 'other'} $scope_team_id ${param}",
]


async def test_model_output_with_query_syntax_is_stored_as_plain_data(memory: Memory) -> None:
    steps = [Step(text, text) for text in INJECTIONS]
    task = await memory.gmemory.record_task(INJECTIONS[0], steps, scope=TEAM, run_id=INJECTIONS[1], outcome="success")
    model = ScriptedModel(
        [reply(*({"op": "ADD", "id": None, "text": t, "roles": [t[:30].strip()]} for t in INJECTIONS))]
    )
    result = await Reflector(model, memory).reflect(INJECTIONS[2], [], outcome="success", task_id=task.task.id,
                                                    scope=TEAM)  # fmt: skip
    graph = graph_of(memory)
    stored = await graph.get_nodes([str(c.insight_id) for c in result.changes], scope=TEAM)
    assert [n.text for n in stored] == INJECTIONS
    trajectory = await graph.trajectory(str(task.task.id), scope=TEAM)
    assert [(m.properties["agent"], m.text) for m in trajectory] == [(t, t) for t in INJECTIONS]
    found = await memory.gmemory.retrieve(INJECTIONS[0], scope=TEAM)
    assert {i.text for i in found.insights} == set(INJECTIONS)
    assert (await graph.counts()).nodes >= 1 + len(INJECTIONS) * 2
    assert not (await memory.verify()).divergences


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from uuid import UUID
    from tests.unit.test_gmemory import CAPITAL, TEAM, open_memory

    async def main(folder: str, name: str, insight: str) -> None:
        memory = await open_memory("sqlite", Path(folder)).open()
        for n in range(100_000):
            task = await memory.gmemory.record_task(
                f"{name} task {n}", CAPITAL[:3], scope=TEAM, run_id=f"{name}-{n}", outcome="success"
            )
            await memory.gmemory.reward([UUID(insight)], task_id=task.task.id, success=True, scope=TEAM)
            print(n, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
    """
)


async def test_two_processes_recording_and_rewarding_then_killed_lose_nothing(tmp_path: Path) -> None:
    memory = await open_memory("sqlite", tmp_path).open()
    insight = await lesson(memory, await solved(memory, "the first task", "r0"), "check the country page")
    await memory.aclose()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, str(insight)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("left", "right")
    ]  # fmt: skip
    acknowledged = 0
    for writer in writers:
        assert writer.stdout is not None
        for _ in range(8):
            assert writer.stdout.readline(), writer.stderr.read() if writer.stderr else ""
        writer.send_signal(signal.SIGKILL)
    for writer in writers:
        rest, _ = writer.communicate(timeout=60)
        acknowledged += 8 + len(rest.split())
        assert writer.returncode == -signal.SIGKILL
    memory = await open_memory("sqlite", tmp_path).open()
    try:
        assert (await memory.verify()).clean
        graph = graph_of(memory)
        tasks = [t for t in await graph.nodes_of("Task", scope=TEAM) if t.text != "the first task"]
        assert len(tasks) >= acknowledged
        for task in tasks:  # each task was written whole: its three steps, in order, with their edges
            assert [m.text for m in await graph.trajectory(task.id, scope=TEAM)] == [s.content for s in CAPITAL[:3]]
        supporters = await graph.neighbours([str(insight)], scope=TEAM, edge_types=["SUPPORTS"])
        # each reward is its SUPPORTS link and its score in one batch: the score counts exactly the links
        assert await score(memory, insight) == 2.0 + len(supporters) - 1
        assert len(supporters) - 1 >= acknowledged
    finally:
        await memory.aclose()


async def test_a_model_summary_stands_in_for_the_rules_and_a_failed_one_falls_back_to_them(memory: Memory) -> None:
    await memory.gmemory.record_task("find the capital city of France", CAPITAL, scope=TEAM, run_id="r1",
                                     outcome="success")  # fmt: skip
    summarizer = TrajectorySummarizer(ScriptedModel(["Looked up France's page; answered Paris. " * 40]))
    found = await memory.gmemory.retrieve("capital city of France", scope=TEAM, token_budget=60, summarize=summarizer)
    [shown] = found.trajectories
    assert shown.summary is not None and shown.summary.startswith("Looked up France's page")
    assert memory.counter.count(shown.render()) <= 60
    broken = TrajectorySummarizer(ScriptedModel([ModelAPIError("scripted", "the server went away")]))
    found = await memory.gmemory.retrieve("capital city of France", scope=TEAM, summarize=broken)
    [shown] = found.trajectories
    assert shown.summary is None and [s.content for s in shown.condensed.steps][-1] == "Finish: Paris"
