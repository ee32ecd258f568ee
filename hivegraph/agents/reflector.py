"""The reflector: after a task, proposes ADD / AGREE / EDIT / REMOVE ops on the team's insights (G-Memory).

It sees the task, how it ended, its key steps, and the insights the team was
shown together with the nearest other insights, each under a small integer
alias. One structured call returns the ops; the reply is parsed strictly and
checked against the aliases (an invented alias, or an AGREE / EDIT / REMOVE
without one, is sent back with the reason and retried a bounded number of
times, then raised: nothing is applied). The checked ops are handed to
`GMemory.revise`, which scores them (ADD 2, AGREE and EDIT +1, REMOVE -1).

`TrajectorySummarizer` is the model-written alternative to the rule-based
condensation of trajectories, for capable models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from hivegraph.errors import RetryRequested
from hivegraph.memory.condense import StepText, condense
from hivegraph.memory.facade import Memory
from hivegraph.memory.gmemory import (
    INSIGHT,
    AgreeInsight,
    EditInsight,
    InsightChange,
    InsightOp,
    NewInsight,
    RemoveInsight,
)
from hivegraph.memory.types import MemoryRecord, Scope
from hivegraph.memory.vocabulary import Outcome
from hivegraph.models.base import ChatModel, RequestSettings, system, user
from hivegraph.models.schema import integer_choice

REFLECT = """\
You keep a team's insights: short, general lessons that help with future tasks \
of the same kind. You are given a task the team just finished, whether it \
succeeded, its key steps, and the existing insights by id.
Propose at most {max_ops} operations:
- ADD: a new general lesson this task teaches (not a fact about this one task); \
give its text, and the roles it is for (empty: every role; roles: {roles}).
- AGREE: the task bears an existing insight out; give its id.
- EDIT: an existing insight should be reworded to hold better; give its id and the new text.
- REMOVE: the task shows an existing insight is wrong or harmful; give its id.
Use only the listed ids. Propose nothing if there is nothing to learn.
Reply with JSON only: {{"ops": [{{"op": "ADD", "id": null, "text": "...", "roles": []}}]}}"""

REFLECT_REQUEST = "Task: {task}\nOutcome: {outcome}\n\nKey steps:\n{steps}\n\nExisting insights:\n{insights}"

SUMMARIZE = """\
You condense how a team solved a task into its key steps, so another team can \
follow it. Keep the actions and checks that mattered, drop chatter and detours. \
At most {words} words. Reply with the summary only."""

MAX_REFLECTION_OPS = 4
"""The most ops one reflection may propose (the schema bounds it, so a small model cannot run on)."""
InsightText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
NewInsightText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200)]
"""The text of an ADD: the schema asks for one, so constrained decoding cannot leave it empty."""
RoleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
_REPLY = ConfigDict(extra="forbid", strict=True)


class InsightChoice(BaseModel):
    """One insight op as the model writes it (ids are the aliases it was shown)."""

    model_config = _REPLY
    op: Literal["ADD", "AGREE", "EDIT", "REMOVE"]
    id: int | None = Field(ge=0, le=999)
    text: InsightText = ""
    roles: list[RoleName] = Field(default_factory=list[str], max_length=4)


class Reflection(BaseModel):
    """The reflection reply."""

    model_config = _REPLY
    ops: list[InsightChoice] = Field(max_length=MAX_REFLECTION_OPS)


def reply_model(aliases: Sequence[int], max_ops: int) -> type[Reflection]:
    """The reply schema of one reflection: at most `max_ops` ops; AGREE, EDIT and REMOVE name a shown alias.

    Each op is one of two shapes: an ADD (no id) or an op on a shown insight
    (an id among `aliases`). Under constrained decoding the model cannot write
    an id it was not shown, leave one out, or propose more ops than asked for.
    """
    only_add: Any = Literal["ADD"]
    new = create_model(
        "NewInsightChoice", __base__=InsightChoice, op=(only_add, ...), id=(None, None), text=(NewInsightText, ...)
    )
    item: Any = new
    if aliases:
        on_shown: Any = Literal["AGREE", "EDIT", "REMOVE"]
        alias: Any = integer_choice(aliases, "insights")
        shown = create_model("ShownInsightChoice", __base__=InsightChoice, op=(on_shown, ...), id=(alias, ...))
        item = Annotated[new | shown, Field(discriminator="op")]
    ops = (list[item], Field(max_length=max(0, min(max_ops, MAX_REFLECTION_OPS))))
    return create_model("Reflection", __base__=Reflection, ops=ops)


@dataclass
class TaskLesson:
    """What G-Memory learned from one finished task: its outcome, the shown insights rescored, the reflection."""

    task: MemoryRecord
    rewards: list[InsightChange] = field(default_factory=list[InsightChange])
    reflection: ReflectResult | None = None


@dataclass
class ReflectResult:
    """What one reflection decided and changed."""

    ops: list[InsightOp] = field(default_factory=list[InsightOp])
    changes: list[InsightChange] = field(default_factory=list[InsightChange])
    model_calls: int = 0


class Reflector:
    """Draws insights from finished tasks and keeps the insight graph current."""

    def __init__(
        self,
        model: ChatModel,
        memory: Memory,
        *,
        nearest: int = 5,
        max_ops: int = MAX_REFLECTION_OPS,
        max_retries: int | None = None,
        settings: RequestSettings | None = None,
        name: str = "reflector",
    ) -> None:
        """Reflect with `model` on tasks in `memory`.

        Args:
            model: The chat model that proposes the ops.
            memory: The memory whose G-Memory the ops change.
            nearest: Insights found by search shown beside those the team was shown.
            max_ops: The most ops a reflection may propose (at most `MAX_REFLECTION_OPS`).
            max_retries: Extra attempts when a reply does not validate (None: the model's own).
            settings: Request settings; `max_tokens` defaults to 640, room for the longest valid reply.
            name: The actor its writes are journaled under.

        """
        self.model = model
        self.settings: RequestSettings = {"max_tokens": 640, **(settings or {})}
        self.memory = memory
        self.nearest = nearest
        self.max_ops = min(max_ops, MAX_REFLECTION_OPS)
        self.max_retries = max_retries
        self.name = name

    async def reflect(
        self,
        task: str,
        steps: Sequence[StepText],
        *,
        outcome: Outcome,
        task_id: UUID,
        scope: Scope,
        shown: Sequence[UUID] = (),
        roles: Sequence[str] = (),
    ) -> ReflectResult:
        """Decide insight ops for a finished task and apply them (each linked to `task_id`).

        Raises:
            UnexpectedModelOutput: no reply validated; nothing was changed.

        """
        ops = await self.decide(task, steps, outcome=outcome, scope=scope, shown=shown, roles=roles)
        changes = await self.memory.gmemory.revise(ops, task_id=task_id, scope=scope, actor=self.name)
        return ReflectResult(ops=ops, changes=changes, model_calls=1)

    async def learn(
        self,
        task: str,
        steps: Sequence[StepText],
        *,
        outcome: Outcome,
        task_id: UUID,
        scope: Scope,
        shown: Sequence[UUID] = (),
        roles: Sequence[str] = (),
        reflect: bool = True,
    ) -> TaskLesson:
        """Record the outcome of a recorded task, rescore the insights it was shown, then reflect on it.

        Every write is keyed by the task, so learning from the same task again changes nothing twice.

        Raises:
            RecordNotFoundError: the task was not recorded (`GMemory.record_task`) in `scope`.
            UnexpectedModelOutput: the reflection never validated (the outcome and rewards are kept).

        """
        gmemory = self.memory.gmemory
        record = await gmemory.set_outcome(task_id, outcome, scope=scope, actor=self.name)
        rewards = await gmemory.reward(shown, task_id=task_id, success=outcome == "success", scope=scope)
        lesson = TaskLesson(task=record, rewards=rewards)
        if reflect:
            lesson.reflection = await self.reflect(
                task, steps, outcome=outcome, task_id=task_id, scope=scope, shown=shown, roles=roles
            )
        return lesson

    async def decide(
        self,
        task: str,
        steps: Sequence[StepText],
        *,
        outcome: Outcome,
        scope: Scope,
        shown: Sequence[UUID] = (),
        roles: Sequence[str] = (),
    ) -> list[InsightOp]:
        """The insight ops the model proposes, aliases mapped back to insight ids."""
        existing = await self._existing(task, scope=scope, shown=shown)
        aliases = dict(enumerate(existing))
        counter = self.memory.counter
        key = condense(steps, budget=800, count=counter.count)
        listed = "\n".join(f"[{alias}] {record.text}" for alias, record in aliases.items()) or "(none)"
        request = REFLECT_REQUEST.format(task=task, outcome=outcome, steps=key.render() or "(none)", insights=listed)
        prompt = [system(REFLECT.format(max_ops=self.max_ops, roles=", ".join(roles) or "any")), user(request)]
        reply = await self.model.structured(
            prompt,
            reply_model(sorted(aliases), self.max_ops),
            settings=self.settings,
            max_retries=self.max_retries,
            validate=lambda r: _check(r, aliases, self.max_ops),
        )
        return [_to_op(choice, aliases) for choice in reply.output.ops]

    async def _existing(self, task: str, *, scope: Scope, shown: Sequence[UUID]) -> list[MemoryRecord]:
        """The insights shown to the team, then the nearest others, each once."""
        records: dict[UUID, MemoryRecord] = {}
        for insight_id in shown:
            record = await self.memory.get(insight_id, scope=scope)
            if record is not None and record.kind == INSIGHT:
                records[record.id] = record
        if self.nearest:
            found = await self.memory.recall(task, scope=scope, k=self.nearest, kinds=(INSIGHT,))
            for hit in found.hits:
                records.setdefault(hit.record_id, hit.loaded)
        return list(records.values())


class TrajectorySummarizer:
    """A model-written summary of a trajectory's key steps (`GMemory.retrieve(summarize=...)`)."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model

    async def __call__(self, task: str, steps: Sequence[StepText], budget: int) -> str:
        """The summary, asked to stay within about `budget` tokens."""
        words = max(budget * 3 // 4, 8)
        lines = "\n".join(f"{s.step + 1}. {s.agent}: {s.content}" for s in steps)
        settings: RequestSettings = {"max_tokens": max(budget, 16)}
        reply = await self.model.request(
            [system(SUMMARIZE.format(words=words)), user(f"Task: {task}\n\nSteps:\n{lines}")], settings=settings
        )
        return reply.text.strip()


def _check(reflection: Reflection, aliases: Mapping[int, MemoryRecord], max_ops: int) -> Reflection:
    problems: list[str] = []
    if len(reflection.ops) > max_ops:
        problems.append(f"at most {max_ops} ops, not {len(reflection.ops)}")
    for n, choice in enumerate(reflection.ops):
        if choice.op == "ADD":
            if choice.id is not None:
                problems.append(f"op {n} (ADD) takes no id")
            if not choice.text:
                problems.append(f"op {n} (ADD) needs a text")
            continue
        if choice.id is None or choice.id not in aliases:
            problems.append(f"op {n} ({choice.op}) needs the id of a listed insight, not {choice.id}")
        if choice.op == "EDIT" and not choice.text:
            problems.append(f"op {n} (EDIT) needs the new text")
    if problems:
        raise RetryRequested("; ".join(problems) + f" (valid ids: {sorted(aliases)})", detail=problems)
    return reflection


def _to_op(choice: InsightChoice, aliases: Mapping[int, MemoryRecord]) -> InsightOp:
    if choice.op == "ADD":
        return NewInsight(choice.text, tuple(choice.roles))
    assert choice.id is not None
    insight_id = aliases[choice.id].id
    match choice.op:
        case "AGREE":
            return AgreeInsight(insight_id)
        case "EDIT":
            return EditInsight(insight_id, choice.text, tuple(choice.roles) if choice.roles else None)
        case "REMOVE":
            return RemoveInsight(insight_id)
