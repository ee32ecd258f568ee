"""The PostgreSQL journal: the journal conformance suite, worker processes sharing it, and its failures."""

from __future__ import annotations

import asyncio
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
from tests.fixtures.chroma_server import ChromaServer

pytestmark = pytest.mark.integration

PASSWORD = "hunter2"
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
