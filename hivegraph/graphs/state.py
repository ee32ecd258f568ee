"""The state a team graph carries from node to node (plain data, so checkpoints stay portable)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict


class ToolUseState(TypedDict):
    """One tool call of an agent's turn and its result."""

    tool: str
    arguments: dict[str, Any]
    result: str
    ok: bool
    step: int


class TurnState(TypedDict):
    """What one agent said, and the tools it used on the way."""

    agent: str
    content: str
    tool_uses: NotRequired[list[ToolUseState]]


class RecalledState(TypedDict):
    """A memory put in front of the agents."""

    id: str
    kind: str
    text: str
    score: float
    run_id: str | None


class WrittenState(TypedDict):
    """A memory change made by the `consolidate` node."""

    event: str
    record_id: str | None
    kind: str
    text: str


def merge_recalled(
    old: dict[str, list[RecalledState]], new: dict[str, list[RecalledState]]
) -> dict[str, list[RecalledState]]:
    """Recalled memories per agent: an agent's latest recall replaces its earlier one, others' stay."""
    return {**old, **new}


def union(old: list[str], new: list[str]) -> list[str]:
    """The ids of both lists, each once, in first-seen order."""
    return list(dict.fromkeys([*old, *new]))


class TeamState(TypedDict, total=False):
    """The state of one team run."""

    task: Required[str]
    turns: Annotated[list[TurnState], operator.add]
    recalled: Annotated[dict[str, list[RecalledState]], merge_recalled]
    """Memories recalled per agent name (each agent recalls before its step)."""
    written: Annotated[list[WrittenState], operator.add]
    """Memory changes of every `consolidate` step so far."""
    refused: Annotated[list[str], operator.add]
    """Writes refused: an agent's outside its policy, the memory manager's ops the store turned down."""
    outcome: Literal["success", "failure"]
    """How the task ended, when the input or a judging node says so (G-Memory learns from it)."""
    consolidations: int
    """How many `consolidate` steps the run has finished (keys each one's writes apart)."""
    shown_insights: Annotated[list[str], union]
    """Ids of the G-Memory insights the agents were shown (scored by the outcome)."""
