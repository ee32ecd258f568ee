"""Team patterns on LangGraph: pipeline with tools, supervisor, debate, hand-written graphs, streaming, sync."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph

from hivegraph.agents import Agent
from hivegraph.app import open_hivegraph, open_hivegraph_sync
from hivegraph.errors import GraphError
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.nodes import agent_node, consolidate
from hivegraph.graphs.patterns import FINISH, debate, supervisor
from hivegraph.graphs.state import TeamState
from hivegraph.models.base import Message
from hivegraph.models.testing import FunctionModel, RequestInfo
from tests.unit.test_team_graph import SCOPE, unit_settings


@tool
def search(query: str) -> str:
    """Search the team's notes."""
    return f"notes about {query}: the venue is in Lisbon"


def memory_reply(info: RequestInfo) -> str | None:
    """Replies to the memory agents (no facts, no changes), or None for a team agent."""
    schema = info.output_schema.name if info.output_schema else None
    replies: dict[str, dict[str, list[str]]] = {"ExtractedFacts": {"facts": []}, "Decision": {"ops": []},
                                                "Reflection": {"ops": []}}  # fmt: skip
    return json.dumps(replies[schema]) if schema in replies else None


def who(messages: list[Message]) -> str:
    return messages[0].content.split(".")[0]


async def test_an_agent_with_a_tool_acts_and_the_call_is_in_the_state_and_the_episodic_record(
    tmp_path: Path,
) -> None:
    def reply(messages: list[Message], info: RequestInfo) -> str:
        if (memory := memory_reply(info)) is not None:
            return memory
        if info.output_schema is not None and info.output_schema.name == "AgentAction":
            if messages[-1].content.startswith("Result of search"):
                return json.dumps({"action": "answer", "answer": "The venue is in Lisbon."})
            return json.dumps({"action": "call", "tool": "search", "arguments": {"query": "venue"}})
        return f"{who(messages)} agrees"

    agents = [Agent(name="researcher", instructions="You research.", tools=[search]),
              Agent(name="writer", instructions="You write.")]  # fmt: skip
    async with open_hivegraph(unit_settings(tmp_path), model=FunctionModel(reply)) as hg:
        run = await hg.team(agents, scope=SCOPE).run("Where is the venue?")
        records = await hg.memory.journal.records(scope=SCOPE, kinds=["episodic"])
    [use] = run.turns[0].get("tool_uses", [])
    assert use == {"tool": "search", "arguments": {"query": "venue"}, "ok": True, "step": 0,
                   "result": "notes about venue: the venue is in Lisbon"}  # fmt: skip
    assert run.turns[0]["content"] == "The venue is in Lisbon." and run.turns[1]["content"] == "You write agrees"
    by_origin = {str(r.metadata.get("origin")): r for r in records}
    called = by_origin["tool_result"]
    assert called.text == 'researcher: called search({"query": "venue"}) -> notes about venue: the venue is in Lisbon'
    assert (called.metadata["agent"], called.metadata["step"], called.metadata["tool"]) == ("researcher", 0, "search")
    said = [r for r in records if r.metadata.get("origin") == "message"]
    assert {(r.metadata["agent"], r.metadata["step"]) for r in said} == {("researcher", 0), ("writer", 1)}
    assert all(r.source.run_id == run.run_id for r in records)


def routed(order: list[str]) -> FunctionModel:
    """A model whose router sends the task through `order`, then FINISH; workers say who they are."""
    plan = list(order)

    def reply(messages: list[Message], info: RequestInfo) -> str:
        if (memory := memory_reply(info)) is not None:
            return memory
        if info.output_schema is not None and info.output_schema.name == "Route":
            chosen = plan.pop(0) if plan else FINISH
            return json.dumps({"next": chosen, "reason": f"{chosen} is next"})
        return f"{who(messages)} did it"

    return FunctionModel(reply)


def crew() -> tuple[Agent, list[Agent]]:
    router = Agent(name="lead", instructions="You lead.")
    return router, [Agent(name="coder", instructions="You code."), Agent(name="tester", instructions="You test.")]


async def test_the_supervisor_routes_by_its_structured_choice_until_finish(tmp_path: Path) -> None:
    router, workers = crew()
    model = routed(["coder", "tester", "coder"])
    async with open_hivegraph(unit_settings(tmp_path), model=model) as hg:
        run = await hg.supervisor_team(router, workers, scope=SCOPE).run("Fix the bug.")
    assert [t["agent"] for t in run.turns] == ["lead", "coder", "lead", "tester", "lead", "coder", "lead"]
    assert run.turns[-1]["content"].startswith(f"next: {FINISH}")
    route = next(r for r in model.requests if r.output_schema and r.output_schema.name == "Route")
    assert route.output_schema is not None
    assert route.output_schema.json_schema["properties"]["next"]["enum"] == ["coder", "tester", FINISH]
    tester_prompt = next(r for r in model.requests if r.messages[0].content == "You test.").messages[-1].content
    assert "coder: You code did it" in tester_prompt


async def test_the_supervisor_stops_after_max_turns_without_asking_again(tmp_path: Path) -> None:
    router, workers = crew()
    model = routed(["coder"] * 10)
    async with open_hivegraph(unit_settings(tmp_path), model=model) as hg:
        run = await hg.supervisor_team(router, workers, scope=SCOPE, max_turns=2).run("Loop forever.")
    assert [t["agent"] for t in run.turns] == ["lead", "coder", "lead", "coder"]
    assert sum(1 for r in model.requests if r.output_schema and r.output_schema.name == "Route") == 2


def test_patterns_refuse_bad_shapes() -> None:
    router, workers = crew()
    with pytest.raises(GraphError, match="at least one worker"):
        supervisor(router, [])
    with pytest.raises(GraphError, match="max_turns"):
        supervisor(router, workers, max_turns=0)
    with pytest.raises(GraphError, match="rounds"):
        debate(workers, router, rounds=0)
    with pytest.raises(GraphError, match="unique"):
        debate([workers[0], workers[0]], router)
    with pytest.raises(GraphError, match="reserved"):
        debate([Agent(name="next_round", instructions="x")], router)


async def test_debate_proposers_answer_concurrently_for_each_round_then_the_judge_decides(tmp_path: Path) -> None:
    started: dict[str, asyncio.Event] = {"You propose A": asyncio.Event(), "You propose B": asyncio.Event()}

    async def reply(messages: list[Message], info: RequestInfo) -> str:
        if (memory := memory_reply(info)) is not None:
            return memory
        me = who(messages)
        if me in started:  # each proposer waits until the other has started: only concurrent calls get through
            started[me].set()
            other = next(e for name, e in started.items() if name != me)
            await asyncio.wait_for(other.wait(), timeout=5)
            seen = messages[-1].content.count("proposal")
            return f"{me} proposal after seeing {seen}"
        return f"{me}: B wins"

    proposers = [Agent(name="a", instructions="You propose A."), Agent(name="b", instructions="You propose B.")]
    judge = Agent(name="judge", instructions="You judge.")
    async with open_hivegraph(unit_settings(tmp_path), model=FunctionModel(reply)) as hg:
        team = hg.debate_team(proposers, judge, scope=SCOPE, rounds=2)
        run = await team.run("Which plan?")
    agents = [t["agent"] for t in run.turns]
    assert sorted(agents[:2]) == ["a", "b"] and sorted(agents[2:4]) == ["a", "b"] and agents[4:] == ["judge"]
    assert {t["content"] for t in run.turns[2:4]} == {"You propose A proposal after seeing 2",
                                                       "You propose B proposal after seeing 2"}  # fmt: skip
    assert run.turns[-1]["content"] == "You judge: B wins"


async def test_stream_yields_each_node_as_it_finishes(tmp_path: Path) -> None:
    router, workers = crew()
    async with open_hivegraph(unit_settings(tmp_path), model=routed(["tester"])) as hg:
        team = hg.supervisor_team(router, workers, scope=SCOPE)
        steps = [step async for step in team.stream("Test it.")]
    assert [s.node for s in steps] == ["lead", "tester", "lead", "consolidate"]
    assert steps[1].update["turns"][0]["content"] == "You test did it"
    assert len({s.run_id for s in steps}) == 1 and steps[-1].update["written"]


async def test_a_hand_written_graph_that_consolidates_twice_writes_both_times(tmp_path: Path) -> None:
    def reply(messages: list[Message], info: RequestInfo) -> str:
        return memory_reply(info) or f"{who(messages)} spoke"

    first, second = Agent(name="first", instructions="You open."), Agent(name="second", instructions="You close.")
    graph = StateGraph(TeamState, context_schema=TeamContext)
    graph.add_node("first", agent_node(first))  # pyright: ignore[reportUnknownMemberType]
    graph.add_node("second", agent_node(second))  # pyright: ignore[reportUnknownMemberType]
    graph.add_node("consolidate", consolidate)  # pyright: ignore[reportUnknownMemberType]
    graph.add_edge(START, "first")
    graph.add_edge("first", "consolidate")

    def again(state: TeamState) -> str:
        return "second" if state.get("consolidations", 0) < 2 else END

    graph.add_conditional_edges("consolidate", again, ["second", END])  # pyright: ignore[reportUnknownMemberType]
    graph.add_edge("second", "consolidate")
    async with open_hivegraph(unit_settings(tmp_path), model=FunctionModel(reply)) as hg:
        run = await hg.team_of(graph, [first, second], scope=SCOPE).run("Talk twice.")
        episodes = await hg.memory.journal.records(scope=SCOPE, kinds=["episodic"])
    said = sorted(r.text for r in episodes)
    assert said.count("user: Talk twice.") == 2 and said.count("first: You open spoke") == 2
    assert said.count("second: You close spoke") == 1 and len(run.turns) == 2


def test_run_sync_runs_a_team_from_synchronous_code(tmp_path: Path) -> None:
    def reply(messages: list[Message], info: RequestInfo) -> str:
        return memory_reply(info) or f"{who(messages)} spoke"

    with open_hivegraph_sync(unit_settings(tmp_path), model=FunctionModel(reply)) as hg:
        run = hg.team([Agent(name="solo", instructions="You work.")], scope=SCOPE).run_sync("Work.")
    assert [t["content"] for t in run.turns] == ["You work spoke"]
