"""Planning ops against the journal's state inside the journal's own transaction.

Every journal runs `apply_batch` and `apply_undo` while it holds its write
transaction (`JournalTxn`), so what an op is checked against is exactly what
it changes: no other writer can slip in between the check and the append.
Each accepted op is written before the next one is planned, so later ops of a
batch see the earlier ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from hivegraph.errors import (
    ConflictError,
    InvalidInputError,
    KeyScopeError,
    MemoryStoreError,
    OpNotFoundError,
    ScopeViolationError,
)
from hivegraph.memory.journal import Batch, BatchResult, JournalEntry, RefusalCode, RefusedOp, UndoRequest
from hivegraph.memory.links import LINK, endpoint_problem, link_metadata, link_text
from hivegraph.memory.types import (
    AddOp,
    DeleteOp,
    LinkOp,
    MemoryKind,
    MemoryOp,
    MemoryRecord,
    NoopOp,
    Scalar,
    Scope,
    Source,
    UnlinkOp,
    UpdateOp,
    text_hash,
)
from hivegraph.memory.validation import check_metadata, check_text


class JournalTxn(Protocol):
    """What planning reads and writes inside one exclusive journal transaction."""

    def current(self, record_id: UUID) -> MemoryRecord | None:
        """The open version of a record, in any scope."""
        ...

    def latest(self, record_id: UUID) -> MemoryRecord | None:
        """The newest version of a record, open or closed."""
        ...

    def duplicate(self, scope: Scope, kind: MemoryKind, hash_: str) -> MemoryRecord | None:
        """An open version of `kind` in exactly `scope` with this text hash."""
        ...

    def entry(self, op_id: UUID) -> JournalEntry | None:
        """A journaled op."""
        ...

    def entries_for(self, record_id: UUID) -> list[JournalEntry]:
        """Every entry that touched a record, in order."""
        ...

    def key_scope(self, key: str) -> Scope | None:
        """The scope a key is bound to."""
        ...

    def bind_key(self, key: str, scope: Scope, at: datetime) -> None:
        """Bind an unbound key to `scope`."""
        ...

    def insert(self, entry: JournalEntry) -> JournalEntry:
        """Append `entry` and write the versions it closes and opens; returns it with its `seq`.

        Raises:
            ConflictError: it closes a version that is not open, or opens one that exists.

        """
        ...


class OpRefusedError(MemoryStoreError):
    """Planning refused one op (carried to `RefusedOp`)."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code: RefusalCode = code


def derived_op_id(key: str, n: int) -> UUID:
    """The op id of the n-th op of an idempotent batch."""
    return uuid5(NAMESPACE_URL, f"hivegraph:op:{key}:{n}")


def claim_key(txn: JournalTxn, key: str, scope: Scope, at: datetime, *, what: str) -> None:
    """Bind `key` to `scope`, or check it is bound to it.

    Raises:
        KeyScopeError: `key` is bound to another scope.

    """
    owner = txn.key_scope(key)
    if owner is None:
        txn.bind_key(key, scope, at)
    elif owner != scope:
        raise KeyScopeError(what, key.split(":", 1)[1])


def apply_batch(txn: JournalTxn, batch: Batch) -> BatchResult:
    """Plan and write each op of `batch` in turn; refusals are reported, never written.

    Raises:
        KeyScopeError: the batch's idempotency key belongs to another scope.

    """
    result = BatchResult()
    key = batch.idempotency_key
    if key is not None:
        claim_key(txn, f"op:{key}", batch.scope, batch.at, what="idempotency key")
    seen: set[str] = set()
    for n, op in enumerate(batch.ops):
        op_id = derived_op_id(key, n) if key is not None else uuid4()
        if key is not None and (done := txn.entry(op_id)) is not None:
            result.applied.append(done)
            continue
        try:
            entry = plan(txn, op, batch)
            change = batch_key(op)
            if change is not None and change in seen:
                raise OpRefusedError("batch", f"{change} is already changed by this batch")
            stored = txn.insert(entry.model_copy(update={"op_id": op_id}))
        except OpRefusedError as exc:
            result.refused.append(RefusedOp(op=op, reason=str(exc), code=exc.code))
            continue
        except InvalidInputError as exc:
            result.refused.append(RefusedOp(op=op, reason=str(exc), code="invalid"))
            continue
        except ConflictError as exc:
            result.refused.append(RefusedOp(op=op, reason=str(exc), code="conflict"))
            continue
        result.applied.append(stored)
        seen.update(k for k in (change,) if k is not None)
    return result


def plan(txn: JournalTxn, op: MemoryOp, batch: Batch) -> JournalEntry:
    """The entry `op` produces against the state `txn` sees.

    Raises:
        OpRefusedError: the op cannot be applied (unknown record, other scope, conflict, bad input).

    """
    now, scope, source = batch.at, batch.scope, batch.source
    entry = JournalEntry(batch_id=batch.batch_id, at=now, actor=batch.actor, scope=scope, op=op)
    match op:
        case AddOp():
            checked_text(op.text, batch.max_text_chars)
            check_metadata(op.metadata)
            if op.kind == LINK:
                raise OpRefusedError("invalid", "links are written with LinkOp, not added as records")
            dup = txn.duplicate(scope, op.kind, text_hash(op.text)) if op.dedupe else None
            if dup is not None:
                return entry.model_copy(update={"op": NoopOp(record_id=dup.id)})
            if op.record_id is not None and txn.latest(op.record_id) is not None:
                raise OpRefusedError("conflict", f"record id {op.record_id} is taken")
            record = MemoryRecord(
                id=op.record_id or uuid4(), kind=op.kind, text=op.text, metadata=op.metadata, scope=scope,
                source=source, created_at=now, updated_at=now, valid_from=now,
            )  # fmt: skip
            return entry.model_copy(update={"after": record})
        case UpdateOp():
            checked_text(op.text, batch.max_text_chars)
            if op.metadata is not None:
                check_metadata(op.metadata)
            before = current_in_scope(txn, op.record_id, scope, op.expected_version)
            if before.kind == LINK:
                raise OpRefusedError("invalid", f"record {op.record_id} is a link: change it with LinkOp or UnlinkOp")
            after = revise(before, op.text, source, now, op.metadata)
            return entry.model_copy(update={"before": close(before, now), "after": after})
        case DeleteOp():
            before = current_in_scope(txn, op.record_id, scope, op.expected_version)
            return entry.model_copy(update={"before": close(before, now)})
        case NoopOp():
            if op.record_id is not None:
                current_in_scope(txn, op.record_id, scope, None)
            return entry
        case LinkOp():
            return plan_link(txn, op, batch, entry)
        case UnlinkOp():
            found = txn.duplicate(scope, LINK, text_hash(link_text(op.relation, op.source, op.target)))
            if found is None:
                raise OpRefusedError("not_found", f"no {op.relation} link from {op.source} to {op.target} in {scope}")
            return entry.model_copy(update={"before": close(found, now)})


def plan_link(txn: JournalTxn, op: LinkOp, batch: Batch, entry: JournalEntry) -> JournalEntry:
    """The entry of a `LinkOp`: a new link, a NOOP for the same link again, or an UPDATE of its weight and metadata.

    Raises:
        OpRefusedError: an end is not a current record inside the scope, or not of the kind the relation joins.

    """
    scope, now = batch.scope, batch.at
    check_metadata(op.metadata)
    if op.source == op.target:
        raise OpRefusedError("invalid", f"a link joins two records; {op.source} is linked to itself")
    for end, record_id in (("source", op.source), ("target", op.target)):
        record = current_in_scope(txn, record_id, scope, None)
        problem = endpoint_problem(op.relation, end, record)
        if problem is not None:
            raise OpRefusedError("invalid", f"{problem} ({record_id})")
    text = link_text(op.relation, op.source, op.target)
    metadata = link_metadata(op.relation, op.source, op.target, op.weight, op.metadata)
    existing = txn.duplicate(scope, LINK, text_hash(text))
    if existing is not None:
        if existing.metadata == metadata:
            return entry.model_copy(update={"op": NoopOp(record_id=existing.id)})
        after = revise(existing, text, batch.source, now).model_copy(update={"metadata": metadata})
        return entry.model_copy(update={"before": close(existing, now), "after": after})
    record = MemoryRecord(
        kind=LINK, text=text, metadata=metadata, scope=scope, source=batch.source,
        created_at=now, updated_at=now, valid_from=now,
    )  # fmt: skip
    return entry.model_copy(update={"after": record})


def checked_text(text: str, max_chars: int) -> str:
    """`text` if it is storable memory text (non-empty, UTF-8, within `max_chars`).

    Raises:
        OpRefusedError: it is not.

    """
    try:
        return check_text(text, "memory text", max_chars=max_chars)
    except MemoryStoreError as exc:
        raise OpRefusedError("invalid", str(exc)) from None


def current_in_scope(txn: JournalTxn, record_id: UUID, scope: Scope, expected: int | None) -> MemoryRecord:
    """The open version of a record, checked to be inside `scope` and at `expected` (when given).

    Raises:
        OpRefusedError: no open version (`not_found`, or `conflict` when a version was expected),
            outside `scope` (named by the caller's scope only), or at another version (`conflict`).

    """
    record = txn.current(record_id)
    if record is not None and not scope.contains(record.scope):
        raise OpRefusedError("scope", f"record {record_id} is not inside scope {scope}")
    if record is None:
        latest = txn.latest(record_id) if expected is not None else None
        if latest is not None and scope.contains(latest.scope):
            raise OpRefusedError("conflict", f"record {record_id} was deleted after version {expected} was read")
        raise OpRefusedError("not_found", f"no current memory record with id {str(record_id)!r}")
    if expected is not None and record.version != expected:
        raise OpRefusedError("conflict", f"record {record_id} is at version {record.version}, not {expected} as read")
    return record


def apply_undo(txn: JournalTxn, request: UndoRequest) -> JournalEntry:
    """Plan and write the entry that reverts `request.op_id`.

    Raises:
        OpNotFoundError: no such op.
        ScopeViolationError: its record is outside the request's scope.
        ConflictError: it was undone already, or later ops (not undone) changed its record.
        MemoryStoreError: it changed nothing.

    """
    target = txn.entry(request.op_id)
    if target is None:
        raise OpNotFoundError(str(request.op_id))
    record = target.after or target.before
    if record is None:
        raise MemoryStoreError(f"op {target.op_id} ({target.op.event}) changed nothing; there is nothing to undo")
    if not request.scope.contains(record.scope):
        raise ScopeViolationError(str(record.id), f"is not inside scope {request.scope}")
    history = txn.entries_for(record.id)
    if any(e.undo_of == target.op_id for e in history):
        raise ConflictError(str(record.id), f"op {target.op_id} was already undone")
    if target.op_id not in (history[-1].op_id, effective_top(history)):
        raise ConflictError(str(record.id), f"changed after op {target.op_id}; undo the later ops first (newest first)")
    current = txn.current(record.id)
    entry = revert(target, current or txn.latest(record.id), request)
    return txn.insert(entry)


def effective_top(history: list[JournalEntry]) -> UUID | None:
    """The newest op of a record's history that is not cancelled by a later undo of it."""
    stack: list[UUID] = []
    for entry in history:
        if entry.undo_of is not None and stack and stack[-1] == entry.undo_of:
            stack.pop()
        else:
            stack.append(entry.op_id)
    return stack[-1] if stack else None


def revert(target: JournalEntry, latest: MemoryRecord | None, request: UndoRequest) -> JournalEntry:
    """The entry that makes the record read as it did before `target`, continuing from its `latest` version."""
    now = request.at
    record = target.after or target.before
    assert record is not None
    entry = JournalEntry(
        batch_id=uuid4(), at=now, actor=request.actor, scope=record.scope, op=NoopOp(), undo_of=target.op_id
    )
    current = latest if latest is not None and latest.is_current else None
    if target.before is None:  # an ADD: close what is open now
        if current is None:
            raise ConflictError(str(record.id), "is not current; nothing to close")
        return entry.model_copy(update={"op": DeleteOp(record_id=record.id), "before": close(current, now)})
    previous = target.before
    base = latest or previous  # an UPDATE revises its newest version; a DELETE reopens the closed one
    restored = revise(base, previous.text, previous.source, now).model_copy(update={"metadata": previous.metadata})
    update: dict[str, object] = {
        "op": UpdateOp(record_id=base.id, text=previous.text, metadata=previous.metadata),
        "after": restored,
    }
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
        case AddOp() if op.record_id is not None:
            return f"record {op.record_id}"
        case AddOp():
            return f"text {text_hash(op.text)[:12]}" if op.dedupe else None
        case UpdateOp() | DeleteOp():
            return f"record {op.record_id}"
        case NoopOp():
            return None
        case LinkOp() | UnlinkOp():
            return f"link {op.relation} {op.source} {op.target}"
