"""`InMemoryJournal`: the reference journal, in plain Python structures of this process.

It defines what every journal does (the conformance suite in
`hivegraph.memory.journal_conformance` runs against it and the SQL journals):
a write transaction holds a lock, works on the live structures and restores
a snapshot if planning fails, so a batch is all or nothing.

The read-path queries are computed from the current versions on each call, as
plainly as possible: keyword search is Okapi BM25 (`journal_codec.bm25_rank`,
the scoring every journal shares) with its statistics over every current
version of every scope; a filter only decides which versions are scored.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Literal, Self, TypeVar
from uuid import UUID

from hivegraph.config import HivegraphSettings
from hivegraph.errors import ConflictError
from hivegraph.memory.journal import (
    Batch,
    BatchResult,
    Journal,
    JournalEntry,
    StoredVersion,
    TurnKey,
    UndoRequest,
    Unreadable,
)
from hivegraph.memory.journal_codec import (
    TextStats,
    bm25_rank,
    event_columns,
    event_order,
    index_terms,
    micros,
    parse_version_id,
)
from hivegraph.memory.planner import apply_batch, apply_undo, claim_key
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import SEARCHED_KINDS, MemoryKind, MemoryRecord, Scope, utcnow
from hivegraph.models.tokens import FALLBACK_ENCODING, TokenCounter

R = TypeVar("R")


@dataclass
class _State:
    entries: list[JournalEntry] = field(default_factory=list[JournalEntry])
    by_op: dict[UUID, JournalEntry] = field(default_factory=dict[UUID, JournalEntry])
    versions: dict[tuple[UUID, int], MemoryRecord] = field(default_factory=dict[tuple[UUID, int], MemoryRecord])
    open: dict[UUID, int] = field(default_factory=dict[UUID, int])
    keys: dict[str, Scope] = field(default_factory=dict[str, Scope])

    def snapshot(self) -> _State:
        return replace(
            self, entries=list(self.entries), by_op=dict(self.by_op), versions=dict(self.versions),
            open=dict(self.open), keys=dict(self.keys),
        )  # fmt: skip


class _Txn:
    def __init__(self, state: _State) -> None:
        self.state = state

    def current(self, record_id: UUID) -> MemoryRecord | None:
        version = self.state.open.get(record_id)
        return self.state.versions[(record_id, version)] if version is not None else None

    def latest(self, record_id: UUID) -> MemoryRecord | None:
        found = [v for (rid, _), v in self.state.versions.items() if rid == record_id]
        return max(found, key=lambda v: v.version) if found else None

    def duplicate(self, scope: Scope, kind: MemoryKind, hash_: str) -> MemoryRecord | None:
        for record_id, version in self.state.open.items():
            record = self.state.versions[(record_id, version)]
            if record.kind == kind and record.hash == hash_ and record.scope == scope:
                return record
        return None

    def entry(self, op_id: UUID) -> JournalEntry | None:
        return self.state.by_op.get(op_id)

    def entries_for(self, record_id: UUID) -> list[JournalEntry]:
        return [e for e in self.state.entries if (r := e.after or e.before) is not None and r.id == record_id]

    def key_scope(self, key: str) -> Scope | None:
        return self.state.keys.get(key)

    def bind_key(self, key: str, scope: Scope, at: datetime) -> None:
        del at
        self.state.keys[key] = scope

    def insert(self, entry: JournalEntry) -> JournalEntry:
        before, after = entry.before, entry.after
        if before is not None and self.state.open.get(before.id) != before.version:
            raise ConflictError(str(before.id), f"version {before.version} is not open")
        if after is not None and (
            (after.id, after.version) in self.state.versions
            or (after.id in self.state.open and (before is None or before.id != after.id))
        ):
            raise ConflictError(str(after.id), f"version {after.version} exists or another version is open")
        stored = entry.model_copy(update={"seq": len(self.state.entries) + 1})
        self.state.entries.append(stored)
        self.state.by_op[stored.op_id] = stored
        if before is not None:
            self.state.versions[(before.id, before.version)] = before
            del self.state.open[before.id]
        if after is not None:
            self.state.versions[(after.id, after.version)] = after
            self.state.open[after.id] = after.version
        return stored


class InMemoryJournal(Journal):
    """The reference journal: correct, simple, and gone with the process."""

    name = "inmemory"

    def __init__(self, *, token_encoding: str | None = None) -> None:
        """An empty journal counting tokens with `token_encoding` (default `FALLBACK_ENCODING`).

        Raises:
            ConfigError: `token_encoding` is not an encoding that loads offline.

        """
        self._counter = TokenCounter(encoding_name=token_encoding or FALLBACK_ENCODING)
        self.token_encoding = self._counter.encoding_name
        self._token_counts: dict[str, int] = {}
        self._state = _State()
        self._lock = threading.Lock()
        self._cursors: dict[str, int] = {}
        self._projection_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """An empty journal (nothing is configured)."""
        del settings
        return cls()

    def _write(self, fn: Callable[[_Txn], R]) -> R:
        with self._lock:
            saved = self._state.snapshot()
            try:
                return fn(_Txn(self._state))
            except BaseException:
                self._state = saved
                raise

    async def submit(self, batch: Batch) -> BatchResult:
        """Plan `batch` and append what is accepted, all or nothing."""
        return self._write(lambda txn: apply_batch(txn, batch))

    async def undo(self, request: UndoRequest) -> JournalEntry:
        """Plan and append the revert of one op."""
        return self._write(lambda txn: apply_undo(txn, request))

    async def claim(self, key: str, scope: Scope, *, create: bool = True) -> bool:
        """Bind `key` to `scope`; True when `scope` owns it."""

        def run(txn: _Txn) -> bool:
            if not create and txn.key_scope(key) is None:
                return False
            claim_key(txn, key, scope, utcnow(), what=key.split(":", 1)[0])
            return True

        return self._write(run)

    async def read(self, *, after: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Entries with `seq > after`, in order."""
        found = self._state.entries[after:]
        return found[:limit] if limit else found

    async def entry(self, op_id: UUID) -> JournalEntry | None:
        """The entry of one op."""
        return self._state.by_op.get(op_id)

    async def entries_for(self, record_id: UUID) -> list[JournalEntry]:
        """Every entry that touched a record, in order."""
        return _Txn(self._state).entries_for(record_id)

    async def records(
        self,
        *,
        scope: Scope,
        record_ids: Sequence[UUID] | None = None,
        kinds: Sequence[MemoryKind] | None = None,
        text_hash: str | None = None,
        as_of: datetime | None = None,
        all_versions: bool = False,
    ) -> list[MemoryRecord]:
        """Record versions inside `scope`: current ones, those valid at `as_of`, or all."""
        ids = set(record_ids) if record_ids is not None else None

        def keep(r: MemoryRecord) -> bool:
            if as_of is not None:
                at = micros(as_of)
                alive = micros(r.valid_from) <= at and (r.valid_to is None or at < micros(r.valid_to))
            else:
                alive = all_versions or r.is_current
            return (alive and scope.contains(r.scope) and (ids is None or r.id in ids)
                    and (not kinds or r.kind in kinds) and (text_hash is None or r.hash == text_hash))  # fmt: skip

        found = [r for r in self._state.versions.values() if keep(r)]
        return sorted(found, key=lambda r: (micros(r.created_at), str(r.id), r.version))

    async def cursor(self, name: str) -> int:
        """The last `seq` the derived index `name` has applied (0 if none)."""
        return self._cursors.get(name, 0)

    async def advance(self, name: str, seq: int) -> None:
        """Record that the derived index `name` has applied everything up to `seq`."""
        self._cursors[name] = seq

    async def last_seq(self) -> int:
        """The `seq` of the newest entry (0 when empty)."""
        return len(self._state.entries)

    async def counts(self, *, kinds: Sequence[MemoryKind] | None = None) -> tuple[int, int]:
        """How many versions (of `kinds`, or of every kind) the journal holds, and how many of them are current."""
        if kinds is None:
            return len(self._state.versions), len(self._state.open)
        versions = [v for v in self._state.versions.values() if v.kind in kinds]
        return len(versions), sum(1 for v in versions if v.is_current)

    @asynccontextmanager
    async def projection_lock(self, name: str) -> AsyncGenerator[None]:
        """Exclusive within this process (the only one that sees this journal)."""
        async with self._projection_locks.setdefault(name, asyncio.Lock()):
            yield

    async def unreadable(self) -> list[Unreadable]:
        """Nothing: entries are held as parsed objects."""
        return []

    async def versions(self, version_ids: Sequence[str]) -> dict[str, StoredVersion]:
        """The versions with these ids, open or closed; unknown or malformed ids left out."""
        found = ((v, parse_version_id(v)) for v in version_ids)
        records = ((v, self._state.versions.get(key)) for v, key in found if key is not None)
        return {v: self._stored(record) for v, record in records if record is not None}

    async def keyword_search(
        self,
        terms: Sequence[str],
        *,
        scope: Scope,
        kinds: Sequence[MemoryKind] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        k: int = 50,
    ) -> list[tuple[str, float]]:
        """The `k` current versions in `scope` that best match `terms` by BM25, best first."""
        query = index_terms(terms)
        if k <= 0 or not query:
            return []
        docs = [(record, _terms(record.text)) for record in self._current() if record.kind in SEARCHED_KINDS]
        wanted = set(query)
        held = Counter(term for _, words in docs for term in wanted.intersection(words))
        stats = TextStats(docs=len(docs), terms=sum(len(words) for _, words in docs), df=held)
        candidates = (
            (record.version_id, " ".join(words)) for record, words in docs
            if scope.contains(record.scope) and _passes(record, kinds, since_us, until_us)
        )  # fmt: skip
        return bm25_rank(query, candidates, stats, k)

    async def turns(
        self,
        keys: Sequence[TurnKey],
        *,
        kinds: Sequence[MemoryKind] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> dict[TurnKey, StoredVersion]:
        """The current version at each (exact scope, session id, turn), the first created where several."""
        at: dict[tuple[Scope, str, int], MemoryRecord] = {}
        for record in sorted(self._current(), key=lambda r: (micros(r.created_at), str(r.id))):
            event = event_columns(record.metadata)
            if event.session_id is not None and event.turn is not None and _passes(record, kinds, since_us, until_us):
                at.setdefault((record.scope, event.session_id, event.turn), record)
        found = ((key, at.get((key.scope, key.session_id, key.turn))) for key in keys)
        return {key: self._stored(record) for key, record in found if record is not None}

    async def facet_values(
        self, key: Literal["speaker", "session_id", "kind"], *, scope: Scope, kinds: Sequence[MemoryKind] | None = None
    ) -> list[str]:
        """The distinct values of an event column among the current versions in `scope`, sorted.

        Raises:
            ValueError: `key` is not an event column with values to list.

        """
        if key not in ("speaker", "session_id", "kind"):
            raise ValueError(f"no facet {key!r}; facets: speaker, session_id, kind")
        records = [r for r in self._current() if scope.contains(r.scope) and _passes(r, kinds, None, None)]
        if key == "kind":
            return sorted({r.kind for r in records})
        return sorted({value for r in records if (value := getattr(event_columns(r.metadata), key)) is not None})

    async def events(
        self,
        *,
        scope: Scope,
        kinds: Sequence[MemoryKind] | None = None,
        session_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[MemoryRecord]:
        """The current versions in `scope` with an event time, in event order."""
        found = [
            (event, record)
            for record in self._current()
            if scope.contains(record.scope) and _passes(record, kinds, since_us, until_us)
            and (event := event_columns(record.metadata)).occurred_us is not None
            and (session_id is None or event.session_id == session_id)
        ]  # fmt: skip
        return [record for _, record in sorted(found, key=lambda pair: event_order(pair[0], str(pair[1].id)))]

    def _current(self) -> list[MemoryRecord]:
        return [self._state.versions[(record_id, version)] for record_id, version in self._state.open.items()]

    def _stored(self, record: MemoryRecord) -> StoredVersion:
        tokens = self._token_counts.get(record.text)
        if tokens is None:
            tokens = self._token_counts[record.text] = self._counter.count(record.text)
        return StoredVersion.of(record, tokens)


def _passes(record: MemoryRecord, kinds: Sequence[MemoryKind] | None, since_us: int | None, until_us: int | None
            ) -> bool:  # fmt: skip
    """Whether `record` is of `kinds` (any when empty) and, given a range, has an event time inside it."""
    if kinds and record.kind not in kinds:
        return False
    if since_us is None and until_us is None:
        return True
    when = event_columns(record.metadata).occurred_us
    return when is not None and (since_us is None or when >= since_us) and (until_us is None or when <= until_us)


@lru_cache(maxsize=65536)
def _terms(text: str) -> tuple[str, ...]:
    """The index terms of `text`, in order."""
    return tuple(tokenize(text))
