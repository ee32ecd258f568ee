"""Projections: indexes derived from the journal, updated idempotently by version id.

Each projection says which versions it holds and how each should look there
(`fingerprint`), and reports what it holds now (`fingerprints`); `verify`
compares the two, and `repair` writes the difference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from hivegraph.memory.codec import to_item
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.stores.base import IndexItem, VectorIndex
from hivegraph.memory.types import MemoryRecord


class Projection(ABC):
    """Something kept in step with the journal (a vector index, a keyword index)."""

    name: str
    """Cursor name in the journal."""

    @property
    @abstractmethod
    def persistent(self) -> bool:
        """Whether what was projected survives a new process (else it is replayed from 0)."""

    @abstractmethod
    async def project(self, entries: Sequence[JournalEntry]) -> None:
        """Apply `entries`; applying the same entries again changes nothing."""

    @abstractmethod
    async def reset(self) -> None:
        """Forget everything projected so far (re-creating the store from nothing if it must)."""

    @abstractmethod
    def fingerprint(self, version: MemoryRecord) -> str | None:
        """How `version` should look in this projection, or None if the projection does not hold it."""

    @abstractmethod
    async def fingerprints(self) -> dict[str, str]:
        """What the projection holds now: version id -> fingerprint."""

    @abstractmethod
    async def repair(self, write: Sequence[MemoryRecord], remove: Sequence[str]) -> None:
        """Write the final state of `write` and drop the version ids `remove`."""

    async def counts(self) -> tuple[int, int]:
        """How many versions the projection holds, and how many of them as current (a cheap check at open)."""
        held = await self.fingerprints()
        return len(held), sum(1 for fp in held.values() if fp.endswith(":current"))

    async def is_empty(self) -> bool:
        """Whether nothing has been projected (a wiped index)."""
        return False


def final_versions(entries: Sequence[JournalEntry]) -> list[MemoryRecord]:
    """The last state of every version the entries touch, in first-touch order."""
    latest: dict[str, MemoryRecord] = {}
    for entry in entries:
        for version in (entry.before, entry.after):
            if version is not None:
                latest[version.version_id] = version
    return list(latest.values())


def version_fingerprint(hash_: object, current: object) -> str:
    """The fingerprint of a version held with its text hash and current flag."""
    return f"{hash_}:{'current' if current else 'closed'}"


class VectorProjection(Projection):
    """Every record version as an item of a `VectorIndex` (closed versions included, marked)."""

    def __init__(self, index: VectorIndex, *, name: str = "vector") -> None:
        self.index = index
        self.name = name

    @property
    def persistent(self) -> bool:
        """Whether the index keeps its items across processes."""
        return self.index.persistent

    async def project(self, entries: Sequence[JournalEntry]) -> None:
        """Upsert the final state of each touched version."""
        await self.repair(final_versions(entries), ())

    async def reset(self) -> None:
        """Drop every item (the whole collection where the index can)."""
        await self.index.drop()

    def fingerprint(self, version: MemoryRecord) -> str:
        """Every version is held: its hash and whether it is current."""
        return version_fingerprint(version.hash, version.is_current)

    async def fingerprints(self) -> dict[str, str]:
        """Hash and current flag of every item."""
        items = await self.index.get()
        return {item.id: version_fingerprint(item.metadata.get("hash"), item.metadata.get("current")) for item in items}

    async def repair(self, write: Sequence[MemoryRecord], remove: Sequence[str]) -> None:
        """Upsert `write`, delete `remove`."""
        items: list[IndexItem] = [to_item(version) for version in write]
        await self.index.upsert(items)
        await self.index.delete(list(remove))

    async def counts(self) -> tuple[int, int]:
        """Items held, and items marked current, counted by the index (no item is read)."""
        return await self.index.count(), await self.index.count(where={"current": True})

    async def is_empty(self) -> bool:
        """Whether the index holds no items."""
        return await self.index.count() == 0
