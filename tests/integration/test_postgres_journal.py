"""The PostgreSQL journal: the journal conformance suite, worker processes sharing it, schema 3, and its failures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, LiteralString, TypeVar

import psycopg
import pytest
from pydantic import SecretStr

from benchmarks.memory_load import Backend, check_memory, run_processes
from hivegraph.config import PostgresSettings
from hivegraph.errors import BackendUnavailableError, JournalSchemaError
from hivegraph.memory.journal import SCHEMA_VERSION, Batch, Journal, TurnKey
from hivegraph.memory.journal_conformance import JOURNAL_CHECKS, journal_checks
from hivegraph.memory.journal_postgres import PostgresJournal
from hivegraph.memory.journal_sql import SqlConn
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.chroma import ChromaSpace
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import AddOp, Scope
from hivegraph.models.testing import HashEmbedder
from hivegraph.models.tokens import TokenCounter
from tests.fixtures.chroma_server import ChromaServer
from tests.fixtures.ports import first_free_port
from tests.fixtures.postgres_server import running_postgres_server
from tests.unit.test_journal_read_schema import ADA_PLANNER, write_v2_journal

pytestmark = pytest.mark.integration
R = TypeVar("R")

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


def _rows(dsn: str, query: LiteralString) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query).fetchall()


async def test_a_schema_2_journal_is_upgraded_to_3(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        records = write_v2_journal(lambda sql, args: conn.execute(sql.replace("?", "%s"), tuple(args)))  # pyright: ignore[reportArgumentType, reportCallIssue, reportUnknownLambdaType]
    journal = await asyncio.to_thread(PostgresJournal, PostgresSettings(dsn=SecretStr(postgres_dsn)),
                                      token_encoding="cl100k_base")  # fmt: skip
    assert journal.token_encoding == "cl100k_base"
    assert _rows(postgres_dsn, "SELECT value FROM hg_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    counter = TokenCounter(encoding_name="cl100k_base")
    tokens = dict(_rows(postgres_dsn, "SELECT record_id || ':' || version, tokens FROM hg_versions WHERE tokens > 0"))
    assert tokens == {r.version_id: counter.count(r.text) for r in records.values()}
    found = await journal.keyword_search(tokenize("tea Lisbon Porto hiking"), scope=ADA)
    assert {v for v, _ in found} == {records[n].version_id for n in ("tea", "porto", "turn")}
    assert await journal.keyword_search(["lisbon"], scope=ADA) == []
    key = TurnKey(ADA_PLANNER, "s1", 3)
    assert (await journal.turns([key]))[key].record == records["turn"]
    terms = [str(t).split() for (t,) in _rows(postgres_dsn, "SELECT terms FROM hg_text")]
    assert len(terms) == 4
    assert _rows(postgres_dsn, "SELECT docs, terms FROM hg_text_totals") == [(4, sum(map(len, terms)))]
    assert dict(_rows(postgres_dsn, "SELECT term, docs FROM hg_text_terms")) == Counter(
        t for words in terms for t in set(words)
    )
    await journal.aclose()


class _Explaining:
    """A `SqlConn` that also records the plan of every query, with sequential scans switched off.

    The test tables are small, so PostgreSQL would rightly scan them; with scans off, a plan
    still scanning means no index can serve the query.
    """

    def __init__(self, conn: SqlConn, plans: list[str]) -> None:
        self.conn, self.plans = conn, plans

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.conn.run("SET enable_seqscan = off")
        self.plans += [str(row[0]) for row in self.conn.rows(f"EXPLAIN {sql}", args)]
        self.conn.run("RESET enable_seqscan")
        return self.conn.rows(sql, args)

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.run(sql, args)


class _ExplainedJournal(PostgresJournal):
    plans: list[str]

    async def _read(self, fn: Callable[[SqlConn], R]) -> R:
        return await super()._read(lambda conn: fn(_Explaining(conn, self.plans)))


async def test_reads_are_served_by_indexes(postgres_dsn: str) -> None:
    journal = await asyncio.to_thread(_ExplainedJournal, PostgresSettings(dsn=SecretStr(postgres_dsn)))
    opened: list[str] = []
    for user in range(10):
        ops = [AddOp(text=f"note {n} about tea", kind="episodic", dedupe=False, metadata={"session_id": "s", "turn": n})
               for n in range(10)]  # fmt: skip
        result = await journal.submit(Batch(ops=ops, scope=Scope(user_id=f"u{user}"), actor="t"))
        opened += [e.after.version_id for e in result.applied if e.after is not None]
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")  # statistics, as autovacuum would gather them
    reads = {
        "hg_versions_pkey": journal.versions(opened[::7]),
        "hg_versions_turn": journal.turns([TurnKey(Scope(user_id="u3"), "s", 4)]),
        "hg_text_tsv": journal.keyword_search(["tea"], scope=Scope(user_id="u3")),
    }
    for index, read in reads.items():
        journal.plans = []
        assert await read, index
        assert [line for line in journal.plans if "Seq Scan on hg_" in line] == [], journal.plans
        assert any(index in line for line in journal.plans), journal.plans
    await journal.aclose()


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
        space = ChromaSpace.persistent_at(tmp_path / "chroma", prefix="stall", embedder=HashEmbedder())
        store = await MemoryStore(space, journal=journal).open()  # a persistent index: its lock is PostgreSQL's
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
