import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime

from hivegraph.agents import Agent, MemoryPolicy
from hivegraph.app import open_hivegraph
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import GraphError
from hivegraph.graphs.nodes import consolidate
from hivegraph.graphs.patterns import pipeline
from hivegraph.graphs.state import TeamState
from hivegraph.memory.types import Scope
from hivegraph.models.base import Message
from hivegraph.models.testing import FunctionModel, RequestInfo

SCOPE = Scope(user_id="ada", team_id="t")


def unit_settings(tmp_path: Path, **extra: Any) -> HivegraphSettings:
    base: dict[str, Any] = {
        "data_dir": tmp_path,
        "vector_store": {"backend": "inmemory"},
        "embedder": {"backend": "hash"},
        "checkpointer": {"backend": "memory"},
    }
    return load_settings(**(base | extra))


def team_reply(messages: list[Message], info: RequestInfo) -> str:
    schema = info.output_schema.name if info.output_schema else None
    if schema == "ExtractedFacts":
        task = messages[-1].content
        return json.dumps({"facts": ["Ada is allergic to peanuts"] if "peanuts" in task else []})
    if schema == "Decision":
        return json.dumps({"ops": [{"event": "NOOP", "id": 0, "text": ""}]})
    if schema == "Reflection":
        return json.dumps({"ops": []})
    if schema == "DistilledProcedure":
        return json.dumps({"steps": ["List the guests", "Pick a peanut-free menu"], "script": "plan(menu)"})
    return f"reply of {messages[0].content.split('.')[0]}"


def team_model() -> FunctionModel:
    return FunctionModel(team_reply)


def agents() -> list[Agent]:
    return [Agent(name="planner", instructions="You plan."), Agent(name="writer", instructions="You write.")]


async def test_pipeline_runs_agents_in_order_and_writes_memory(tmp_path: Path) -> None:
    model = team_model()
    async with open_hivegraph(unit_settings(tmp_path), model=model) as hg:
        run = await hg.team(agents(), scope=SCOPE).run("I am allergic to peanuts. Plan a dinner.")
    assert [t["agent"] for t in run.turns] == ["planner", "writer"]
    assert run.turns[0]["content"] == "reply of You plan"
    written = {(w["event"], w["kind"], w["text"]) for w in run.written}
    assert ("ADD", "semantic", "Ada is allergic to peanuts") in written
    assert ("ADD", "episodic", "user: I am allergic to peanuts. Plan a dinner.") in written
    assert ("ADD", "episodic", "planner: reply of You plan") in written
    writer_prompt = next(r for r in model.requests if r.messages[0].content == "You write.").messages[-1].content
    assert "planner: reply of You plan" in writer_prompt  # the writer saw the planner's turn


async def test_second_run_recalls_what_the_first_wrote(tmp_path: Path) -> None:
    model = team_model()
    async with open_hivegraph(unit_settings(tmp_path), model=model) as hg:
        team = hg.team(agents(), scope=SCOPE)
        first = await team.run("I am allergic to peanuts. Plan a dinner.")
        second = await team.run("Suggest a dessert without peanuts.")
        other = await hg.team(agents(), scope=Scope(user_id="bob", team_id="t")).run("Dessert without peanuts?")
    recalled = second.recalled["planner"]
    assert recalled and all(m["run_id"] == first.run_id for m in recalled)
    assert "Ada is allergic to peanuts" in {m["text"] for m in recalled}
    planner_prompt = [r for r in model.requests if r.messages[0].content == "You plan."][1].messages[-1].content
    assert "Ada is allergic to peanuts" in planner_prompt
    assert other.recalled == {"planner": [], "writer": []}  # another user's memories stay apart


async def test_recall_respects_the_token_budget(tmp_path: Path) -> None:
    model = team_model()
    async with open_hivegraph(unit_settings(tmp_path), model=model) as hg:
        for n in range(6):
            await hg.memory.add(f"peanut fact number {n} " + "filler " * 30, scope=SCOPE)
        tight = [Agent(name="planner", instructions="You plan.", memory=MemoryPolicy(token_budget=80))]
        run = await hg.team(tight, scope=SCOPE).run("peanut")
    kept = run.recalled["planner"]
    assert 1 <= len(kept) < 6
    assert sum(hg.memory.counter.count(m["text"]) for m in kept) <= 80


async def test_a_run_is_checkpointed_and_can_be_resumed(tmp_path: Path) -> None:
    model = team_model()
    async with open_hivegraph(unit_settings(tmp_path, checkpointer={"backend": "sqlite"}), model=model) as hg:
        team = hg.team(agents(), scope=SCOPE)
        team.graph.interrupt_before_nodes = ["writer"]  # stop half-way, as a crash would
        partial = await team.run("Plan a dinner.", run_id="run-1")
        assert [t["agent"] for t in partial.turns] == ["planner"]
        team.graph.interrupt_before_nodes = []
    async with open_hivegraph(unit_settings(tmp_path, checkpointer={"backend": "sqlite"}), model=model) as hg:
        resumed = await hg.team(agents(), scope=SCOPE).resume("run-1")
    assert [t["agent"] for t in resumed.turns] == ["planner", "writer"]
    assert (tmp_path / "checkpoints.sqlite").is_file()


@pytest.mark.parametrize(
    ("names", "message"),
    [([], "at least one agent"), (["a", "a"], "repeated"), (["recall"], "reserved")],
)
def test_bad_team_definitions_are_refused(names: list[str], message: str) -> None:
    with pytest.raises(GraphError, match=message):
        pipeline([Agent(name=n, instructions="x") for n in names])


async def test_a_successful_run_becomes_a_procedure_the_next_run_recalls(tmp_path: Path) -> None:
    model = team_model()
    async with open_hivegraph(unit_settings(tmp_path), model=model) as hg:
        team = hg.team(agents(), scope=SCOPE)
        first = await team.run("Plan a dinner for the lab")
        learned = await team.learn(first, success=True)
        assert learned.procedure is not None and learned.procedure.steps[1] == "Pick a peanut-free menu"
        second = await team.run("Plan a dinner for the lab")
        procedures = [m for m in second.recalled["planner"] if m["kind"] == "procedural"]
        assert len(procedures) == 1 and "2. Pick a peanut-free menu" in procedures[0]["text"]
        planner_prompt = [r for r in model.requests if r.messages[0].content == "You plan."][1].messages[-1].content
        assert "Pick a peanut-free menu" in planner_prompt
        failed = await team.learn(second, success=False)
        assert [o.procedure.failures for o in failed.outcomes] == [1]
        assert failed.model_calls == 0


async def test_consolidate_replayed_after_a_crash_writes_nothing_twice(tmp_path: Path) -> None:
    async with open_hivegraph(unit_settings(tmp_path), model=team_model()) as hg:
        team = hg.team(agents(), scope=SCOPE)
        run = await team.run("I am allergic to peanuts. Plan a dinner.", run_id="r1")
        entries = await hg.memory.journal.read()
        context = hg.context(team.agents, scope=SCOPE, run_id="r1")
        state: TeamState = {"task": run.task, "turns": run.turns}
        replay = await consolidate(state, runtime=Runtime(context=context))
        assert await hg.memory.journal.read() == entries
        assert sorted(w["text"] for w in replay["written"]) == sorted(w["text"] for w in run.written)
