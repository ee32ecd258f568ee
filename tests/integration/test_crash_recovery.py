"""Kill the process between journaling and indexing; a restart catches up, nothing lost or doubled."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.chroma import ChromaVectorIndex
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
    from hivegraph.memory.stores.chroma import ChromaVectorIndex
    from hivegraph.memory.types import AddOp, Scope, UpdateOp
    from hivegraph.models.testing import HashEmbedder

    class KilledOnUpsert(ChromaVectorIndex):
        armed = False

        async def abatch(self, ops):
            if self.armed and any(isinstance(op, IndexUpsertOp) for op in ops):
                os.kill(os.getpid(), signal.SIGKILL)  # the op is journaled, the index never sees it
            return await super().abatch(ops)

    async def main(folder):
        index = KilledOnUpsert.persistent_at(folder + "/chroma", collection="mem", embedder=HashEmbedder())
        store = await MemoryStore(index, journal=SqliteJournal(folder + "/journal.sqlite")).open()
        ada = Scope(user_id="ada")
        tea = await store.add("Ada likes green tea", scope=ada)
        await store.add("Ada lives in Lisbon", scope=ada)
        index.armed = True
        ops = [UpdateOp(record_id=tea.id, text="Ada likes black coffee"), AddOp(text="Ada plays the cello")]
        await store.apply(ops, scope=ada, actor="writer")
        print("not killed")

    asyncio.run(main(sys.argv[1]))
    """
)


def open_store(folder: Path) -> MemoryStore:
    index = ChromaVectorIndex.persistent_at(folder / "chroma", collection="mem", embedder=HashEmbedder())
    return MemoryStore(index, journal=SqliteJournal(folder / "journal.sqlite"))


async def test_index_catches_up_after_a_kill_between_journal_and_index(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr

    store = open_store(tmp_path)
    entries = await store.journal.read()
    assert [e.op.event for e in entries] == ["ADD", "ADD", "UPDATE", "ADD"]  # acknowledged before the kill
    stale = {item.text for item in await store.index.get()}
    assert stale == {"Ada likes green tea", "Ada lives in Lisbon"}  # the index missed the last batch

    current = {h.record.text for h in await store.search("Ada", scope=ADA, k=10)}  # a read catches up first
    assert current == {"Ada likes black coffee", "Ada lives in Lisbon", "Ada plays the cello"}
    versions = await store.journal.records(scope=ADA, all_versions=True)
    items = await store.index.get()
    assert sorted(i.id for i in items) == sorted(v.version_id for v in versions)  # nothing doubled
    assert len(items) == 4
    assert await store.catch_up() == 0
    await store.aclose()

    reopened = await open_store(tmp_path).open()  # a second restart replays nothing more
    assert await reopened.index.count() == 4
    assert await reopened.journal.cursor("vector") == entries[-1].seq
    await reopened.aclose()
