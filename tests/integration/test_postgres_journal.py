"""The PostgreSQL journal: the journal conformance suite, worker processes sharing it, and its failures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from benchmarks.memory_load import Backend, check_memory, run_processes
from hivegraph.config import PostgresSettings
from hivegraph.errors import BackendUnavailableError, JournalSchemaError
from hivegraph.memory.journal import SCHEMA_VERSION, Journal
from hivegraph.memory.journal_conformance import JOURNAL_CHECKS, journal_checks
from hivegraph.memory.journal_postgres import PostgresJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.chroma import ChromaVectorIndex
from hivegraph.memory.types import Scope
from hivegraph.models.testing import HashEmbedder
from tests.fixtures.chroma_server import ChromaServer
from tests.fixtures.ports import first_free_port
from tests.fixtures.postgres_server import running_postgres_server

pytestmark = pytest.mark.integration

PASSWORD = "hunter2"
ADA = Scope(user_id="ada")
HANG_GUARD_S = 20.0
"""A connection attempt still running after this long hangs: the test fails instead of waiting with it."""


async def open_postgres(dsn: str, *, connect_timeout_s: float = 10.0) -> PostgresJournal:
    postgres = PostgresSettings(dsn=SecretStr(dsn), connect_timeout_s=connect_timeout_s)
    async with asyncio.timeout(HANG_GUARD_S):
        return await asyncio.to_thread(PostgresJournal, postgres)


@pytest.mark.parametrize("name", journal_checks(persistent=True))
async def test_postgres_journal_conforms(name: str, postgres_dsn: str) -> None:
    async def open_journal() -> Journal:
        return await open_postgres(postgres_dsn)

    await JOURNAL_CHECKS[name](open_journal)


async def test_two_worker_processes_share_one_memory_through_postgres(
    chroma_server: ChromaServer, chroma_collection: str, postgres_dsn: str, tmp_path: Path
) -> None:
    backend = Backend(chroma_server.host, chroma_server.port, chroma_collection, f"postgres:{postgres_dsn}")
    log = await run_processes(backend, tmp_path, processes=2, writers=4, ops=15, seed=3)
    store = await asyncio.to_thread(backend.store)
    try:
        await store.catch_up()
        report = await check_memory(store, log)
    finally:
        await store.aclose()
    assert report.violations == []
    assert report.errors == []
    assert (report.lost, report.duplicated) == (0, 0)
    assert report.unexpected_refusals == {}
    assert report.verify_clean == 1
    assert report.acked > 2 * 4 * 7


@pytest.mark.parametrize("port_fixture", ["closed_port", "silent_port"])
async def test_an_unreachable_server_is_reported_without_the_password(
    request: pytest.FixtureRequest, port_fixture: str
) -> None:
    port: int = request.getfixturevalue(port_fixture)
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/hivegraph"
    with pytest.raises(BackendUnavailableError) as info:
        await open_postgres(dsn, connect_timeout_s=1.0)
    assert info.value.backend == "postgres"
    assert f"127.0.0.1:{port}" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in str(info.value.__cause__)


async def test_a_journal_with_a_newer_schema_is_refused(postgres_dsn: str) -> None:
    journal = await open_postgres(postgres_dsn)
    await journal.aclose()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("UPDATE hg_meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))

    with pytest.raises(JournalSchemaError, match=f"schema version {SCHEMA_VERSION + 1}"):
        await open_postgres(postgres_dsn)


def _cluster_pids(backend_pid: int) -> list[int]:
    """The postmaster serving `backend_pid` and all its children, read from /proc."""
    postmaster = _parent(backend_pid)
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(int(p.name)) == postmaster]
    return [postmaster, *children]


def _signal(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # a backend that has just ended
            os.kill(pid, signum)


def _parent(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return -1
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


async def test_a_stalled_server_is_reported_in_time_and_the_journal_works_once_it_resumes(tmp_path: Path) -> None:
    port = first_free_port(range(18450, 18499))
    with running_postgres_server(port) as server:
        postgres = PostgresSettings(dsn=SecretStr(server.dsn()), read_timeout_s=1.0, statement_timeout_s=0.5)
        journal = await asyncio.to_thread(PostgresJournal, postgres)
        index = ChromaVectorIndex.persistent_at(tmp_path / "chroma", collection="stall", embedder=HashEmbedder())
        store = await MemoryStore(index, journal=journal).open()  # a persistent index: its lock is PostgreSQL's
        await store.add("Ada likes tea", scope=ADA)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            pids = _cluster_pids(int(conn.execute("SELECT pg_backend_pid()").fetchone()[0]))  # type: ignore[index]
        _signal(pids, signal.SIGSTOP)
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                with pytest.raises(BackendUnavailableError, match="no answer within 1 s"):
                    await store.list(scope=ADA)
                with pytest.raises(BackendUnavailableError, match="no answer within 1 s"):
                    async with journal.projection_lock("vector"):
                        pass
        finally:
            _signal(pids, signal.SIGCONT)
        async with asyncio.timeout(HANG_GUARD_S):
            await store.add("Ada moved to Porto", scope=ADA)  # the lock taken too late was let go
            assert {r.text for r in await store.list(scope=ADA)} == {"Ada likes tea", "Ada moved to Porto"}
            assert (await store.verify()).clean
        await store.aclose()
