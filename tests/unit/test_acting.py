"""Agents that act: constrained JSON actions and native tool calls, tool errors fed back, bounds kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.tools import StructuredTool, tool

from hivegraph.agents import Agent
from hivegraph.agents.acting import ActLimits, act, action_schema
from hivegraph.errors import ConfigError, UnexpectedModelOutput
from hivegraph.models.base import ModelResponse, ToolCall, system, user
from hivegraph.models.testing import ScriptedModel


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@tool
def lookup(title: str) -> str:
    """Read the encyclopedia page with this title."""
    if title != "Lisbon":
        raise ValueError(f"no page titled {title!r}")
    return "Lisbon is the capital of Portugal."


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"action": "call", "tool": name, "arguments": arguments})


def answer(text: str) -> str:
    return json.dumps({"action": "answer", "answer": text})


PROMPT = [system("You answer."), user("Task: what is 2 + 3?")]


async def test_a_tool_call_runs_and_its_result_reaches_the_model_before_the_answer() -> None:
    model = ScriptedModel([call("add", a=2, b=3), answer("5")])
    acted = await act(model, PROMPT, [add, lookup])
    assert acted.answer == "5" and not acted.rejected and not acted.forced
    assert [(u.tool, u.arguments, u.result, u.ok, u.step) for u in acted.tool_uses] == [
        ("add", {"a": 2, "b": 3}, "5", True, 0)
    ]
    assert model.requests[1].messages[-1].content.startswith("Result of add: 5")
    schema = model.requests[0].output_schema
    assert schema is not None
    offered = [b["properties"]["tool"]["enum"] for b in schema.json_schema["anyOf"] if "tool" in b["properties"]]
    assert offered == [["add"], ["lookup"]]


async def test_a_tool_error_is_fed_back_and_the_model_can_try_again() -> None:
    model = ScriptedModel([call("lookup", title="Lisboa"), call("lookup", title="Lisbon"), answer("Portugal")])
    acted = await act(model, PROMPT, [lookup])
    assert [u.ok for u in acted.tool_uses] == [False, True]
    assert "no page titled 'Lisboa'" in acted.tool_uses[0].result
    assert "lookup failed" in model.requests[1].messages[-1].content
    assert acted.answer == "Portugal"


async def test_invalid_actions_are_shown_back_and_retried_a_bounded_number_of_times() -> None:
    model = ScriptedModel(["not json", call("divide", a=1), answer("done")])
    acted = await act(model, PROMPT, [add], limits=ActLimits(max_invalid=2))
    assert acted.answer == "done" and len(acted.rejected) == 2
    assert "not JSON" in acted.rejected[0] and "no tool 'divide'" in acted.rejected[1]
    assert "Your action was rejected" in model.requests[1].messages[-1].content

    stubborn = ScriptedModel(["{}", "[]", '{"action": "dance"}'])
    with pytest.raises(UnexpectedModelOutput, match="3 actions in a row were rejected") as caught:
        await act(stubborn, PROMPT, [add], limits=ActLimits(max_invalid=2))
    assert caught.value.body == '{"action": "dance"}'


async def test_after_max_steps_only_an_answer_is_accepted() -> None:
    model = ScriptedModel([call("add", a=1, b=1), call("add", a=2, b=2), call("add", a=3, b=3), answer("4")])
    acted = await act(model, PROMPT, [add], limits=ActLimits(max_steps=2))
    assert len(acted.tool_uses) == 2 and acted.forced and acted.answer == "4"
    assert acted.rejected == ["no more tool calls are allowed; answer now"]
    last_schema = model.requests[-1].output_schema
    assert last_schema is not None and len(last_schema.json_schema["anyOf"]) == 1
    assert "No more tool calls are allowed" in model.requests[2].messages[-1].content


async def test_the_answer_is_bounded_by_the_token_budget_and_a_cut_reply_is_named() -> None:
    cut = ModelResponse(text='{"action": "answer", "answer": "Lisbon is', model_name="m", finish_reason="length")
    model = ScriptedModel([cut, answer("Lisbon")])
    acted = await act(model, PROMPT, [add], limits=ActLimits(max_tokens=64))
    assert acted.answer == "Lisbon"
    assert "reached the token limit" in acted.rejected[0] and "fewer words" in model.requests[1].messages[-1].content
    schemas = [r.output_schema for r in model.requests]
    limits = [b["properties"]["answer"]["maxLength"] for s in schemas if s for b in s.json_schema["anyOf"]
              if "answer" in b["properties"]]  # fmt: skip
    assert limits and all(0 < n < 64 * 4 for n in limits), "an answer that fits in 64 tokens of English"
    roomy = action_schema([add], max_answer_chars=4000).json_schema["anyOf"][-1]["properties"]["answer"]
    assert roomy["maxLength"] == 4000


async def test_native_tool_calls_run_and_answer_through_tool_messages() -> None:
    calls = [
        ToolCall(id="c1", name="add", arguments='{"a": 4, "b": 5}'),
        ToolCall(id="c2", name="nope", arguments=""),
    ]
    model = ScriptedModel([ModelResponse(text="", model_name="m", tool_calls=calls), "nine"])
    acted = await act(model, PROMPT, [add], native=True)
    assert acted.answer == "nine" and [u.result for u in acted.tool_uses] == ["9"]
    assert [t.name for t in model.requests[0].tools] == ["add"] and model.requests[0].output_schema is None
    replies = [(m.tool_call_id, m.content) for m in model.requests[1].messages if m.role == "tool"]
    assert replies[0] == ("c1", "9") and replies[1][0] == "c2" and "no tool 'nope'" in replies[1][1]


def test_tool_arguments_get_bounds_a_small_model_needs() -> None:
    def note(text: str, tags: list[str]) -> str:
        """Keep a note."""
        return text + ",".join(tags)

    schema = action_schema([StructuredTool.from_function(note)]).json_schema
    arguments = schema["anyOf"][0]["properties"]["arguments"]["properties"]
    assert arguments["text"]["maxLength"] > 0 and arguments["tags"]["maxItems"] > 0
    assert arguments["tags"]["items"]["maxLength"] > 0
    with pytest.raises(ConfigError, match="act limits"):
        ActLimits(max_steps=-1)


async def test_an_agent_with_tools_acts_and_without_tools_only_talks() -> None:
    model = ScriptedModel([call("add", a=2, b=3), answer("It is 5."), "Plain words."])
    adder = Agent(name="adder", instructions="You add.", tools=[add])
    turn = await adder.respond(task="2 + 3?", context=[], transcript=[], default_model=model)
    assert turn.content == "It is 5." and turn.tool_uses[0].result == "5"
    assert "add(a: integer, b: integer): Add two whole numbers." in model.requests[0].messages[0].content
    talker = Agent(name="talker", instructions="You talk.")
    said = await talker.respond(task="hi", context=[], transcript=[], default_model=model)
    assert said.content == "Plain words." and said.tool_uses == ()
    assert model.requests[-1].output_schema is None


async def test_min_calls_makes_the_model_call_a_tool_before_it_may_answer() -> None:
    model = ScriptedModel([answer("too early"), call("add", a=1, b=2), answer("3")])
    acted = await act(model, PROMPT, [add], limits=ActLimits(min_calls=1))
    assert acted.answer == "3" and len(acted.tool_uses) == 1
    assert acted.rejected == ["call a tool first; an answer is not accepted yet"]
    first = model.requests[0].output_schema
    assert first is not None and all("tool" in b["properties"] for b in first.json_schema["anyOf"])
    with pytest.raises(ConfigError, match="min_calls <= max_steps"):
        ActLimits(max_steps=1, min_calls=2)
