"""The state a team graph carries from node to node (plain data, so checkpoints stay portable)."""

from __future__ import annotations

import operator
from typing import Annotated, Literal, Required, TypedDict


class TurnState(TypedDict):
    """What one agent said."""

    agent: str
    content: str


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


class TeamState(TypedDict, total=False):
    """The state of one team run."""

    task: Required[str]
    turns: Annotated[list[TurnState], operator.add]
    recalled: dict[str, list[RecalledState]]
    """Memories recalled per agent name."""
    written: list[WrittenState]
    refused: list[str]
    outcome: Literal["success", "failure"]
    """How the task ended, when the input or a judging node says so (G-Memory learns from it)."""
    shown_insights: list[str]
    """Ids of the G-Memory insights the agents were shown (scored by the outcome)."""
