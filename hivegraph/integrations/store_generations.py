"""Where a LangGraph item's records live in the journal: one record id per generation of the item.

An item (scope, namespace, key) gets a new generation each time it is put after
a delete, and each generation has its own record id (`store_mapping.record_id`).
These lookups read the journal a window of generations at a time to find the
item's current record, or the generation a new record of it takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from hivegraph.integrations.store_mapping import record_id
from hivegraph.memory.journal import Journal
from hivegraph.memory.types import MemoryKind, MemoryRecord, Scope

__all__ = ["ItemTarget", "current_record", "next_generation"]

_WINDOW = 8
"""Generations of an item looked up in one read."""


@dataclass(frozen=True)
class ItemTarget:
    """One item: its scope, namespace and key."""

    scope: Scope
    namespace: tuple[str, ...]
    key: str

    def id(self, generation: int) -> UUID:
        """The record id of the item's `generation`."""
        return record_id(self.scope, self.namespace, self.key, generation)

    def window(self, start: int) -> list[UUID]:
        """The record ids of one window of generations, from `start`."""
        return [self.id(g) for g in range(start, start + _WINDOW)]


async def current_record(journal: Journal, target: ItemTarget, kind: MemoryKind) -> MemoryRecord | None:
    """The current record of an item: its generations are read a window at a time."""
    start = 0
    while True:
        ids = target.window(start)
        found = await journal.records(scope=target.scope, record_ids=ids, kinds=[kind])
        found = [r for r in found if r.scope == target.scope]
        if found:
            return max(found, key=lambda r: ids.index(r.id))
        if not await journal.records(scope=target.scope, record_ids=ids[-1:], all_versions=True):
            return None
        start += _WINDOW


async def next_generation(journal: Journal, target: ItemTarget, kind: MemoryKind) -> tuple[MemoryRecord | None, int]:
    """The item's current record, or the generation a new one takes, from one read of each window."""
    start = 0
    while True:
        ids = target.window(start)
        versions = await journal.records(scope=target.scope, record_ids=ids, all_versions=True)
        versions = [v for v in versions if v.scope == target.scope]
        current = [v for v in versions if v.is_current and v.kind == kind]
        if current:
            return max(current, key=lambda r: ids.index(r.id)), 0
        used = {ids.index(v.id) for v in versions}
        if _WINDOW - 1 not in used:
            return None, start + max(used, default=-1) + 1
        start += _WINDOW
