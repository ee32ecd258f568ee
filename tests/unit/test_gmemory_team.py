"""A team with G-Memory: the second task recalls the first one's insight and trajectory; a failure costs score.

The team is a two-agent pipeline on a `ScriptedModel`, over the reference graph and
the embedded default (SQLite); tests/integration/test_gmemory_bolt.py runs the same
tests over a Bolt server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hivegraph.agents import Agent
from hivegraph.app import open_hivegraph
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.memory.types import Scope
from hivegraph.models.testing import ScriptedModel

SCOPE = Scope(user_id="ada", team_id="geo")
LESSON = "Open the country's encyclopedia page before answering"
NO_FACTS = json.dumps({"facts": []})
PROCEDURE = json.dumps({"steps": ["Search the country page", "Answer with the city"], "script": "search(); answer()"})
NOTHING = json.dumps({"ops": []})


def team_settings(tmp_path: Path, graph: dict[str, Any]) -> HivegraphSettings:
    return load_settings(
        data_dir=tmp_path, vector_store={"backend": "inmemory"}, embedder={"backend": "hash"},
        checkpointer={"backend": "memory"}, graph_store=graph,
    )  # fmt: skip


@pytest.fixture(params=["inmemory", "sqlite"])
def graph_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"backend": request.param}


def agents() -> list[Agent]:
    return [Agent(name="planner", instructions="You plan."), Agent(name="solver", instructions="You solve.")]


def prompt_of(model: ScriptedModel, instructions: str, nth: int) -> str:
    return [r for r in model.requests if r.messages[0].content == instructions][nth].messages[-1].content


async def test_the_second_task_recalls_the_first_tasks_insight_and_trajectory(
    tmp_path: Path, graph_settings: dict[str, Any]
) -> None:
    add = json.dumps({"ops": [{"op": "ADD", "id": None, "text": LESSON, "roles": ["planner"]}]})
    model = ScriptedModel([
        "Search the encyclopedia page of France", "Finish: Paris", NO_FACTS,  # task 1
        PROCEDURE, add,  # learning from task 1: the distiller, then the reflector
        "Search the encyclopedia page of Spain", "Finish: Madrid", NO_FACTS,  # task 2
    ])  # fmt: skip
    async with open_hivegraph(team_settings(tmp_path, graph_settings), model=model) as hg:
        team = hg.team(agents(), scope=SCOPE)
        first = await team.run("What is the capital city of France?")
        learned = await team.learn(first, success=True)
        assert [(c.event, c.score) for c in learned.insights] == [("ADD", 2.0)]
        second = await team.run("What is the capital city of Spain?")
    planner = prompt_of(model, "You plan.", 1)
    assert LESSON in planner  # the insight, climbed to from the similar task
    assert "Task: What is the capital city of France?" in planner and "solver: Finish: Paris" in planner
    solver = prompt_of(model, "You solve.", 1)
    assert "solver: Finish: Paris" in solver and LESSON not in solver  # the insight is the planner's role only
    assert second.shown_insights == [str(learned.insights[0].insight_id)]
    assert model.remaining == 0


async def test_a_failed_task_lowers_the_score_of_the_insights_it_was_shown(
    tmp_path: Path, graph_settings: dict[str, Any]
) -> None:
    add = json.dumps({"ops": [{"op": "ADD", "id": None, "text": LESSON, "roles": []}]})
    model = ScriptedModel([
        "Search the encyclopedia page of France", "Finish: Paris", NO_FACTS, PROCEDURE, add,
        "Search the encyclopedia page of Spain", "Finish: Madrid", NO_FACTS, PROCEDURE, NOTHING,
        "Search the encyclopedia page of Peru", "Finish: Cusco", NO_FACTS, NOTHING, NOTHING,  # wrong: Lima
    ])  # fmt: skip
    async with open_hivegraph(team_settings(tmp_path, graph_settings), model=model) as hg:
        team = hg.team(agents(), scope=SCOPE)
        [added] = (await team.learn(await team.run("What is the capital city of France?"), success=True)).insights
        won = await team.learn(await team.run("What is the capital city of Spain?"), success=True)
        assert [(c.insight_id, c.event, c.score) for c in won.insights] == [(added.insight_id, "REWARD", 3.0)]
        failed_run = await team.run("What is the capital city of Peru?")
        assert failed_run.shown_insights == [str(added.insight_id)]
        failed = await team.learn(failed_run, success=False)
        assert [(c.event, c.score, c.retired) for c in failed.insights] == [("REWARD", 1.0, False)]
        again = await team.learn(failed_run, success=False)  # told twice: scored once (the reflector runs again)
        assert [c.score for c in again.insights] == [1.0]
        record = await hg.memory.get(added.insight_id, scope=SCOPE)
        assert record is not None and record.metadata["score"] == 1.0
        graph = hg.memory.graph
        assert graph is not None
        contradicting = await graph.neighbours([str(added.insight_id)], scope=SCOPE, edge_types=["CONTRADICTS"])
        assert [n.node.text for n in contradicting] == ["What is the capital city of Peru?"]
        [task] = [n.node for n in contradicting]
        assert task.properties["outcome"] == "failure"
    assert model.remaining == 0
