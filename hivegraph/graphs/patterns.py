"""Team patterns built as LangGraph `StateGraph`s from agent nodes and the `consolidate` node.

- `pipeline`: the agents in a fixed order.
- `supervisor`: a router agent picks who acts next (or to finish) with a
  structured reply, through `Command`, for a bounded number of turns.
- `debate`: proposers answer in parallel (`Send`), for one or more rounds in
  which each sees the others' proposals, then a judge decides.

Every agent recalls by its own memory policy before each of its steps, and the
run ends in `consolidate`. Graphs written by hand use the same public nodes
(`agent_node`, `recall`, `consolidate`, `router_node`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import BaseModel, Field, create_model

from hivegraph.agents.base import Agent
from hivegraph.errors import GraphError
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.nodes import Node, agent_node, consolidate, context_blocks, recall_for, transcript_of
from hivegraph.graphs.state import TeamState, TurnState
from hivegraph.models.base import system, user

RESERVED_NODE_NAMES = frozenset({"recall", "consolidate", "next_round"})
FINISH = "FINISH"
"""What a router answers when the task is done."""

TeamGraph = StateGraph[TeamState, TeamContext, TeamState, TeamState]


def pipeline(agents: Sequence[Agent]) -> TeamGraph:
    """Each agent in order, then `consolidate`.

    Raises:
        GraphError: no agents, a duplicate name, or a name reserved for a memory node.

    """
    _check_names(agents)
    graph = _graph()
    previous = START
    for agent in agents:
        graph.add_node(agent.name, agent_node(agent))  # pyright: ignore[reportUnknownMemberType] - langgraph overloads
        graph.add_edge(previous, agent.name)
        previous = agent.name
    graph.add_edge(previous, "consolidate")
    return graph


def supervisor(router: Agent, workers: Sequence[Agent], *, max_turns: int = 6) -> TeamGraph:
    """`router` chooses which worker acts next, until it says FINISH or `max_turns` workers have acted.

    Raises:
        GraphError: no workers, a duplicate or reserved name, or `max_turns` below 1.

    """
    _check_names([router, *workers])
    if not workers:
        raise GraphError("a supervisor team needs at least one worker")
    if max_turns < 1:
        raise GraphError(f"max_turns must be at least 1, not {max_turns}")
    graph = _graph()
    names = [worker.name for worker in workers]
    graph.add_node(router.name, router_node(router, names, max_turns=max_turns),  # pyright: ignore[reportUnknownMemberType]
                   destinations=(*names, "consolidate"))  # fmt: skip
    graph.add_edge(START, router.name)
    for worker in workers:
        graph.add_node(worker.name, agent_node(worker))  # pyright: ignore[reportUnknownMemberType]
        graph.add_edge(worker.name, router.name)
    return graph


def debate(proposers: Sequence[Agent], judge: Agent, *, rounds: int = 1) -> TeamGraph:
    """The proposers answer at once, for `rounds` rounds (each round sees the last), then `judge` decides.

    Raises:
        GraphError: no proposers, a duplicate or reserved name, or `rounds` below 1.

    """
    _check_names([*proposers, judge])
    if not proposers:
        raise GraphError("a debate needs at least one proposer")
    if rounds < 1:
        raise GraphError(f"rounds must be at least 1, not {rounds}")
    graph = _graph()
    names = [p.name for p in proposers]

    def fan_out(state: TeamState) -> list[Send]:
        return [Send(name, state) for name in names]

    def after_round(state: TeamState) -> list[Send] | str:
        spoken = sum(1 for turn in state.get("turns", []) if turn["agent"] in names)
        return fan_out(state) if spoken < rounds * len(names) else judge.name

    for proposer in proposers:
        graph.add_node(proposer.name, agent_node(proposer))  # pyright: ignore[reportUnknownMemberType]
    graph.add_node("next_round", _passthrough)  # pyright: ignore[reportUnknownMemberType]
    graph.add_node(judge.name, agent_node(judge))  # pyright: ignore[reportUnknownMemberType]
    graph.add_conditional_edges(START, fan_out, names)  # pyright: ignore[reportUnknownMemberType]
    graph.add_edge(names, "next_round")
    graph.add_conditional_edges("next_round", after_round, [*names, judge.name])  # pyright: ignore[reportUnknownMemberType]
    graph.add_edge(judge.name, "consolidate")
    return graph


def router_node(router: Agent, workers: Sequence[str], *, max_turns: int) -> Node:
    """A node in which `router` names the next worker (or FINISH) and the graph goes there.

    The reply is constrained to the workers' names; the routing decision joins
    the transcript as the router's turn. After `max_turns` worker turns the
    run goes to `consolidate` without asking.
    """
    choice = cast(Any, Literal).__getitem__((*workers, FINISH))  # Literal of names known only now
    route_type = create_model(
        "Route",
        next=(choice, Field(description="who acts next, or FINISH when the task is done")),
        reason=(str, Field(max_length=300, description="why, in one sentence")),
        __base__=BaseModel,
    )

    async def route(state: TeamState, *, runtime: Runtime[TeamContext]) -> Command[str]:
        acted = sum(1 for turn in state.get("turns", []) if turn["agent"] in workers)
        if acted >= max_turns:
            return Command(goto="consolidate")
        update = await recall_for(router, state, runtime.context)
        prompt = router.prompt(
            task=state["task"], context=context_blocks(update["recalled"][router.name]),
            transcript=transcript_of(state),
        )  # fmt: skip
        rules = f"Choose who acts next among {', '.join(workers)}, or {FINISH} when the task is done."
        messages = [system(f"{prompt[0].content}\n\n{rules}"), user(prompt[1].content)]
        model = router.model or runtime.context.model
        result = await model.structured(messages, route_type, settings={"max_tokens": router.max_tokens})
        reply = result.output.model_dump()
        chosen, reason = str(reply["next"]), str(reply["reason"])
        turn = TurnState(agent=router.name, content=f"next: {chosen} ({reason})", tool_uses=[])
        goto = "consolidate" if chosen == FINISH else chosen
        return Command(goto=goto, update={**update, "turns": [turn]})

    route.__name__ = router.name
    return cast(Node, route)


async def _passthrough(state: TeamState) -> dict[str, Any]:
    del state
    return {}


def _graph() -> TeamGraph:
    graph = StateGraph(TeamState, context_schema=TeamContext)
    graph.add_node("consolidate", consolidate)  # pyright: ignore[reportUnknownMemberType]
    graph.add_edge("consolidate", END)
    return graph


def _check_names(agents: Sequence[Agent]) -> None:
    if not agents:
        raise GraphError("a team needs at least one agent")
    names = [a.name for a in agents]
    clashes = sorted(set(names) & RESERVED_NODE_NAMES)
    if clashes:
        raise GraphError(f"agent names {clashes} are reserved for memory nodes")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GraphError(f"agent names must be unique; repeated: {duplicates}")
