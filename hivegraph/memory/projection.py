"""Projections: indexes derived from the journal, updated idempotently by version id."""

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
        """Forget everything projected so far."""

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
        items: list[IndexItem] = [to_item(version) for version in final_versions(entries)]
        await self.index.upsert(items)

    async def reset(self) -> None:
        """Delete every item."""
        items = await self.index.get()
        await self.index.delete([item.id for item in items])

    async def is_empty(self) -> bool:
        """Whether the index holds no items."""
        return await self.index.count() == 0
