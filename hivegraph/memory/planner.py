"""Checking ops against the journal's current state and turning them into journal entries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from hivegraph.errors import MemoryStoreError, RecordNotFoundError, ScopeViolationError
from hivegraph.memory.journal import Journal, JournalEntry
from hivegraph.memory.types import (
    AddOp,
    DeleteOp,
    MemoryKind,
    MemoryOp,
    MemoryRecord,
    NoopOp,
    Scalar,
    Scope,
    Source,
    UpdateOp,
    text_hash,
)

_UNSET_BATCH = UUID(int=0)


class OpPlanner:
    """Validates ops and computes the versions each closes and opens."""

    def __init__(self, journal: Journal, *, max_text_chars: int) -> None:
        self.journal = journal
        self.max_text_chars = max_text_chars

    async def plan(self, op: MemoryOp, *, scope: Scope, source: Source, now: datetime) -> JournalEntry:
        """The journal entry `op` would produce (batch id and actor are filled in by the caller).

        Raises:
            MemoryStoreError: the op cannot be applied (unknown record, other scope, bad text).

        """
        entry = JournalEntry(batch_id=_UNSET_BATCH, at=now, actor="", scope=scope, op=op)
        match op:
            case AddOp():
                self.check_text(op.text)
                dup = await self.duplicate(op.text, scope=scope, kind=op.kind) if op.dedupe else None
                if dup is not None:
                    return entry.model_copy(update={"op": NoopOp(record_id=dup.id)})
                record = MemoryRecord(
                    kind=op.kind, text=op.text, metadata=op.metadata, scope=scope, source=source,
                    created_at=now, updated_at=now, valid_from=now,
                )  # fmt: skip
                return entry.model_copy(update={"after": record})
            case UpdateOp():
                self.check_text(op.text)
                before = await self.current(op.record_id, scope)
                after = revise(before, op.text, source, now, op.metadata)
                return entry.model_copy(update={"before": close(before, now), "after": after})
            case DeleteOp():
                before = await self.current(op.record_id, scope)
                return entry.model_copy(update={"before": close(before, now)})
            case NoopOp():
                if op.record_id is not None:
                    await self.current(op.record_id, scope)
                return entry

    async def current(self, record_id: UUID, scope: Scope) -> MemoryRecord:
        """The current version of a record, checked to be inside `scope`.

        Raises:
            RecordNotFoundError: no current version.
            ScopeViolationError: the record belongs to a scope `scope` does not contain.

        """
        found = await self.journal.records(scope=Scope(), record_ids=[record_id])
        if not found:
            raise RecordNotFoundError(str(record_id))
        record = found[0]
        if not scope.contains(record.scope):
            raise ScopeViolationError(str(record_id), f"belongs to scope {record.scope}, not inside {scope}")
        return record

    async def duplicate(self, text: str, *, scope: Scope, kind: MemoryKind) -> MemoryRecord | None:
        """A current record of `kind` in exactly `scope` with the same normalised text."""
        found = await self.journal.records(scope=scope, kinds=[kind], text_hash=text_hash(text))
        return next((r for r in found if r.scope == scope), None)

    def check_text(self, text: str) -> None:
        """Refuse empty or oversized text.

        Raises:
            MemoryStoreError: the text is empty or longer than `max_text_chars`.

        """
        if not text.strip():
            raise MemoryStoreError("memory text is empty")
        if len(text) > self.max_text_chars:
            raise MemoryStoreError(f"memory text is {len(text)} characters, over the limit of {self.max_text_chars}")


async def plan_undo(journal: Journal, target: JournalEntry, *, scope: Scope, now: datetime) -> JournalEntry:
    """The entry that reverts `target`: it closes what `target` opened and reopens what it closed.

    Raises:
        MemoryStoreError: `target` changed nothing, was undone already, or its record changed since.
        ScopeViolationError: the record is outside `scope`.

    """
    record = target.after or target.before
    if record is None:
        raise MemoryStoreError(f"op {target.op_id} ({target.op.event}) changed nothing; there is nothing to undo")
    if not scope.contains(record.scope):
        raise ScopeViolationError(str(record.id), f"belongs to scope {record.scope}, not inside {scope}")
    history = await journal.entries_for(record.id)
    if any(e.undo_of == target.op_id for e in history):
        raise MemoryStoreError(f"op {target.op_id} was already undone")
    if history[-1].op_id != target.op_id:
        raise MemoryStoreError(
            f"record {record.id} changed after op {target.op_id}; undo the later ops first (newest first)"
        )
    entry = JournalEntry(batch_id=_UNSET_BATCH, at=now, actor="", scope=record.scope, op=NoopOp(), undo_of=target.op_id)
    current = target.after
    if current is not None and target.before is None:  # an ADD: close what it opened
        return entry.model_copy(update={"op": DeleteOp(record_id=current.id), "before": close(current, now)})
    assert target.before is not None
    previous = target.before
    base = current or previous  # an UPDATE revises its new version; a DELETE reopens the closed one
    restored = revise(base, previous.text, previous.source, now).model_copy(update={"metadata": previous.metadata})
    update = {"op": UpdateOp(record_id=base.id, text=previous.text, metadata=previous.metadata), "after": restored}
    if current is not None:
        update["before"] = close(current, now)
    return entry.model_copy(update=update)


def close(record: MemoryRecord, now: datetime) -> MemoryRecord:
    """The version `record` becomes when an op supersedes it at `now`."""
    return record.model_copy(update={"valid_to": now})


def revise(
    record: MemoryRecord,
    text: str,
    source: Source,
    now: datetime,
    metadata: Mapping[str, Scalar] | None = None,
) -> MemoryRecord:
    """The next version of `record`, with new text and `metadata` merged over the old."""
    merged = record.metadata | dict(metadata) if metadata is not None else record.metadata
    return record.model_copy(
        update={"text": text, "hash": text_hash(text), "version": record.version + 1, "metadata": merged,
                "updated_at": now, "valid_from": now, "valid_to": None, "source": source}
    )  # fmt: skip


def batch_key(op: MemoryOp) -> str | None:
    """What an op changes, so one batch never changes the same thing twice."""
    match op:
        case AddOp():
            return f"text {text_hash(op.text)[:12]}" if op.dedupe else None
        case UpdateOp() | DeleteOp():
            return f"record {op.record_id}"
        case NoopOp():
            return None
