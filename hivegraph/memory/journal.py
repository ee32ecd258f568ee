"""The journal: every memory operation, in order; the source of truth.

An op is acknowledged once its entry is in the journal. The journal also
keeps every record version (the state the entries lead to), so reads of
current records, history and points in time are answered here; the vector and
keyword indexes are derived from the entries and catch up by sequence number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID, uuid4

from pydantic import BaseModel, Field

from hivegraph.memory.types import MemoryKind, MemoryOp, MemoryRecord, Scope, utcnow


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


class Journal(ABC):
    """An append-only log of memory ops plus the record versions they produced."""

    @abstractmethod
    async def append(self, entries: Sequence[JournalEntry]) -> list[JournalEntry]:
        """Record `entries` in one transaction; returns them with their `seq` set."""

    @abstractmethod
    async def read(self, *, after: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Entries with `seq > after`, in order."""

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
        """Record versions inside `scope`: current ones, those valid at `as_of`, or all.

        Sorted by creation time, then id, then version.
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

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the journal's resources."""
