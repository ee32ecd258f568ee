"""Concurrent writers on one memory (tasks, processes, kill -9): the journal's invariants hold.

The writers, the worker processes and the invariant checker are the load
harness in benchmarks/memory_load.py (and the kill trials in
benchmarks/faults.py), so the benchmarks measure what these tests check.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from benchmarks.faults import kill_trial
from benchmarks.memory_load import SCOPE, Backend, LoadReport, WriterLog, check_memory, run_processes, run_writers
from hivegraph.memory.journal import Batch, JournalEntry
from hivegraph.memory.journal_sql import SqlTxn
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import ApplyResult, MemoryStore
from hivegraph.memory.stores.chroma import ChromaSpace
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import AddOp, DeleteOp, MemoryKind, MemoryRecord, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder
from tests.fixtures.chroma_server import ChromaServer

pytestmark = pytest.mark.integration

KILL_TRIALS = 10


def assert_invariants_hold(report: LoadReport) -> None:
    assert report.violations == []
    assert report.errors == []
    assert (report.lost, report.duplicated) == (0, 0)
    assert report.unexpected_refusals == {}
    assert report.verify_clean == report.trials


def sqlite_backend(server: ChromaServer, collection: str, folder: Path) -> Backend:
    return Backend(server.host, server.port, collection, f"sqlite:{folder / 'journal.sqlite'}")


async def test_sixteen_writers_in_one_process_keep_the_invariants(
    chroma_server: ChromaServer, chroma_collection: str, tmp_path: Path
) -> None:
    store = await sqlite_backend(chroma_server, chroma_collection, tmp_path).store().open()
    try:
        log = await run_writers(store, writers=16, ops=20, seed=1)
        report = await check_memory(store, log)
    finally:
        await store.aclose()
    assert_invariants_hold(report)
    assert report.acked > 16 * 10
    assert report.conflicts > 0  # the writers did collide


async def test_four_processes_on_one_journal_file_keep_the_invariants(
    chroma_server: ChromaServer, chroma_collection: str, tmp_path: Path
) -> None:
    backend = sqlite_backend(chroma_server, chroma_collection, tmp_path)
    log = await run_processes(backend, tmp_path, processes=4, writers=4, ops=15, seed=2)
    store = backend.store()
    try:
        await store.catch_up()
        report = await check_memory(store, log)
    finally:
        await store.aclose()
    assert_invariants_hold(report)
    assert report.acked > 4 * 4 * 7
    assert report.conflicts > 0


@pytest.mark.parametrize("trial", range(KILL_TRIALS))
async def test_writers_killed_at_random_lose_and_double_nothing(
    trial: int, chroma_server: ChromaServer, tmp_path: Path
) -> None:
    report = await kill_trial(chroma_server.host, chroma_server.port, tmp_path, seed=trial)
    assert_invariants_hold(report)


# The checker itself: each invariant it checks fails on a journal planted with that violation.


class RawConn:
    """`SqlConn` over a plain sqlite3 connection, to write what the planner would refuse."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, tuple(args)).fetchall()

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, tuple(args)).rowcount


def planted(path: Path, entry: JournalEntry, *, versions: bool = True) -> None:
    """Append `entry` bypassing the planner (and, without `versions`, the versions table too)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        if versions:
            SqlTxn(RawConn(db)).insert(entry)
            return
        seq = db.execute("SELECT MAX(seq) + 1 FROM hg_ops").fetchone()[0]
        record = entry.after or entry.before
        assert record is not None
        body = entry.model_copy(update={"seq": seq}).model_dump_json()
        db.execute(
            "INSERT INTO hg_ops(seq, op_id, batch_id, at_us, actor, event, record_id, undo_of, body)"
            " VALUES (?, ?, ?, 0, 'planted', ?, ?, NULL, ?)",
            (seq, str(entry.op_id), str(entry.batch_id), entry.op.event, str(record.id), body),
        )


def entry(op: AddOp | UpdateOp | DeleteOp, *, before: MemoryRecord | None = None, after: MemoryRecord | None = None
          ) -> JournalEntry:  # fmt: skip
    return JournalEntry(batch_id=uuid4(), actor="planted", scope=SCOPE, op=op, before=before, after=after)


async def test_the_checker_finds_lost_duplicated_and_resurrecting_ops(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    store = MemoryStore(InMemorySpace(HashEmbedder()), journal=SqliteJournal(path))
    tea = await store.add("Ada likes tea", scope=SCOPE)
    deleted = (await store.apply([DeleteOp(record_id=tea.id)], scope=SCOPE, actor="t")).applied[0].before
    assert deleted is not None
    await store.add("Bob likes coffee", scope=SCOPE)
    clean = await check_memory(store, WriterLog(acked=[e.op_id for e in await store.journal.read()]))
    assert_invariants_hold(clean)

    planted(path, entry(AddOp(text="bob likes  COFFEE"), after=MemoryRecord(text="bob likes  COFFEE", scope=SCOPE)))
    revived = deleted.model_copy(update={"version": 2, "valid_to": None, "text": "Ada likes mate"})
    planted(path, entry(UpdateOp(record_id=tea.id, text="Ada likes mate"), before=deleted, after=revived),
            versions=False)  # fmt: skip
    report = await check_memory(store, WriterLog(acked=[uuid4()]))
    await store.aclose()

    assert (report.lost, report.duplicated) == (1, 1)
    assert any("closed twice" in v for v in report.violations)
    assert any(f"closes {deleted.version_id}, but the open version is None" in v for v in report.violations)
    assert any("open versions differ" in v for v in report.violations)
    assert report.verify_clean == 0  # the planted duplicate never reached the index


# A store opening while another process writes (found by the load tests before they gated the start).

Hook = Callable[[], Awaitable[None]]
WRITER_WAIT_S = 5.0
"""How long the interleaved write may wait for the index's lock (held for the whole repair once fixed)."""


class InterleavedJournal(SqliteJournal):
    """A journal handle that lets another writer act at two moments of `MemoryStore.open`."""

    on_counts: Hook | None = None
    """Runs when `open` compares the index's counts with the journal's."""
    after_snapshot: Hook | None = None
    """Runs after `verify` has read the journal's versions (before it locks the index)."""

    async def counts(self, *, kinds: Sequence[MemoryKind] | None = None) -> tuple[int, int]:
        hook, self.on_counts = self.on_counts, None
        if hook is not None:
            await hook()
        return await super().counts(kinds=kinds)

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
        found = await super().records(scope=scope, record_ids=record_ids, kinds=kinds, text_hash=text_hash,
                                      as_of=as_of, all_versions=all_versions)  # fmt: skip
        hook = self.after_snapshot if all_versions else None
        if hook is not None:
            self.after_snapshot = None
            await hook()
        return found


async def test_opening_while_another_process_writes_keeps_the_index_current(
    chroma_server: ChromaServer, chroma_collection: str, tmp_path: Path
) -> None:
    def space() -> ChromaSpace:
        return ChromaSpace.http(chroma_server.host, chroma_server.port, prefix=chroma_collection,
                                embedder=HashEmbedder())  # fmt: skip

    writer = await MemoryStore(space(), journal=SqliteJournal(tmp_path / "journal.sqlite")).open()
    tea = await writer.add("Ada likes tea", scope=SCOPE)
    await writer.space.set_mark(writer.vectors.name, None)  # an index without a mark: open checks counts

    async def journaled_not_yet_projected() -> None:
        await writer.journal.submit(Batch(ops=[UpdateOp(record_id=tea.id, text="Ada likes coffee")], scope=SCOPE,
                                          actor="writer"))  # fmt: skip

    later: list[asyncio.Task[ApplyResult]] = []

    async def written_and_projected() -> None:
        update = UpdateOp(record_id=tea.id, text="Ada likes mate")
        later.append(asyncio.create_task(writer.apply([update], scope=SCOPE, actor="writer")))
        await asyncio.wait(later, timeout=WRITER_WAIT_S)  # done at once, unless verify holds the index's lock

    journal = InterleavedJournal(tmp_path / "journal.sqlite")
    journal.on_counts, journal.after_snapshot = journaled_not_yet_projected, written_and_projected
    opened = await MemoryStore(space(), journal=journal).open()
    await asyncio.gather(*later)
    try:
        found = [hit.text for hit in await opened.search("Ada likes", scope=SCOPE, k=5)]
        report = await opened.verify()
    finally:
        await opened.vectors.reset()  # this test's collections, dropped from the shared server
        await opened.aclose()
        await writer.aclose()
    assert found == ["Ada likes mate"]  # today also "Ada likes coffee", a superseded version still current
    assert report.lines() == []


OPENING_WAIT_S = 3.0
"""How long the other connection keeps the new file locked (well within the journal's 10 s busy timeout)."""


async def test_a_journal_file_being_created_by_another_process_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    creator = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    creator.execute("BEGIN IMMEDIATE")  # another process, midway through creating the journal
    opening = asyncio.create_task(asyncio.to_thread(SqliteJournal, path))
    await asyncio.wait({opening}, timeout=OPENING_WAIT_S)  # today it fails at once; it should wait for the lock
    creator.execute("COMMIT")
    creator.close()
    journal = await opening
    await journal.aclose()
