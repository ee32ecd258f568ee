"""`MemoryStore`: versioned, scoped memory with a journal as the source of truth.

Write path: ops are checked against the journal's current state (an op that
names an unknown record, a record outside the scope, or text that is empty or
too long is refused and reported, never applied half-way), the accepted ops
are appended to the journal in one transaction (from then on they are
acknowledged), and the projections (vector index, keyword index) apply them
idempotently and advance their cursor. `open()` replays whatever a projection
has not seen, so a crash between journal and index loses nothing.

Reads of records, history and points in time come from the journal; searches
go through the projections and never leave the scope asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from pydantic import BaseModel

from hivegraph.errors import MemoryStoreError, OpNotFoundError
from hivegraph.memory.codec import from_item, scope_filter
from hivegraph.memory.journal import Journal, JournalEntry
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.planner import OpPlanner, batch_key, plan_undo
from hivegraph.memory.projection import Projection, VectorProjection
from hivegraph.memory.stores.base import IndexItem, VectorIndex
from hivegraph.memory.types import (
    AddOp,
    MemoryKind,
    MemoryOp,
    MemoryRecord,
    NoopOp,
    Scope,
    ScoredRecord,
    Source,
    utcnow,
)

VALID_TO_EPSILON = 1e-6
"""Seconds added to `as_of` so a version closed exactly then no longer counts (`valid_to` is exclusive)."""


def derived_op_id(key: str, n: int) -> UUID:
    """The op id of the n-th op of an idempotent batch."""
    return uuid5(NAMESPACE_URL, f"hivegraph:op:{key}:{n}")


class RefusedOp(BaseModel):
    """An op that was not applied, and why."""

    op: MemoryOp
    reason: str


@dataclass
class ApplyResult:
    """What `MemoryStore.apply` did: journal entries of the applied ops, and the refusals."""

    applied: list[JournalEntry] = field(default_factory=list[JournalEntry])
    refused: list[RefusedOp] = field(default_factory=list[RefusedOp])


@dataclass
class RecordHistory:
    """The versions of one record and the ops that made them."""

    versions: list[MemoryRecord]
    entries: list[JournalEntry]


class MemoryStore:
    """Versioned, scoped memory records: journal first, then the derived indexes."""

    def __init__(
        self,
        index: VectorIndex,
        *,
        journal: Journal | None = None,
        projections: Sequence[Projection] = (),
        max_text_chars: int = 2000,
    ) -> None:
        self.index = index
        self.journal: Journal = journal or SqliteJournal(":memory:")
        self.projections: list[Projection] = [VectorProjection(index), *projections]
        self.planner = OpPlanner(self.journal, max_text_chars=max_text_chars)
        self._volatile_cursors: dict[str, int] = {}
        """Cursors of projections that do not persist (they start from 0 in each process)."""

    async def open(self) -> MemoryStore:
        """Bring every projection up to date with the journal (re-deriving a wiped one); returns self."""
        for projection in self.projections:
            if projection.persistent and await self.journal.cursor(projection.name) and await projection.is_empty():
                await self._advance(projection, 0)  # the index was wiped: re-derive it
        await self.catch_up()
        return self

    async def catch_up(self) -> int:
        """Apply journal entries the projections have not seen; returns how many were replayed."""
        replayed = 0
        for projection in self.projections:
            start = await self._cursor(projection)
            entries = await self.journal.read(after=start)
            if entries:
                await projection.project(entries)
                await self._advance(projection, entries[-1].seq)
                replayed = max(replayed, len(entries))
        return replayed

    async def rebuild(self) -> int:
        """Re-derive every projection from the journal; returns the entries replayed."""
        for projection in self.projections:
            await projection.reset()
            await self._advance(projection, 0)
        return await self.catch_up()

    async def _cursor(self, projection: Projection) -> int:
        if not projection.persistent:
            return self._volatile_cursors.get(projection.name, 0)
        return await self.journal.cursor(projection.name)

    async def _advance(self, projection: Projection, seq: int) -> None:
        if projection.persistent:
            await self.journal.advance(projection.name, seq)
        else:
            self._volatile_cursors[projection.name] = seq

    async def search(
        self,
        query: str,
        *,
        scope: Scope,
        k: int = 5,
        kinds: Sequence[MemoryKind] | None = None,
        as_of: datetime | None = None,
    ) -> list[ScoredRecord]:
        """The `k` records in `scope` nearest to `query`, closest first: current ones, or those valid at `as_of`."""
        kinds_tuple = tuple(kinds) if kinds else None
        if as_of is None:
            where = scope_filter(scope, kinds=kinds_tuple)
        else:
            at = as_of.timestamp()
            valid = {"valid_from": {"$lte": at}, "valid_to": {"$gte": at + VALID_TO_EPSILON}}
            where = scope_filter(scope, current=None, kinds=kinds_tuple, extra=valid)
        hits = await self.index.query(query, k=k, where=where)
        return [ScoredRecord(record=from_item(IndexItem(h.id, h.text, h.metadata)), score=h.score) for h in hits]

    async def get(self, record_id: UUID, *, scope: Scope, as_of: datetime | None = None) -> MemoryRecord | None:
        """The current version of a record (or the one valid at `as_of`), if it is inside `scope`."""
        found = await self.journal.records(scope=scope, record_ids=[record_id], as_of=as_of)
        return found[0] if found else None

    async def list(
        self, *, scope: Scope, kinds: Sequence[MemoryKind] | None = None, as_of: datetime | None = None
    ) -> list[MemoryRecord]:
        """Every current record in `scope` (or every one valid at `as_of`), oldest first."""
        return await self.journal.records(scope=scope, kinds=kinds, as_of=as_of)

    async def history(self, record_id: UUID, *, scope: Scope) -> RecordHistory:
        """Every version of a record inside `scope` and the journaled ops that made them, oldest first."""
        versions = await self.journal.records(scope=scope, record_ids=[record_id], all_versions=True)
        entries = await self.journal.entries_for(record_id) if versions else []
        return RecordHistory(versions=versions, entries=entries)

    async def find_duplicate(self, text: str, *, scope: Scope, kind: MemoryKind = "semantic") -> MemoryRecord | None:
        """A current record in `scope` whose text equals `text` up to case and spacing."""
        return await self.planner.duplicate(text, scope=scope, kind=kind)

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
        entry = result.applied[0]
        if entry.after is not None:
            return entry.after
        assert isinstance(entry.op, NoopOp) and entry.op.record_id is not None
        existing = await self.get(entry.op.record_id, scope=scope)
        assert existing is not None
        return existing

    async def apply(
        self,
        ops: Sequence[MemoryOp],
        *,
        scope: Scope,
        actor: str,
        source: Source | None = None,
        now: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> ApplyResult:
        """Check every op, journal the accepted ones in one transaction, then update the indexes.

        With an `idempotency_key`, the n-th op gets an op id derived from the key,
        and an op already journaled under that id is returned, not applied again:
        a step that is replayed (a resumed run) writes nothing twice.
        """
        now = now or utcnow()
        batch_id = uuid4()
        result = ApplyResult()
        planned: list[JournalEntry] = []
        seen: set[str] = set()
        for n, op in enumerate(ops):
            op_id = derived_op_id(idempotency_key, n) if idempotency_key is not None else uuid4()
            if idempotency_key is not None and (done := await self.journal.entry(op_id)) is not None:
                result.applied.append(done)
                continue
            key = batch_key(op)
            if key is not None and key in seen:
                result.refused.append(RefusedOp(op=op, reason=f"{key} is already changed by this batch"))
                continue
            try:
                entry = await self.planner.plan(op, scope=scope, source=source or Source(), now=now)
            except MemoryStoreError as exc:
                result.refused.append(RefusedOp(op=op, reason=str(exc)))
                continue
            planned.append(entry.model_copy(update={"op_id": op_id, "batch_id": batch_id, "actor": actor}))
            seen.update(k for k in (key,) if k is not None)
        result.applied += await self.commit(planned)
        return result

    async def commit(self, entries: Sequence[JournalEntry]) -> list[JournalEntry]:
        """Journal `entries` (acknowledging them), then project them."""
        if not entries:
            return []
        stored = await self.journal.append(entries)
        await self.catch_up()
        return stored

    async def undo(self, op_id: UUID, *, scope: Scope, actor: str = "user") -> JournalEntry:
        """Revert one op; the revert is itself journaled (with `undo_of`) and can be undone.

        Raises:
            OpNotFoundError: no op has that id.
            MemoryStoreError: the op changed nothing, was undone already, or a later op changed its record.
            ScopeViolationError: the op's record is outside `scope`.

        """
        target = await self.journal.entry(op_id)
        if target is None:
            raise OpNotFoundError(str(op_id))
        entry = await plan_undo(self.journal, target, scope=scope, now=utcnow())
        (stored,) = await self.commit([entry.model_copy(update={"batch_id": uuid4(), "actor": actor})])
        return stored

    async def aclose(self) -> None:
        """Close the journal and the index."""
        await self.journal.aclose()
        await self.index.aclose()
