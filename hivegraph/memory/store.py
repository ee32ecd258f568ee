"""`MemoryStore`: versioned memory records over a vector index.

Every read is confined to a `Scope`. Ops are checked before anything changes:
an op that names an unknown record, a record outside the scope, or text that
is too long is refused and reported, never applied half-way. UPDATE and
DELETE close the current version (`valid_to`) and keep it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from hivegraph.errors import MemoryStoreError, RecordNotFoundError, ScopeViolationError
from hivegraph.memory.codec import from_item, scope_filter, to_item
from hivegraph.memory.stores.base import IndexItem, VectorIndex
from hivegraph.memory.types import (
    AddOp,
    AppliedOp,
    DeleteOp,
    MemoryKind,
    MemoryOp,
    MemoryRecord,
    NoopOp,
    ScoredRecord,
    Scope,
    Source,
    UpdateOp,
    text_hash,
    utcnow,
)


class RefusedOp(BaseModel):
    """An op that was not applied, and why."""

    op: MemoryOp
    reason: str


@dataclass
class ApplyResult:
    """What `MemoryStore.apply` did."""

    applied: list[AppliedOp] = field(default_factory=list[AppliedOp])
    refused: list[RefusedOp] = field(default_factory=list[RefusedOp])


class MemoryStore:
    """Versioned, scoped memory records kept in a `VectorIndex`."""

    def __init__(self, index: VectorIndex, *, max_text_chars: int = 2000) -> None:
        self.index = index
        self.max_text_chars = max_text_chars

    async def search(
        self,
        query: str,
        *,
        scope: Scope,
        k: int = 5,
        kinds: Sequence[MemoryKind] | None = None,
    ) -> list[ScoredRecord]:
        """The `k` current records in `scope` nearest to `query`, closest first."""
        where = scope_filter(scope, kinds=tuple(kinds) if kinds else None)
        hits = await self.index.query(query, k=k, where=where)
        return [ScoredRecord(record=from_item(IndexItem(h.id, h.text, h.metadata)), score=h.score) for h in hits]

    async def get(self, record_id: UUID, *, scope: Scope) -> MemoryRecord | None:
        """The current version of a record, if it exists inside `scope`."""
        items = await self.index.get(where=scope_filter(scope, extra={"record_id": str(record_id)}))
        return from_item(items[0]) if items else None

    async def list(self, *, scope: Scope, kinds: Sequence[MemoryKind] | None = None) -> list[MemoryRecord]:
        """Every current record in `scope`, oldest first."""
        items = await self.index.get(where=scope_filter(scope, kinds=tuple(kinds) if kinds else None))
        return sorted((from_item(i) for i in items), key=lambda r: (r.created_at, str(r.id)))

    async def history(self, record_id: UUID, *, scope: Scope) -> list[MemoryRecord]:
        """Every version of a record inside `scope`, oldest first."""
        items = await self.index.get(where=scope_filter(scope, current=None, extra={"record_id": str(record_id)}))
        return sorted((from_item(i) for i in items), key=lambda r: r.version)

    async def add(
        self,
        text: str,
        *,
        scope: Scope,
        kind: MemoryKind = "semantic",
        actor: str = "user",
        source: Source | None = None,
    ) -> MemoryRecord:
        """Store one new memory and return it (an exact duplicate returns the existing one).

        Raises:
            MemoryStoreError: the text is empty or too long.
        """
        result = await self.apply([AddOp(text=text, kind=kind)], scope=scope, actor=actor, source=source)
        if result.refused:
            raise MemoryStoreError(result.refused[0].reason)
        applied = result.applied[0]
        record = applied.after or await self.get(_noop_target(applied.op), scope=scope)
        assert record is not None
        return record

    async def apply(
        self,
        ops: Sequence[MemoryOp],
        *,
        scope: Scope,
        actor: str,
        source: Source | None = None,
        now: datetime | None = None,
    ) -> ApplyResult:
        """Check every op, then write the ones that may be applied in one index batch."""
        now = now or utcnow()
        result = ApplyResult()
        writes: list[IndexItem] = []
        seen: set[str] = set()
        for op in ops:
            key = _batch_key(op)
            if key is not None and key in seen:
                result.refused.append(RefusedOp(op=op, reason=f"{key} is already changed by this batch"))
                continue
            try:
                applied = await self._plan(op, scope=scope, actor=actor, source=source or Source(), now=now)
            except MemoryStoreError as exc:
                result.refused.append(RefusedOp(op=op, reason=str(exc)))
                continue
            result.applied.append(applied)
            seen.update(k for k in (key,) if k is not None)
            writes += [to_item(r) for r in (applied.before, applied.after) if r is not None and _changed(applied)]
        await self.index.upsert(writes)
        return result

    async def _plan(self, op: MemoryOp, *, scope: Scope, actor: str, source: Source, now: datetime) -> AppliedOp:
        match op:
            case AddOp():
                self._check_text(op.text)
                dup = await self.find_duplicate(op.text, scope=scope, kind=op.kind)
                if dup is not None:
                    return AppliedOp(op=NoopOp(record_id=dup.id), scope=scope, actor=actor, at=now)
                record = MemoryRecord(
                    kind=op.kind, text=op.text, metadata=op.metadata, scope=scope, source=source,
                    created_at=now, updated_at=now, valid_from=now,
                )  # fmt: skip
                return AppliedOp(op=op, scope=scope, actor=actor, at=now, after=record)
            case UpdateOp():
                self._check_text(op.text)
                before = await self._current(op.record_id, scope)
                after = before.model_copy(
                    update={"text": op.text, "hash": text_hash(op.text), "version": before.version + 1,
                            "updated_at": now, "valid_from": now, "source": source}
                )  # fmt: skip
                closed = before.model_copy(update={"valid_to": now})
                return AppliedOp(op=op, scope=scope, actor=actor, at=now, before=closed, after=after)
            case DeleteOp():
                before = await self._current(op.record_id, scope)
                closed = before.model_copy(update={"valid_to": now})
                return AppliedOp(op=op, scope=scope, actor=actor, at=now, before=closed)
            case NoopOp():
                if op.record_id is not None:
                    await self._current(op.record_id, scope)
                return AppliedOp(op=op, scope=scope, actor=actor, at=now)

    async def _current(self, record_id: UUID, scope: Scope) -> MemoryRecord:
        items = await self.index.get(where=scope_filter(Scope(), extra={"record_id": str(record_id)}))
        if not items:
            raise RecordNotFoundError(str(record_id))
        record = from_item(items[0])
        if not scope.contains(record.scope):
            raise ScopeViolationError(str(record_id), f"belongs to scope {record.scope}, not inside {scope}")
        return record

    async def find_duplicate(
        self, text: str, *, scope: Scope, kind: MemoryKind = "semantic"
    ) -> MemoryRecord | None:
        """A current record in `scope` whose text equals `text` up to case and spacing."""
        where = scope_filter(scope, kinds=(kind,), extra={"hash": text_hash(text)})
        items = await self.index.get(where=where)
        return from_item(items[0]) if items else None

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise MemoryStoreError("memory text is empty")
        if len(text) > self.max_text_chars:
            raise MemoryStoreError(
                f"memory text is {len(text)} characters, over the limit of {self.max_text_chars}"
            )


def _changed(applied: AppliedOp) -> bool:
    return not isinstance(applied.op, NoopOp)


def _batch_key(op: MemoryOp) -> str | None:
    """What an op changes, so one batch never changes the same thing twice."""
    match op:
        case AddOp():
            return f"text {text_hash(op.text)[:12]}"
        case UpdateOp() | DeleteOp():
            return f"record {op.record_id}"
        case NoopOp():
            return None


def _noop_target(op: MemoryOp) -> UUID:
    assert isinstance(op, NoopOp) and op.record_id is not None
    return op.record_id
