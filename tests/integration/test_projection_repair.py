"""Opening a store brings an embedded Chroma index back in step with the journal (real Chroma).

The index keeps a mark of the journal sequence it holds: one restored from an
older copy is caught up from its mark; one whose mark is lost (an index from
before marks, or one copied without them) is checked by its counts and
repaired; drift inside an index whose mark is intact is found by `verify`.
"""

from __future__ import annotations

import shutil
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


async def drift(store: MemoryStore) -> tuple[str, str]:
    """A closed version held as current, and a current one lost; returns their version ids."""
    pin = await store.add("Ada's PIN is 4321", scope=ADA)
    kept = await store.add("Ada likes tea", scope=ADA)
    await store.apply([DeleteOp(record_id=pin.id)], scope=ADA, actor="ada")
    live = store.space.collection(store.vectors.partition(kept))  # Ada's current semantic memories
    await store.vectors.history().delete([pin.version_id])
    await live.upsert([to_item(pin)])  # held as current
    await live.delete([kept.version_id])
    return pin.version_id, kept.version_id


async def test_drift_inside_an_index_is_found_and_repaired_by_verify(tmp_path: Path) -> None:
    store = await open_store(tmp_path).open()
    pin, kept = await drift(store)
    found = await store.verify()
    assert sorted((d.kind, d.version_id) for d in found.divergences) == [("missing", kept), ("stale", pin)]
    assert not (await store.verify(repair=True)).clean  # reports what it repaired
    assert (await store.verify()).clean
    assert [h.text for h in await store.search("Ada", scope=ADA, k=10)] == ["Ada likes tea"]
    await store.aclose()


async def test_an_index_restored_from_an_older_copy_is_caught_up_from_its_mark_on_open(tmp_path: Path) -> None:
    store = await open_store(tmp_path).open()
    pin = await store.add("Ada's PIN is 4321", scope=ADA)
    await store.aclose()
    shutil.copytree(tmp_path / "chroma", tmp_path / "backup")  # the index as it was then
    store = await open_store(tmp_path).open()
    await store.apply([DeleteOp(record_id=pin.id)], scope=ADA, actor="ada")
    await store.add("Ada likes tea", scope=ADA)
    await store.aclose()
    shutil.rmtree(tmp_path / "chroma")
    shutil.copytree(tmp_path / "backup", tmp_path / "chroma")

    reopened = await open_store(tmp_path).open()
    assert (await reopened.verify()).clean
    assert [h.text for h in await reopened.search("Ada", scope=ADA, k=10)] == ["Ada likes tea"]
    assert await reopened.vectors.applied() == await reopened.journal.last_seq()
    await reopened.aclose()


async def test_a_wiped_index_is_derived_again_on_open(tmp_path: Path) -> None:
    store = await open_store(tmp_path).open()
    await store.add("Ada likes tea", scope=ADA)
    await store.aclose()
    shutil.rmtree(tmp_path / "chroma")

    reopened = await open_store(tmp_path).open()
    assert (await reopened.verify()).clean
    assert [h.text for h in await reopened.search("Ada", scope=ADA, k=10)] == ["Ada likes tea"]
    await reopened.aclose()


async def test_drift_in_an_index_without_a_mark_is_repaired_on_open(tmp_path: Path) -> None:
    store = await open_store(tmp_path).open()
    pin, kept = await drift(store)
    await store.space.set_mark(store.vectors.name, None)  # as an index written before marks
    found = await store.verify()
    assert sorted((d.kind, d.version_id) for d in found.divergences) == [("missing", kept), ("stale", pin)]
    await store.aclose()

    reopened = await open_store(tmp_path).open()
    assert (await reopened.verify()).clean
    assert [h.text for h in await reopened.search("Ada", scope=ADA, k=10)] == ["Ada likes tea"]
    assert await reopened.vectors.applied() == await reopened.journal.last_seq()
    await reopened.aclose()
