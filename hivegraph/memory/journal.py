"""The journal: every memory operation, in order; the source of truth.

An op is acknowledged once its entry is in the journal. The journal also
keeps every record version (the state the entries lead to), so reads of
current records, history and points in time are answered here; the vector and
keyword indexes are derived from the entries and catch up by sequence number.

Writers are concurrent (agents of one team, worker processes), so a journal
plans **and** appends a batch inside one transaction that excludes every other
writer (`submit`): an UPDATE or DELETE sees the record as it is at that moment,
a version is closed only while it is open, and an op whose `expected_version`
is no longer current is refused as a conflict. The planning itself is shared
by every journal (`hivegraph.memory.planner`); a journal provides the
transaction (`JournalTxn`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, Field

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.types import MemoryKind, MemoryOp, MemoryRecord, Scope, Source, utcnow

SCHEMA_VERSION = 3
"""Version of the journal's storage layout; a journal refuses to open a newer one."""


class JournalEntry(BaseModel):
    """One applied op: what it was, who did it, and the versions it closed and opened."""

    seq: int = 0
    """Position in the journal, assigned on append (1, 2, ...)."""
    op_id: UUID = Field(default_factory=uuid4)
    batch_id: UUID
    at: datetime = Field(default_factory=utcnow)
    actor: str
    scope: Scope
    op: MemoryOp
    before: MemoryRecord | None = None
    """The version this op closed (with its `valid_to` set), if any."""
    after: MemoryRecord | None = None
    """The version this op opened, if any."""
    undo_of: UUID | None = None
    """The op this entry reverts, for undo entries."""


RefusalCode = Literal["conflict", "not_found", "scope", "invalid", "batch"]


class RefusedOp(BaseModel):
    """An op that was not applied, and why."""

    op: MemoryOp
    reason: str
    code: RefusalCode = "invalid"
    """`conflict`: the record moved on since the decision; `not_found`, `scope`, `invalid`, `batch` (twice in one)."""


@dataclass(frozen=True)
class Batch:
    """Ops to plan and append together, in one transaction."""

    ops: Sequence[MemoryOp]
    scope: Scope
    actor: str
    source: Source = field(default_factory=Source)
    at: datetime = field(default_factory=utcnow)
    idempotency_key: str | None = None
    """With a key, the n-th op gets an op id derived from it, and an op already journaled under it is not redone."""
    max_text_chars: int = 2000
    batch_id: UUID = field(default_factory=uuid4)


@dataclass(frozen=True)
class UndoRequest:
    """Revert one op."""

    op_id: UUID
    scope: Scope
    actor: str
    at: datetime = field(default_factory=utcnow)


@dataclass
class BatchResult:
    """The entries a batch journaled (or found journaled under its key) and the ops it refused."""

    applied: list[JournalEntry] = field(default_factory=list[JournalEntry])
    refused: list[RefusedOp] = field(default_factory=list[RefusedOp])


class StoredVersion:
    """One version as the read path needs it: columns at once, the record decoded on first use.

    A search loads tens of candidates and shows a few: whether each is current, its scope, session,
    turn and token count come from indexed columns, and only the versions that are used pay for
    decoding the full record.
    """

    __slots__ = ("_decode", "_record", "current", "scope", "session_id", "tokens", "turn", "version_id")

    def __init__(
        self,
        version_id: str,
        *,
        tokens: int,
        current: bool,
        scope: Scope,
        session_id: str | None = None,
        turn: int | None = None,
        record: MemoryRecord | None = None,
        decode: Callable[[], MemoryRecord | None] | None = None,
    ) -> None:
        """A version given by its record, or by its columns and a way to decode it."""
        self.version_id = version_id
        self.tokens = tokens
        """Tokens of the text, counted at write time with the journal's `token_encoding`."""
        self.current = current
        self.scope = scope
        self.session_id = session_id
        self.turn = turn
        self._record = record
        self._decode = decode

    @classmethod
    def of(cls, record: MemoryRecord, tokens: int) -> StoredVersion:
        """A version whose record is already decoded."""
        meta = record.metadata
        turn = meta.get("turn")
        return cls(
            record.version_id, tokens=tokens, current=record.is_current, scope=record.scope, record=record,
            session_id=str(meta["session_id"]) if meta.get("session_id") is not None else None,
            turn=turn if isinstance(turn, int) and not isinstance(turn, bool) else None,
        )  # fmt: skip

    @property
    def record(self) -> MemoryRecord:
        """The version itself.

        Raises:
            MemoryStoreError: its stored form no longer parses (see `Journal.unreadable`).

        """
        if self._record is None:
            decoded = self._decode() if self._decode is not None else None
            if decoded is None:
                raise MemoryStoreError(f"version {self.version_id} cannot be read (see `hivegraph memory verify`)")
            self._record = decoded
        return self._record


@dataclass(frozen=True, slots=True)
class TurnKey:
    """A turn of a session, in exactly one scope."""

    scope: Scope
    session_id: str
    turn: int


@dataclass(frozen=True)
class Unreadable:
    """A stored entry or version that no longer parses (written by an older, laxer version)."""

    where: str
    """`op <seq>` or `version <id>:<n>`."""
    problem: str


class Journal(ABC):
    """An append-only log of memory ops plus the record versions they produced.

    The read path reads from it too, each in one indexed read: versions by id
    with their token counts, keyword search over the current versions (the
    full-text index is written in the same transaction as the versions), the
    turns of sessions, and the event columns (`session_id`, `turn`, `speaker`,
    `occurred_at` of a record's metadata, extracted when a version is written;
    `occurred_at` in POSIX seconds becomes `occurred_us`). A read in a scope sees
    the records whose scope has every field it sets, with the same value (as `records`).
    """

    name: ClassVar[str] = "journal"
    token_encoding: str
    """The tiktoken encoding the stored token counts use (fixed when the journal is created)."""

    @abstractmethod
    async def submit(self, batch: Batch) -> BatchResult:
        """Plan `batch` against the current state and append what is accepted, in one exclusive transaction.

        Raises:
            KeyScopeError: the batch's idempotency key belongs to another scope (nothing is applied).
            MemoryStoreError: the database failed (nothing is applied).

        """

    @abstractmethod
    async def undo(self, request: UndoRequest) -> JournalEntry:
        """Plan and append the revert of one op, in one exclusive transaction.

        Raises:
            OpNotFoundError: no op has that id.
            ScopeViolationError: the op's record is outside the request's scope.
            ConflictError: the op was undone already, or later ops (not undone) changed its record.
            MemoryStoreError: the op changed nothing.

        """

    @abstractmethod
    async def read(self, *, after: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Entries with `seq > after`, in order (unreadable ones are left out; see `unreadable`)."""

    @abstractmethod
    async def entry(self, op_id: UUID) -> JournalEntry | None:
        """The entry of one op."""

    @abstractmethod
    async def entries_for(self, record_id: UUID) -> list[JournalEntry]:
        """Every entry that touched a record, in order."""

    @abstractmethod
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
        """Record versions inside `scope`: current ones, those valid at `as_of` (exactly), or all.

        Sorted by creation time, then id, then version.
        """

    @abstractmethod
    async def claim(self, key: str, scope: Scope, *, create: bool = True) -> bool:
        """Bind `key` (a run id, say) to `scope`; True when `scope` owns it, False when unclaimed and not created.

        Raises:
            KeyScopeError: another scope owns `key`.

        """

    @abstractmethod
    async def cursor(self, name: str) -> int:
        """The last `seq` the derived index `name` has applied (0 if none)."""

    @abstractmethod
    async def advance(self, name: str, seq: int) -> None:
        """Record that the derived index `name` has applied everything up to `seq`."""

    @abstractmethod
    async def last_seq(self) -> int:
        """The `seq` of the newest entry (0 when empty)."""

    @abstractmethod
    async def counts(self, *, kinds: Sequence[MemoryKind] | None = None) -> tuple[int, int]:
        """How many versions (of `kinds`, or of every kind) the journal holds, and how many of them are current."""

    @abstractmethod
    def projection_lock(self, name: str) -> AbstractAsyncContextManager[None]:
        """Exclusive, across processes, while a projection catches up (so updates never land out of order)."""

    @abstractmethod
    async def unreadable(self) -> list[Unreadable]:
        """Stored entries and versions that do not parse (reported by `verify`, never fatal)."""

    @abstractmethod
    async def versions(self, version_ids: Sequence[str]) -> dict[str, StoredVersion]:
        """The versions with these ids (`<record id>:<version>`), open or closed; unknown or malformed ids left out."""

    @abstractmethod
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
        """The `k` current versions in `scope` that best match `terms`, best first, as (version id, score).

        `terms` are index terms (`hivegraph.memory.text.tokenize`; repeats weigh more). With `since_us`
        or `until_us`, only versions whose event time lies in the range (inclusive) count. A higher
        score is better; versions sharing no term are never returned; `k <= 0` or no terms gives `[]`.
        """

    @abstractmethod
    async def turns(
        self,
        keys: Sequence[TurnKey],
        *,
        kinds: Sequence[MemoryKind] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> dict[TurnKey, StoredVersion]:
        """The current version at each (exact scope, session id, turn), where there is one that passes the filters.

        Where several current versions share a key, the first by (creation time, record id).
        """

    @abstractmethod
    async def facet_values(
        self, key: Literal["speaker", "session_id", "kind"], *, scope: Scope, kinds: Sequence[MemoryKind] | None = None
    ) -> list[str]:
        """The distinct values of an event column (or the kinds) among the current versions in `scope`, sorted."""

    @abstractmethod
    async def events(
        self,
        *,
        scope: Scope,
        kinds: Sequence[MemoryKind] | None = None,
        session_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[MemoryRecord]:
        """The current versions in `scope` that have an event time, by (event time, session id, turn, record id).

        A missing session id or turn sorts before any value.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the journal's resources."""
