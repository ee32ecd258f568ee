"""The procedure distiller: turns a successful trajectory into a reusable procedure (Memp's build step).

One structured call per trajectory asks the model for step-by-step
instructions and a short script-like abstraction; the reply is validated
against a bounded schema and retried a bounded number of times, then the
error is raised and nothing is stored. Only successful trajectories are
distilled: for a failed one `distill` returns None without calling the model
(failure is an ordinary outcome, not an error). `learn` also records the
outcome of the procedures that were used for the task, so a procedure that
keeps failing is deprecated by `ProceduralMemory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hivegraph.memory.procedural import OutcomeResult, ProceduralMemory, Procedure
from hivegraph.memory.types import MemoryRecord, Scope, Source
from hivegraph.models.base import ChatModel, Message, RequestSettings, system, user

Trajectory = Sequence[Message | tuple[str, str]]
"""The steps of a run: chat messages, or `(actor, content)` pairs, in order."""

DISTILL_PROCEDURE = """\
You turn the trajectory of a task that succeeded into a procedure that can be \
reused for similar tasks.
Write "steps": at most {max_steps} short imperative instructions, in order, that \
would solve this kind of task again; keep what mattered, drop detours and mistakes, \
and generalise one-off details.
Write "script": a short script-like abstraction of the procedure: a few lines of \
pseudo-code with the key actions, checks and loops.
Reply with JSON only: {{"steps": ["...", "..."], "script": "..."}}"""

DISTILL_REQUEST = "Task:\n{task}\n\nTrajectory ({count} steps):\n{steps}"

MAX_DISTILLED_STEPS = 8
DistilledStep = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=160)]


class DistilledProcedure(BaseModel):
    """The distillation reply (bounded so a small model cannot run on)."""

    model_config = ConfigDict(extra="forbid")
    steps: list[DistilledStep] = Field(min_length=1, max_length=MAX_DISTILLED_STEPS)
    script: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=480)]


@dataclass
class LearnResult:
    """What one `learn` call did."""

    record: MemoryRecord | None = None
    """The procedure stored for the task (or the one already known); None for a failed run."""
    procedure: Procedure | None = None
    outcomes: list[OutcomeResult] = field(default_factory=list[OutcomeResult])
    """The outcome recorded for each procedure that was used."""
    known: bool = False
    """The task already had a current procedure in this scope, so nothing was distilled."""
    model_calls: int = 0


class ProcedureDistiller:
    """Distils successful trajectories into procedures and stores them."""

    def __init__(
        self,
        model: ChatModel,
        *,
        max_trajectory_chars: int = 6000,
        max_retries: int | None = None,
        settings: RequestSettings | None = None,
        name: str = "procedure_distiller",
    ) -> None:
        """Distil with `model`.

        Args:
            model: The chat model that writes procedures (a strong one, ideally).
            max_trajectory_chars: Longer trajectories keep their beginning and end.
            max_retries: Extra attempts for an invalid reply; the model's own when None.
            settings: Request settings; `max_tokens` defaults to 768, room for the whole reply.
            name: The actor named in the journal.

        """
        self.model = model
        self.max_trajectory_chars = max_trajectory_chars
        self.max_retries = max_retries
        self.settings: RequestSettings = {"max_tokens": 768, **(settings or {})}
        self.name = name

    async def distill(self, task: str, trajectory: Trajectory, *, success: bool) -> Procedure | None:
        """The procedure the trajectory shows, or None when the task failed (no model call).

        Raises:
            UnexpectedModelOutput: no reply validated within the retries.

        """
        if not success:
            return None
        prompt = [
            system(DISTILL_PROCEDURE.format(max_steps=MAX_DISTILLED_STEPS)),
            user(render_request(task, trajectory, max_chars=self.max_trajectory_chars)),
        ]
        reply = await self.model.structured(
            prompt, DistilledProcedure, settings=self.settings, max_retries=self.max_retries
        )
        out = reply.output
        return Procedure(task=task, steps=out.steps, script=out.script, source_model=self.model.model_name)

    async def learn(
        self,
        memory: ProceduralMemory,
        task: str,
        trajectory: Trajectory,
        *,
        success: bool,
        scope: Scope,
        used: Sequence[UUID] = (),
        source: Source | None = None,
    ) -> LearnResult:
        """Record the outcome of the procedures `used`, then distil and store a successful run.

        A task that already has a current procedure in exactly this scope is not
        distilled again (no model call); a deprecated one no longer counts.

        Raises:
            UnexpectedModelOutput: the distillation never validated; no procedure was stored.
            RecordNotFoundError: a procedure in `used` is not current inside `scope`.
            MemoryStoreError: the store refused a write.

        """
        result = LearnResult()
        for record_id in used:
            outcome = memory.record_outcome(record_id, success=success, scope=scope, actor=self.name, source=source)
            result.outcomes.append(await outcome)
        if not success:
            return result
        known = await memory.known(task, scope=scope)
        if known is not None:
            result.record, result.procedure, result.known = known, Procedure.from_record(known), True
            return result
        procedure = await self.distill(task, trajectory, success=True)
        result.model_calls = 1
        assert procedure is not None
        result.record = await memory.add(procedure, scope=scope, actor=self.name, source=source)
        result.procedure = procedure
        return result


def render_request(task: str, trajectory: Trajectory, *, max_chars: int) -> str:
    """The user message of a distillation: the task, then the numbered trajectory steps."""
    steps = [_step(item) for item in trajectory]
    lines = "\n".join(f"[{n}] {actor}: {content}" for n, (actor, content) in enumerate(steps, start=1))
    return DISTILL_REQUEST.format(task=task, count=len(steps), steps=elide(lines, max_chars=max_chars))


def elide(text: str, *, max_chars: int) -> str:
    """`text` cut to about `max_chars`, keeping its beginning and end around a marker."""
    if len(text) <= max_chars:
        return text
    head = max_chars * 2 // 3
    tail = max_chars - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[... {omitted} characters omitted ...]\n{text[-tail:]}"


def _step(item: Message | tuple[str, str]) -> tuple[str, str]:
    if isinstance(item, Message):
        actor = item.name or item.role
        calls = "".join(f" [calls {c.name}({c.arguments})]" for c in item.tool_calls)
        return actor, item.content + calls
    return item
