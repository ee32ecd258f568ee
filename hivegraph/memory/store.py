"""`MemoryStore`: versioned, scoped memory with a journal as the source of truth.

Write path: a batch of ops is planned and appended inside one exclusive
journal transaction (`Journal.submit`): an op that names an unknown record, a
record outside the scope, a version that is no longer current, or a value that
cannot be stored is refused and reported, never applied half-way. Once the
batch is in the journal it is acknowledged; the projections (vector index,
keyword index) then apply it idempotently under a lock per projection and
advance their cursor. If a projection cannot be reached the write still
succeeds (it is journaled; a retry would duplicate it) and the projection
catches up on the next read or write.

Reads of records, history and points in time come from the journal; searches
go through the projections, caught up first, and never leave the scope asked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from hivegraph.errors import BackendUnavailableError, MemoryStoreError
from hivegraph.memory.codec import SCOPE_PREFIX, micros
from hivegraph.memory.exact import ExactVectors
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal import Batch, Journal, JournalEntry, RefusedOp, StoredVersion, UndoRequest
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.projection import Projection
from hivegraph.memory.sources import ALL_KINDS, SearchQuery, VectorSource
from hivegraph.memory.stores.base import VectorSpace
from hivegraph.memory.types import (
    AddOp,
    MemoryKind,
    MemoryOp,
    MemoryRecord,
    NoopOp,
    Scope,
    Source,
    ensure_scope,
    text_hash,
    utcnow,
)
from hivegraph.memory.validation import aware
from hivegraph.memory.vector_projection import VectorProjection
from hivegraph.memory.verify import Divergence, VerifyReport, verify_projection

__all__ = ["ApplyResult", "MemoryStore", "RecordHistory", "RefusedOp"]

log = logging.getLogger(__name__)


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
        space: VectorSpace,
        *,
        journal: Journal | None = None,
        projections: Sequence[Projection] = (),
        max_text_chars: int = 2000,
        tenant_key: str | None = "user_id",
        exact: ExactVectors | None = None,
    ) -> None:
        """Keep records in `journal`, their vectors in `space` (one live collection per `tenant_key` value).

        Args:
            space: The vector collections (Chroma, or the in-memory reference).
            journal: The source of truth (default: an in-memory journal).
            projections: Further projections of the journal (the graph, say).
            max_text_chars: Longest text a record may have.
            tenant_key: The scope field that picks a version's live collection (None: one collection).
            exact: Copies of small collections searched in-process (default: `ExactVectors()`).

        """
        self.space = space
        self.journal: Journal = journal or InMemoryJournal()
        self.vectors = VectorProjection(space, tenant_key=tenant_key, exact=exact)
        self.projections: list[Projection] = [self.vectors, *projections]
        for projection in projections:
            projection.attach(self.journal)
        self.max_text_chars = max_text_chars
        self.lagging: str | None = None
        """Why a projection is behind the journal after the last write (None when it is not)."""
        self._volatile_cursors: dict[str, int] = {}
        """Cursors of projections that do not persist (they start from 0 in each process)."""
        self._local_locks: dict[str, asyncio.Lock] = {}
        self._reads = ReadCache()
        self._applied: dict[str, int] = {}
        """The cursor of each projection as this process last saw or set it (a hint: the journal's is the truth)."""

    async def open(self) -> MemoryStore:
        """Bring every projection up to date with the journal, repairing one that disagrees; returns self.

        A projection that keeps a mark of what it has applied (the vector index does) is caught up from
        that mark when it is behind the journal's cursor (an index restored from an older copy, a rebuild
        cut short), without reading the index. One that keeps none, or whose mark is lost or ahead of the
        journal, is checked by its counts and repaired from the journal when they disagree. Each check and
        repair runs under the projection's lock, so a repair never writes an older state over what another
        process projected meanwhile. `verify` compares everything, item by item.
        """
        for projection in self.projections:
            async with self._projection_lock(projection):
                if projection.persistent:
                    await self._reconcile_locked(projection)
                else:
                    await self._catch_up_locked(projection)
        self.lagging = None
        return self

    async def _reconcile_locked(self, projection: Projection) -> None:
        cursor = await self.journal.cursor(projection.name)
        mark = await projection.applied()
        if mark is not None and mark <= await self.journal.last_seq():
            if mark < cursor:
                log.warning("projection %s holds entries up to %d of %d; replaying the rest", projection.name,
                            mark, cursor)  # fmt: skip
                await self._advance(projection, mark)
            await self._catch_up_locked(projection)
            return
        if cursor and await projection.is_empty():
            await self._advance(projection, 0)  # the index was wiped: re-derive it
        await self._catch_up_locked(projection)
        if not await self._counts_agree(projection):
            log.warning("projection %s disagrees with the journal; repairing it", projection.name)
            await self._verify_locked(projection, repair=True, remove_extra=False)
        await projection.mark_applied(self._applied[projection.name])

    async def _counts_agree(self, projection: Projection) -> bool:
        return await projection.counts() == await self.journal.counts(kinds=projection.kinds)

    async def catch_up(self) -> int:
        """Apply journal entries the projections have not seen; returns how many were replayed.

        One query answers the common case (nothing new since this process last looked); only a
        projection that may be behind is locked and read.
        """
        last = await self.journal.last_seq()
        self._reads.seen(last)
        replayed = 0
        for projection in self.projections:
            if self._applied.get(projection.name, -1) >= last:
                continue
            async with self._projection_lock(projection):
                replayed = max(replayed, await self._catch_up_locked(projection))
        self.lagging = None
        return replayed

    async def versions(self, version_ids: Sequence[str]) -> dict[str, StoredVersion]:
        """`Journal.versions`, answered from this process's cache while the journal has not moved on."""
        cached, missing = self._reads.versions(version_ids)
        if missing:
            found = await self.journal.versions(missing)
            self._reads.keep_versions(found)
            cached.update(found)
        return cached

    async def kinds(self, scope: Scope, kinds: Sequence[MemoryKind] | None) -> list[str]:
        """The kinds of the current versions in `scope` (of `kinds`), cached like `versions`."""
        key = (tuple(sorted(scope.fields().items())), tuple(kinds) if kinds else None)
        held = self._reads.kinds.get(key)
        if held is None:
            held = self._reads.kinds[key] = await self.journal.facet_values("kind", scope=scope, kinds=kinds)
        return held

    async def _catch_up_locked(self, projection: Projection) -> int:
        start = await self._cursor(projection)
        seen = self._applied.get(projection.name)
        if seen is not None and start > seen:  # another process projected entries: what we cache may be stale
            projection.invalidate()
        entries = await self.journal.read(after=start)
        if entries:
            await projection.project(entries)
            if projection.persistent:
                await projection.mark_applied(entries[-1].seq)
            await self._advance(projection, entries[-1].seq)
        else:
            self._applied[projection.name] = start  # read under the lock: exact
        return len(entries)

    async def rebuild(self) -> int:
        """Re-derive every projection from the journal (re-creating each from nothing); returns the entries replayed."""
        for projection in self.projections:
            async with self._projection_lock(projection):
                await projection.reset()
                await self._advance(projection, 0)
        return await self.catch_up()

    async def verify(self, *, repair: bool = False, only: str | None = None, remove_extra: bool = True) -> VerifyReport:
        """Compare the journal's versions with every projection (or `only` one); `repair` re-derives what differs.

        Each projection is compared under its lock with the journal as read inside that lock.

        Args:
            repair: Write what is missing or stale, and (with `remove_extra`) drop what the journal does not hold.
            only: The name of the one projection to check.
            remove_extra: Whether a repair drops items the journal does not hold (an index shared by mistake
                with another journal holds that journal's items: `open` keeps them and only reports them).

        """
        report = VerifyReport(unreadable=await self.journal.unreadable(), repaired=repair)
        for projection in self.projections:
            if only is None or projection.name == only:
                async with self._projection_lock(projection):
                    report.divergences += await self._verify_locked(
                        projection, repair=repair, remove_extra=remove_extra
                    )
        return report

    async def _verify_locked(self, projection: Projection, *, repair: bool, remove_extra: bool) -> list[Divergence]:
        seq = await self.journal.last_seq()  # first: the versions read next are at least as new
        versions = await self.journal.records(scope=Scope(), all_versions=True)
        return await verify_projection(projection, versions, repair=repair, remove_extra=remove_extra, seq=seq)

    @asynccontextmanager
    async def _projection_lock(self, projection: Projection) -> AsyncGenerator[None]:
        if projection.persistent:
            async with self.journal.projection_lock(projection.name):
                yield
        else:
            async with self._local_locks.setdefault(projection.name, asyncio.Lock()):
                yield

    async def _cursor(self, projection: Projection) -> int:
        if not projection.persistent:
            return self._volatile_cursors.get(projection.name, 0)
        return await self.journal.cursor(projection.name)

    async def _advance(self, projection: Projection, seq: int) -> None:
        if projection.persistent:
            await self.journal.advance(projection.name, seq)
        else:
            self._volatile_cursors[projection.name] = seq
        self._applied[projection.name] = seq

    async def search(
        self,
        query: str,
        *,
        scope: Scope,
        k: int = 5,
        kinds: Sequence[MemoryKind] | None = None,
        as_of: datetime | None = None,
    ) -> list[MemoryHit]:
        """The `k` records in `scope` nearest to `query` by vector, closest first: current, or valid at `as_of`.

        Scores are cosine similarities. Hybrid retrieval (vector and keyword, fused) is `Retriever.retrieve`.

        Raises:
            InvalidInputError: `scope` is not a Scope, or `as_of` is naive.

        """
        scope = ensure_scope(scope)
        at = micros(aware(as_of, "as_of")) if as_of is not None else None
        await self.catch_up()
        search = SearchQuery(text=query, scope=scope, kinds=tuple(kinds) if kinds else None,
                             embed=self.space.embed_query)  # fmt: skip
        if at is None:
            found = await VectorSource(self.vectors, self.kinds).search(search, k=k)
        else:
            found = await self._search_at(search, at, k)
        versions = await self.versions([hit.id for hit in found])
        return [
            hit.with_record(v.record)
            for hit in found
            if (v := versions.get(hit.id)) is not None
            and scope.contains(v.record.scope)
            and (v.record.is_current if at is None else _valid_at(v.record, at))
        ]

    async def _search_at(self, search: SearchQuery, at: int, k: int) -> list[MemoryHit]:
        """Versions valid at `at`: closed ones from history, still-current ones from the live collections."""
        vector = search.vector()
        kinds: dict[str, Any] = {"kind": {"$in": list(search.kinds)}} if search.kinds else {}
        live = await self.vectors.live(search.scope, search.kinds or ALL_KINDS)
        scope_where = {f"{SCOPE_PREFIX}{n}": v for n, v in search.scope.fields().items()}
        closed = {**scope_where, **kinds, "valid_from": {"$lte": at}, "valid_to": {"$gte": at + 1}}
        queries = [self.vectors.history().nearest(vector, k=k, where=closed)]
        for _, index, where in live:
            queries.append(index.nearest(vector, k=k, where={**where, "valid_from": {"$lte": at}}))
        found = [pair for pairs in await asyncio.gather(*queries) for pair in pairs]
        best = sorted(found, key=lambda pair: (-pair[1], pair[0]))[:k]
        return [MemoryHit(id=version_id, score=score) for version_id, score in best]

    async def get(self, record_id: UUID, *, scope: Scope, as_of: datetime | None = None) -> MemoryRecord | None:
        """The current version of a record (or the one valid at `as_of`), if it is inside `scope`."""
        as_of = aware(as_of, "as_of") if as_of is not None else None
        found = await self.journal.records(scope=ensure_scope(scope), record_ids=[record_id], as_of=as_of)
        return found[0] if found else None

    async def list(
        self, *, scope: Scope, kinds: Sequence[MemoryKind] | None = None, as_of: datetime | None = None
    ) -> list[MemoryRecord]:
        """Every current record in `scope` (or every one valid at `as_of`), oldest first."""
        as_of = aware(as_of, "as_of") if as_of is not None else None
        return await self.journal.records(scope=ensure_scope(scope), kinds=kinds, as_of=as_of)

    async def history(self, record_id: UUID, *, scope: Scope) -> RecordHistory:
        """Every version of a record inside `scope` and the journaled ops that made them, oldest first."""
        versions = await self.journal.records(scope=ensure_scope(scope), record_ids=[record_id], all_versions=True)
        entries = await self.journal.entries_for(record_id) if versions else []
        return RecordHistory(versions=versions, entries=entries)

    async def find_duplicate(self, text: str, *, scope: Scope, kind: MemoryKind = "semantic") -> MemoryRecord | None:
        """A current record in exactly `scope` whose text equals `text` up to case and spacing."""
        scope = ensure_scope(scope)
        found = await self.journal.records(scope=scope, kinds=[kind], text_hash=text_hash(text))
        return next((r for r in found if r.scope == scope), None)

    async def claim_run(self, run_id: str, *, scope: Scope, create: bool = True) -> bool:
        """Bind a run id to `scope` (a run's turns, checkpoints and keys are that scope's alone).

        Returns:
            True when `scope` owns the run id; False when nobody does and `create` is False.

        Raises:
            KeyScopeError: another scope owns it (which one is not said).

        """
        return await self.journal.claim(f"run:{run_id}", ensure_scope(scope), create=create)

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
        if existing is None:  # deleted between the write and this read
            raise MemoryStoreError(f"record {entry.op.record_id} was deleted concurrently")
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
        """Plan and journal `ops` in one exclusive transaction, then update the indexes.

        With an `idempotency_key`, the n-th op gets an op id derived from the key,
        and an op already journaled under that id is returned, not applied again:
        a step that is replayed (a resumed run) writes nothing twice. The key
        belongs to the scope that first used it.

        Raises:
            KeyScopeError: `idempotency_key` belongs to another scope.
            InvalidInputError: `scope` is not a Scope, or `now` is naive.

        """
        batch = Batch(
            ops=list(ops), scope=ensure_scope(scope), actor=actor, source=source or Source(),
            at=aware(now, "now") if now is not None else utcnow(), idempotency_key=idempotency_key,
            max_text_chars=self.max_text_chars,
        )  # fmt: skip
        if not batch.ops:
            return ApplyResult()
        result = await self.journal.submit(batch)
        await self._settle()
        return ApplyResult(applied=result.applied, refused=result.refused)

    async def undo(self, op_id: UUID, *, scope: Scope, actor: str = "user") -> JournalEntry:
        """Revert one op; the revert is itself journaled (with `undo_of`) and can be undone.

        Raises:
            OpNotFoundError: no op has that id.
            ConflictError: the op was undone already, or a later op (not undone) changed its record.
            MemoryStoreError: the op changed nothing.
            ScopeViolationError: the op's record is outside `scope`.

        """
        stored = await self.journal.undo(UndoRequest(op_id=op_id, scope=ensure_scope(scope), actor=actor))
        await self._settle()
        return stored

    async def _settle(self) -> None:
        """Catch the projections up after an acknowledged write; a projection that fails will catch up later."""
        try:
            await self.catch_up()
        except (BackendUnavailableError, MemoryStoreError) as exc:
            self.lagging = str(exc)
            log.warning("journaled, but an index is behind (it catches up on the next call): %s", exc)

    async def aclose(self) -> None:
        """Close the projections' own backends, the journal and the vector space."""
        try:
            for projection in self.projections:
                await projection.aclose()
        finally:
            await self.journal.aclose()
            await self.space.aclose()


class ReadCache:
    """Versions and scope kinds this process has read, kept while the journal has not moved on.

    Every change to the journal appends an entry, so while its last sequence number is the one
    `catch_up` saw when these were read, they are still what the journal holds. Any newer entry
    (from any process) empties the cache at the next `catch_up`.
    """

    def __init__(self, *, size: int = 20_000) -> None:
        self.size = size
        self._seq: int | None = None
        self._versions: OrderedDict[str, StoredVersion] = OrderedDict()
        self.kinds: dict[tuple[tuple[tuple[str, str], ...], tuple[str, ...] | None], list[str]] = {}

    def seen(self, seq: int) -> None:
        """The journal's last sequence number now; anything read before a newer entry is dropped."""
        if seq != self._seq:
            self._seq = seq
            self._versions.clear()
            self.kinds.clear()

    def versions(self, version_ids: Sequence[str]) -> tuple[dict[str, StoredVersion], list[str]]:
        """The cached versions among `version_ids`, and the ids to read."""
        found: dict[str, StoredVersion] = {}
        missing: list[str] = []
        for version_id in version_ids:
            stored = self._versions.get(version_id)
            if stored is None:
                missing.append(version_id)
            else:
                found[version_id] = stored
                self._versions.move_to_end(version_id)
        return found, missing

    def keep_versions(self, found: dict[str, StoredVersion]) -> None:
        """Remember versions just read (the oldest are forgotten past `size`)."""
        self._versions.update(found)
        while len(self._versions) > self.size:
            self._versions.popitem(last=False)


def _valid_at(record: MemoryRecord, at: int) -> bool:
    return micros(record.valid_from) <= at and (record.valid_to is None or micros(record.valid_to) > at)
