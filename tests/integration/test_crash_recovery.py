"""Kill the process between journaling and indexing; a restart catches up, nothing lost or doubled."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import IndexItem
from hivegraph.memory.stores.chroma import ChromaSpace
from hivegraph.memory.types import Scope
from hivegraph.models.testing import HashEmbedder

pytestmark = pytest.mark.integration
ADA = Scope(user_id="ada")

WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from hivegraph.memory.journal_sqlite import SqliteJournal
    from hivegraph.memory.store import MemoryStore
    from hivegraph.memory.stores.base import IndexUpsertOp
    from hivegraph.memory.stores.chroma import ChromaSpace, ChromaVectorIndex
    from hivegraph.memory.types import AddOp, Scope, UpdateOp
    from hivegraph.models.testing import HashEmbedder

    armed = False
    upsert_batch = ChromaVectorIndex.abatch

    async def killed_on_upsert(self, ops):  # every collection of the space
        if armed and any(isinstance(op, IndexUpsertOp) for op in ops):
            os.kill(os.getpid(), signal.SIGKILL)  # the op is journaled, the index never sees it
        return await upsert_batch(self, ops)

    ChromaVectorIndex.abatch = killed_on_upsert

    async def main(folder):
        global armed
        space = ChromaSpace.persistent_at(folder + "/chroma", prefix="mem", embedder=HashEmbedder())
        store = await MemoryStore(space, journal=SqliteJournal(folder + "/journal.sqlite")).open()
        ada = Scope(user_id="ada")
        tea = await store.add("Ada likes green tea", scope=ada)
        await store.add("Ada lives in Lisbon", scope=ada)
        armed = True
        ops = [UpdateOp(record_id=tea.id, text="Ada likes black coffee"), AddOp(text="Ada plays the cello")]
        await store.apply(ops, scope=ada, actor="writer")
        print("not killed")

    asyncio.run(main(sys.argv[1]))
    """
)


def open_store(folder: Path) -> MemoryStore:
    space = ChromaSpace.persistent_at(folder / "chroma", prefix="mem", embedder=HashEmbedder())
    return MemoryStore(space, journal=SqliteJournal(folder / "journal.sqlite"))


async def indexed(store: MemoryStore) -> list[IndexItem]:
    """Every item of every collection of the store's vector space (current and closed versions)."""
    return [item for name in await store.space.names() for item in await store.space.collection(name).get()]


async def test_index_catches_up_after_a_kill_between_journal_and_index(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr

    store = open_store(tmp_path)
    entries = await store.journal.read()
    assert [e.op.event for e in entries] == ["ADD", "ADD", "UPDATE", "ADD"]  # acknowledged before the kill
    stale = {item.text for item in await indexed(store)}
    assert stale == {"Ada likes green tea", "Ada lives in Lisbon"}  # the index missed the last batch

    current = {h.text for h in await store.search("Ada", scope=ADA, k=10)}  # a read catches up first
    assert current == {"Ada likes black coffee", "Ada lives in Lisbon", "Ada plays the cello"}
    versions = await store.journal.records(scope=ADA, all_versions=True)
    items = await indexed(store)
    assert sorted(i.id for i in items) == sorted(v.version_id for v in versions)  # nothing doubled
    assert len(items) == 4
    assert await store.catch_up() == 0
    await store.aclose()

    reopened = await open_store(tmp_path).open()  # a second restart replays nothing more
    assert await reopened.vectors.counts() == (4, 3)
    assert await reopened.journal.cursor("vector") == entries[-1].seq
    await reopened.aclose()
