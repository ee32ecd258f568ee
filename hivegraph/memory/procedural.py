"""Procedural memory (Memp): reusable procedures, retrieved by task, kept or retired by their record.

A procedure is stored as one record of kind `procedural` whose text is the
task description, so retrieval is by task similarity. Its metadata holds the
step-by-step instructions (a JSON list of strings), the script-like
abstraction, the model that distilled it, and its success and failure counts.
Everything is plain text, so a procedure distilled by one model can be shown
to any other.

Each use is recorded with `record_outcome`, a journaled UPDATE of the counts
that expects the version it read: writers in other processes (or other
`ProceduralMemory` objects) that count at the same time make it re-read and
retry, so no count is lost.
When a procedure has been used at least `min_uses` times and its success rate
is below `deprecate_below`, it is deprecated: the outcome's UPDATE also sets
the metadata key `deprecated` to the reason (so the reason is on the final
version, in the journal and in `history`), and a DELETE then closes the
record. Nothing is erased: the procedure stays in its history, and undoing
the DELETE (`MemoryStore.undo`) brings it back as it was, reason included.

This module decides nothing with a model; `hivegraph.agents.distiller`
distils trajectories into `Procedure`s and hands them here.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from hivegraph.errors import ConfigError, MemoryStoreError, RecordNotFoundError
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.retrieval import Retriever
from hivegraph.memory.sources import VECTOR
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import AddOp, DeleteOp, MemoryRecord, NoopOp, Scalar, Scope, Source, UpdateOp

KIND = "procedural"
MAX_STEPS = 12
MAX_STEP_CHARS = 240
MAX_SCRIPT_CHARS = 1200
MAX_OUTCOME_ATTEMPTS = 16
"""How many times `record_outcome` re-reads and retries when other writers keep changing the procedure."""
BACKOFF_BASE_S = 0.001
BACKOFF_CAP_S = 0.05
"""Between attempts `record_outcome` waits up to `BACKOFF_BASE_S * 2**attempt` seconds (at most the cap)."""
DEPRECATED_KEY = "deprecated"
"""Metadata key holding the deprecation reason on a procedure's final version ("" while it is live)."""

StepText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_STEP_CHARS)]
_STEPS = TypeAdapter(list[StepText])


class Procedure(BaseModel):
    """A reusable way of doing a kind of task."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task: str = Field(min_length=1)
    """The task it was learned from; the text retrieval compares new tasks with."""
    steps: list[StepText] = Field(min_length=1, max_length=MAX_STEPS)
    """Step-by-step instructions, in order."""
    script: str = Field(default="", max_length=MAX_SCRIPT_CHARS)
    """A short script-like abstraction of the steps (pseudo-code)."""
    source_model: str = ""
    """Name of the model that distilled it (provenance; any model may use it)."""
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)

    @property
    def uses(self) -> int:
        """How many recorded uses it has had."""
        return self.successes + self.failures

    @property
    def success_rate(self) -> float | None:
        """Successes over uses; None before the first use."""
        return self.successes / self.uses if self.uses else None

    def to_metadata(self) -> dict[str, Scalar]:
        """The record metadata that holds everything but the task."""
        return {
            "steps": json.dumps(self.steps, ensure_ascii=False),
            "script": self.script,
            "source_model": self.source_model,
            "successes": self.successes,
            "failures": self.failures,
            DEPRECATED_KEY: "",
        }

    @classmethod
    def from_record(cls, record: MemoryRecord) -> Procedure:
        """The procedure a `procedural` record holds.

        Raises:
            MemoryStoreError: the record is not procedural or its metadata is malformed.

        """
        if record.kind != KIND:
            raise MemoryStoreError(f"record {record.id} is {record.kind!r}, not a procedure")
        meta = record.metadata
        try:
            steps = _STEPS.validate_json(str(meta.get("steps", "[]")))
            return cls(
                task=record.text,
                steps=steps,
                script=str(meta.get("script", "")),
                source_model=str(meta.get("source_model", "")),
                successes=int(meta.get("successes", 0)),
                failures=int(meta.get("failures", 0)),
            )
        except (ValidationError, ValueError) as exc:
            raise MemoryStoreError(f"record {record.id} does not hold a valid procedure: {exc}") from exc


class RetrievedProcedure(BaseModel):
    """A procedure found for a task, with its record id and similarity (higher is closer)."""

    record_id: UUID
    score: float
    procedure: Procedure


@dataclass(frozen=True)
class OutcomeResult:
    """What `record_outcome` journaled: the count update and, if it came to that, the deprecation."""

    update: JournalEntry
    deprecation: JournalEntry | None = None

    @property
    def procedure(self) -> Procedure:
        """The procedure with its new counts."""
        assert self.update.after is not None
        return Procedure.from_record(self.update.after)

    @property
    def deprecated(self) -> bool:
        """Whether this outcome closed the procedure."""
        return self.deprecation is not None


class ProceduralMemory:
    """Stores, retrieves, scores and retires procedures in a `MemoryStore`."""

    def __init__(
        self, store: MemoryStore, retriever: Retriever, *, min_uses: int = 3, deprecate_below: float = 0.5
    ) -> None:
        """Keep procedures in `store`, found through `retriever`.

        Args:
            store: The memory store (journal first) that holds the procedures.
            retriever: The retriever over `store` (vector and keyword sources).
            min_uses: Uses a procedure must have before it can be deprecated.
            deprecate_below: Success rate under which a procedure with enough uses is deprecated.

        Raises:
            ConfigError: `min_uses` is below 1 or `deprecate_below` is outside [0, 1].

        """
        if min_uses < 1:
            raise ConfigError(f"min_uses must be at least 1, got {min_uses}", field="min_uses")
        if not 0.0 <= deprecate_below <= 1.0:
            raise ConfigError(f"deprecate_below must be in [0, 1], got {deprecate_below}", field="deprecate_below")
        self.store = store
        self.retriever = retriever
        self.min_uses = min_uses
        self.deprecate_below = deprecate_below

    async def add(
        self, procedure: Procedure, *, scope: Scope, actor: str, source: Source | None = None
    ) -> MemoryRecord:
        """Store `procedure` and return its record.

        A current procedure for the same task text (up to case and spacing) in
        exactly this scope is kept as it is and returned instead.

        Raises:
            MemoryStoreError: the store refused it (e.g. the task text is too long).

        """
        op = AddOp(text=procedure.task, kind=KIND, metadata=procedure.to_metadata())
        result = await self.store.apply([op], scope=scope, actor=actor, source=source)
        if result.refused:
            raise MemoryStoreError(f"procedure not stored: {result.refused[0].reason}")
        entry = result.applied[0]
        if entry.after is not None:
            return entry.after
        assert isinstance(entry.op, NoopOp) and entry.op.record_id is not None
        return await self._current(entry.op.record_id, scope=scope)

    async def known(self, task: str, *, scope: Scope) -> MemoryRecord | None:
        """The current procedure whose task equals `task` (up to case and spacing) in exactly `scope`."""
        return await self.store.find_duplicate(task, scope=scope, kind=KIND)

    async def get(self, record_id: UUID, *, scope: Scope) -> Procedure | None:
        """The current procedure with this record id inside `scope`, if any."""
        record = await self.store.get(record_id, scope=scope)
        return Procedure.from_record(record) if record is not None and record.kind == KIND else None

    async def retrieve(
        self, task: str, *, scope: Scope, k: int = 3, min_score: float | None = None
    ) -> list[RetrievedProcedure]:
        """The `k` current procedures in `scope` whose tasks best match `task` (vector and keyword, fused), best first.

        `score` is the cosine similarity of the task to the procedure's task (0 for a procedure found by
        keyword only), and `min_score` applies to it.
        """
        found = await self.retriever.retrieve(task, scope=scope, k=k, kinds=(KIND,))
        scored = [(hit, hit.scores.get(VECTOR, 0.0)) for hit in found.hits]
        return [
            RetrievedProcedure(record_id=hit.record_id, score=score, procedure=Procedure.from_record(hit.loaded))
            for hit, score in scored
            if min_score is None or score >= min_score
        ]

    async def record_outcome(
        self, record_id: UUID, *, success: bool, scope: Scope, actor: str, source: Source | None = None
    ) -> OutcomeResult:
        """Count one use of a procedure, and deprecate it if it now fails too often.

        The counts are updated optimistically: the UPDATE expects the version
        that was read, and is re-read and retried (after a short random wait)
        when another writer (another process, another `ProceduralMemory`) got
        there first, so no count is lost. The deprecating DELETE expects the version the UPDATE opened; if
        another writer has moved the procedure on meanwhile, it is left to that
        writer, which judged newer counts.

        Raises:
            RecordNotFoundError: no current procedure with this id inside `scope`.
            MemoryStoreError: the store refused the update, or it kept conflicting
                after `MAX_OUTCOME_ATTEMPTS` attempts.

        """
        for attempt in range(MAX_OUTCOME_ATTEMPTS):
            record = await self._current(record_id, scope=scope)
            op, reason = self._count(record, success=success)
            update = await self._apply_one(op, scope=scope, actor=actor, source=source)
            if update is None:
                await _back_off(attempt)
                continue
            if not reason:
                return OutcomeResult(update=update)
            assert update.after is not None
            delete = DeleteOp(record_id=record_id, expected_version=update.after.version)
            closed = await self._apply_one(delete, scope=scope, actor=actor, source=source)
            return OutcomeResult(update=update, deprecation=closed)
        raise MemoryStoreError(
            f"outcome of procedure {record_id} not recorded: other writers kept changing it "
            f"({MAX_OUTCOME_ATTEMPTS} attempts conflicted)"
        )

    def _count(self, record: MemoryRecord, *, success: bool) -> tuple[UpdateOp, str]:
        """The UPDATE that counts one more use of `record` (expecting its version), and the deprecation reason."""
        old = Procedure.from_record(record)
        new = old.model_copy(
            update={"successes": old.successes + int(success), "failures": old.failures + int(not success)}
        )
        reason = self.deprecation_reason(new)
        metadata: dict[str, Scalar] = {"successes": new.successes, "failures": new.failures, DEPRECATED_KEY: reason}
        op = UpdateOp(record_id=record.id, text=record.text, metadata=metadata, expected_version=record.version)
        return op, reason

    def deprecation_reason(self, procedure: Procedure) -> str:
        """Why `procedure` should be deprecated under this policy, or "" if it should be kept."""
        rate = procedure.success_rate
        if procedure.uses < self.min_uses or rate is None or rate >= self.deprecate_below:
            return ""
        return (
            f"success rate {procedure.successes}/{procedure.uses} = {rate:.2f} is below "
            f"{self.deprecate_below:.2f} after {procedure.uses} uses (minimum {self.min_uses})"
        )

    async def _current(self, record_id: UUID, *, scope: Scope) -> MemoryRecord:
        record = await self.store.get(record_id, scope=scope)
        if record is None or record.kind != KIND:
            raise RecordNotFoundError(str(record_id))
        return record

    async def _apply_one(
        self, op: UpdateOp | DeleteOp, *, scope: Scope, actor: str, source: Source | None
    ) -> JournalEntry | None:
        """The entry of `op`, or None when it was refused as a conflict (the record moved on since it was read).

        Raises:
            MemoryStoreError: the store refused it for another reason.

        """
        result = await self.store.apply([op], scope=scope, actor=actor, source=source)
        if not result.refused:
            return result.applied[0]
        refusal = result.refused[0]
        if refusal.code == "conflict":
            return None
        raise MemoryStoreError(f"{op.event} of procedure {op.record_id} refused: {refusal.reason}")


async def _back_off(attempt: int) -> None:
    """Wait a random time, growing with `attempt`, so writers that collided do not collide again in step."""
    await asyncio.sleep(random.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))


def render(procedure: Procedure, *, with_record: bool = True) -> str:
    """The procedure as text for an agent's context: task, numbered steps, script, and its record of use."""
    lines = [f"Procedure learned from the task: {procedure.task}", "Steps:"]
    lines += [f"{n}. {step}" for n, step in enumerate(procedure.steps, start=1)]
    if procedure.script:
        lines += ["Script:", procedure.script]
    if with_record and procedure.uses:
        lines.append(f"Record: {procedure.successes} of {procedure.uses} uses succeeded.")
    return "\n".join(lines)


def render_all(found: Sequence[RetrievedProcedure]) -> str:
    """Several retrieved procedures as one context block, closest first, each tagged with its record id."""
    return "\n\n".join(f"[procedure {hit.record_id}]\n{render(hit.procedure)}" for hit in found)
