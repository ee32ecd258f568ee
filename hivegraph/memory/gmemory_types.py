"""The values G-Memory reads and writes: settings, steps, insight ops, and what a retrieval found.

`hivegraph.memory.gmemory` (re-exporting all of these) says what the tiers are and how they are kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from hivegraph.errors import ConfigError
from hivegraph.memory.condense import Condensed, StepText
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.types import MemoryRecord
from hivegraph.memory.vocabulary import Outcome


@dataclass(frozen=True)
class GMemorySettings:
    """How G-Memory links, scores and retrieves (defaults: the G-Memory reference code where it has one)."""

    similar_links: int = 3
    """`SIMILAR` links a new task gets, to its nearest earlier tasks."""
    similarity_threshold: float = 0.5
    """The least cosine similarity of a `SIMILAR` link (measured: benchmarks/gmemory_retrieval.py)."""
    similar_tasks: int = 3
    """Tasks a retrieval starts from (their `SIMILAR` neighbours join them)."""
    insights: int = 5
    trajectories: int = 2
    token_budget: int = 600
    add_score: float = 2.0
    agree_gain: float = 1.0
    edit_gain: float = 1.0
    remove_loss: float = 1.0
    success_reward: float = 1.0
    failure_penalty: float = 2.0

    def __post_init__(self) -> None:
        for name in ("similar_links", "similar_tasks", "insights", "trajectories", "token_budget"):
            if getattr(self, name) < 0:
                raise ConfigError(f"gmemory.{name} must be >= 0, got {getattr(self, name)}", field=f"gmemory.{name}")
        if not -1.0 <= self.similarity_threshold <= 1.0:
            raise ConfigError(
                f"gmemory.similarity_threshold must be a cosine in [-1, 1], got {self.similarity_threshold}",
                field="gmemory.similarity_threshold",
            )


@dataclass(frozen=True)
class Step:
    """One step of a task as the team took it: who acted and what they said or did."""

    agent: str
    content: str
    reply_to: int | None = None
    """The index of the step this one answers; None: the last earlier step of another agent."""


@dataclass(frozen=True)
class RecordedTask:
    """What `record_task` wrote (or found written by an earlier attempt of the same step)."""

    task: MemoryRecord
    steps: list[MemoryRecord]
    similar: list[tuple[UUID, float]]
    """The earlier tasks it was linked to as `SIMILAR`, with the similarity."""
    entries: list[JournalEntry]


@dataclass(frozen=True)
class NewInsight:
    """ADD: a new lesson, for the given roles (none: every role)."""

    text: str
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgreeInsight:
    """AGREE: the task bears an existing insight out."""

    insight_id: UUID


@dataclass(frozen=True)
class EditInsight:
    """EDIT: an existing insight, reworded (and gaining, as an AGREE does)."""

    insight_id: UUID
    text: str
    roles: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RemoveInsight:
    """REMOVE: an existing insight the task contradicts (it loses score)."""

    insight_id: UUID


InsightOp = NewInsight | AgreeInsight | EditInsight | RemoveInsight


@dataclass(frozen=True)
class InsightChange:
    """One insight's change: its new score, and whether it was retired."""

    insight_id: UUID
    event: Literal["ADD", "AGREE", "EDIT", "REMOVE", "REWARD"]
    score: float
    retired: bool = False
    entries: list[JournalEntry] = field(default_factory=list[JournalEntry])


@dataclass(frozen=True)
class FoundTask:
    """A similar earlier task: found by search (`hops` 0) or as a `SIMILAR` neighbour of one (`hops` 1)."""

    id: UUID
    text: str
    outcome: Outcome | None
    similarity: float
    """Cosine similarity to the new task (0 for a neighbour, or for a task only the keyword search found)."""
    hops: int
    run_id: str | None = None
    """The run that did the task."""


@dataclass(frozen=True)
class FoundInsight:
    """An insight the similar tasks support."""

    id: UUID
    text: str
    score: float
    support: int
    roles: tuple[str, ...]
    version: int

    def for_role(self, role: str | None) -> bool:
        """Whether an agent of `role` is shown this insight (all are, for no role)."""
        return role is None or not self.roles or role in self.roles


@dataclass(frozen=True)
class FoundTrajectory:
    """The condensed steps (or a model's summary) of a similar task that succeeded."""

    task_id: UUID
    task: str
    condensed: Condensed
    summary: str | None = None

    def render(self) -> str:
        """The trajectory as an agent reads it."""
        body = self.summary if self.summary is not None else self.condensed.render()
        return f"Task: {self.task}\n{body}"


Summarize = Callable[[str, Sequence[StepText], int], Awaitable[str]]
"""A model-written summary of a trajectory: (task, key steps, token budget) -> text."""


@dataclass(frozen=True)
class GMemoryContext:
    """What G-Memory found for a task: similar tasks, their insights, and trajectories to follow."""

    tasks: list[FoundTask]
    insights: list[FoundInsight]
    trajectories: list[FoundTrajectory]
    tokens: int

    def insights_for(self, role: str | None) -> list[FoundInsight]:
        """The insights an agent of `role` is shown, those for its role first, then by rank."""
        shown = [i for i in self.insights if i.for_role(role)]
        return sorted(shown, key=lambda i: (not (role is not None and role in i.roles), self.insights.index(i)))

    def render(self, role: str | None = None) -> str:
        """The context as text for an agent of `role` ("" when nothing was found)."""
        parts: list[str] = []
        insights = self.insights_for(role)
        if insights:
            parts.append("Insights from similar tasks:\n" + "\n".join(f"- {i.text}" for i in insights))
        if self.trajectories:
            parts.append("How similar tasks were solved:\n" + "\n\n".join(t.render() for t in self.trajectories))
        return "\n\n".join(parts)
