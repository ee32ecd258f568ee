"""Memory policies: writes outside an agent's policy are refused and reported; private memories stay private;
every record an agent writes names its run, agent, step and tool call."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from hivegraph.agents import Agent, MemoryPolicy
from hivegraph.app import open_hivegraph
from hivegraph.errors import ConfigError
from hivegraph.memory.types import Scope
from hivegraph.models.base import Message
from hivegraph.models.testing import FunctionModel, RequestInfo
from tests.unit.test_team_graph import SCOPE, unit_settings
from tests.unit.test_team_patterns import memory_reply, who

FACT = "The team's venue is the Belem Tower"


def acting(plans: Mapping[str, Sequence[Mapping[str, object]]]) -> Callable[[list[Message], RequestInfo], str]:
    """Each agent (by its instructions' first sentence) takes its planned actions in order, then answers."""
    left = {name: list(actions) for name, actions in plans.items()}

    def reply(messages: list[Message], info: RequestInfo) -> str:
        if (memory := memory_reply(info)) is not None:
            return memory
        me = who(messages)
        if info.output_schema is not None and info.output_schema.name == "AgentAction":
            planned = left.get(me, [])
            if planned:
                action = planned.pop(0)
                return json.dumps({"action": "call", "tool": action["tool"], "arguments": action["arguments"]})
            return json.dumps({"action": "answer", "answer": f"{me} is done"})
        return f"{me} spoke"

    return reply


async def test_a_write_through_the_memory_tools_carries_run_agent_step_and_call(tmp_path: Path) -> None:
    plans = {"You take notes": [{"tool": "remember", "arguments": {"text": FACT}}]}
    agents = [Agent(name="opener", instructions="You open."),
              Agent(name="scribe", instructions="You take notes.", memory=MemoryPolicy(tools=True))]  # fmt: skip
    async with open_hivegraph(unit_settings(tmp_path), model=FunctionModel(acting(plans))) as hg:
        run = await hg.team(agents, scope=SCOPE).run("Plan the offsite.")
        private = Scope(user_id="ada", team_id="t", agent_id="scribe")
        [record] = [r for r in await hg.memory.journal.records(scope=SCOPE, kinds=["semantic"]) if r.text == FACT]
        history = await hg.memory.history(record.id, scope=private)
    assert record.scope == private, "written in the agent's private scope by default"
    assert (record.source.run_id, record.source.agent, record.source.step) == (run.run_id, "scribe", 1)
    assert record.source.message_ids == [f"{run.run_id}/1/scribe/tool-1"]
    assert [e.op.event for e in history.entries] == ["ADD"] and history.entries[0].actor == "scribe"
    assert run.refused == []


async def test_a_write_outside_the_policy_is_refused_reported_and_not_applied(tmp_path: Path) -> None:
    plans = {"You read": [{"tool": "remember", "arguments": {"text": FACT}}]}
    reader = Agent(name="reader", instructions="You read.", memory=MemoryPolicy(tools=True, write_kinds=()))
    async with open_hivegraph(unit_settings(tmp_path), model=FunctionModel(acting(plans))) as hg:
        run = await hg.team([reader], scope=SCOPE).run("Note the venue.")
        texts = {r.text for r in await hg.memory.journal.records(scope=SCOPE, all_versions=True)}
    assert FACT not in texts
    [refusal] = run.refused
    assert refusal.startswith("reader step 0: PolicyViolationError") and "may not write semantic memory" in refusal
    [use] = run.turns[0].get("tool_uses", [])
    assert use["ok"] is False and run.turns[0]["content"] == "You read is done"


async def test_forgetting_a_memory_outside_the_write_scope_is_refused(tmp_path: Path) -> None:
    async with open_hivegraph(unit_settings(tmp_path), model=FunctionModel(acting({}))) as hg:
        shared = await hg.memory.add(FACT, scope=SCOPE, actor="user")
        plans = {"You tidy": [{"tool": "forget", "arguments": {"memory_id": str(shared.id)}}]}
        tidy = Agent(name="tidy", instructions="You tidy.", memory=MemoryPolicy(tools=True))
        hg.model = FunctionModel(acting(plans))
        run = await hg.team([tidy], scope=SCOPE).run("Tidy up.")
        still = await hg.memory.get(shared.id, scope=SCOPE)
    assert still is not None and still.valid_to is None
    assert len(run.refused) == 1 and "may not forget memory" in run.refused[0]


async def test_an_agents_private_memories_are_recalled_by_it_and_by_no_other_agent(tmp_path: Path) -> None:
    async with open_hivegraph(unit_settings(tmp_path), model=FunctionModel(acting({}))) as hg:
        await hg.memory.add(
            "Belem Tower venue is private to the scribe", scope=SCOPE.model_copy(update={"agent_id": "scribe"})
        )
        await hg.memory.add("Belem Tower venue is shared with the team", scope=SCOPE)
        agents = [Agent(name="scribe", instructions="You take notes."), Agent(name="other", instructions="You help.")]
        run = await hg.team(agents, scope=SCOPE).run("Where is the Belem Tower venue?")
    seen = {name: {m["text"] for m in memories} for name, memories in run.recalled.items()}
    assert "Belem Tower venue is private to the scribe" in seen["scribe"]
    assert "Belem Tower venue is private to the scribe" not in seen["other"]
    assert "Belem Tower venue is shared with the team" in seen["other"] & seen["scribe"]


def test_a_user_level_policy_needs_a_user() -> None:
    policy = MemoryPolicy(read_scope="user")
    assert policy.scope_for("user", SCOPE, "a") == Scope(user_id="ada")
    assert policy.scope_for("agent", SCOPE, "a") == Scope(user_id="ada", team_id="t", agent_id="a")
    with pytest.raises(ConfigError, match="needs a team scope with a user_id"):
        policy.scope_for("user", Scope(team_id="t"), "a")


async def test_the_manager_can_extract_facts_from_what_the_user_said_only(tmp_path: Path) -> None:
    model = FunctionModel(acting({}))
    settings = unit_settings(tmp_path, memory={"facts_from": "user"})
    async with open_hivegraph(settings, model=model) as hg:
        await hg.team([Agent(name="helper", instructions="You help.")], scope=SCOPE).run("I moved to Lisbon.")
    [extraction] = [r for r in model.requests if r.output_schema and r.output_schema.name == "ExtractedFacts"]
    assert extraction.messages[-1].content == "user: I moved to Lisbon."
    conversation = FunctionModel(acting({}))
    async with open_hivegraph(unit_settings(tmp_path / "all"), model=conversation) as hg:
        await hg.team([Agent(name="helper", instructions="You help.")], scope=SCOPE).run("I moved to Lisbon.")
    [extraction] = [r for r in conversation.requests if r.output_schema and r.output_schema.name == "ExtractedFacts"]
    assert extraction.messages[-1].content == "user: I moved to Lisbon.\nhelper: You help spoke"
