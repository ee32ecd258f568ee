"""Team patterns built as LangGraph `StateGraph`s around the memory nodes."""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.graph import END, START, StateGraph

from hivegraph.agents.base import Agent
from hivegraph.errors import GraphError
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.nodes import agent_node, consolidate, recall
from hivegraph.graphs.state import TeamState

RESERVED_NODE_NAMES = frozenset({"recall", "consolidate"})


def pipeline(agents: Sequence[Agent]) -> StateGraph[TeamState, TeamContext, TeamState, TeamState]:
    """`recall`, then each agent in order, then `consolidate`.

    Raises:
        GraphError: no agents, a duplicate name, or a name reserved for a memory node.

    """
    _check_names(agents)
    graph = StateGraph(TeamState, context_schema=TeamContext)
    graph.add_node("recall", recall)  # pyright: ignore[reportUnknownMemberType] - langgraph overloads
    graph.add_node("consolidate", consolidate)  # pyright: ignore[reportUnknownMemberType]
    previous = START
    graph.add_edge(previous, "recall")
    previous = "recall"
    for agent in agents:
        graph.add_node(agent.name, agent_node(agent))  # pyright: ignore[reportUnknownMemberType]
        graph.add_edge(previous, agent.name)
        previous = agent.name
    graph.add_edge(previous, "consolidate")
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
