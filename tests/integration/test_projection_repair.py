"""Opening a store repairs an embedded Chroma index that disagrees with the journal (real Chroma)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegraph.memory.codec import to_item
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.chroma import ChromaSpace
from hivegraph.memory.types import DeleteOp, Scope
from hivegraph.models.testing import HashEmbedder

pytestmark = pytest.mark.integration
ADA = Scope(user_id="ada")


def open_store(folder: Path) -> MemoryStore:
    space = ChromaSpace.persistent_at(folder / "chroma", prefix="mem", embedder=HashEmbedder())
    return MemoryStore(space, journal=SqliteJournal(folder / "journal.sqlite"))


async def test_a_closed_version_left_current_in_the_index_is_repaired_on_open(tmp_path: Path) -> None:
    store = await open_store(tmp_path).open()
    pin = await store.add("Ada's PIN is 4321", scope=ADA)
    kept = await store.add("Ada likes tea", scope=ADA)
    await store.apply([DeleteOp(record_id=pin.id)], scope=ADA, actor="ada")
    live = store.space.collection(store.vectors.partition(kept))  # Ada's current semantic memories
    await store.vectors.history().delete([pin.version_id])  # the drift the review found: a closed version
    await live.upsert([to_item(pin)])  # held as current
    await live.delete([kept.version_id])  # and an item lost
    found = await store.verify()
    assert sorted((d.kind, d.version_id) for d in found.divergences) == [
        ("missing", kept.version_id), ("stale", pin.version_id)
    ]  # fmt: skip
    await store.aclose()

    reopened = await open_store(tmp_path).open()
    assert (await reopened.verify()).clean
    assert [h.text for h in await reopened.search("Ada", scope=ADA, k=10)] == ["Ada likes tea"]
    await reopened.aclose()
