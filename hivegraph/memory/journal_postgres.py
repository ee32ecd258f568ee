"""`PostgresJournal`: the journal in PostgreSQL, shared by worker processes on any machine.

Same schema and queries as the SQLite journal (`hivegraph.memory.journal_sql`).
Writers are serialised by a transaction-level advisory lock taken first in
every write transaction, so planning sees every earlier commit and sequence
numbers follow commit order. Projections catch up under a session-level
advisory lock per projection. Connections come from a `psycopg_pool` pool;
each call runs in a worker thread. Every statement has the server-side
`statement_timeout`, and a lock wait or serialisation failure is retried a
bounded number of times. Keyword search matches in a `tsvector` table with a
GIN index (`PostgresDialect`).
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from hivegraph.config import HivegraphSettings, PostgresSettings
from hivegraph.errors import BackendUnavailableError, MemoryStoreError
from hivegraph.memory.journal import SCHEMA_VERSION
from hivegraph.memory.journal_fulltext import SqlDialect, TextQuery
from hivegraph.memory.journal_migrate3 import migrate_v3
from hivegraph.memory.journal_sql import SqlConn, SqlJournal, UniqueViolationError
from hivegraph.memory.types import MemoryRecord
from hivegraph.postgres import connection_kwargs, first_line, postgres_address

R = TypeVar("R")
LOCK_NAMESPACE = 0x68670001
"""First key of hivegraph's advisory locks (the second is 0 for writes, a hash of the name for projections)."""
RETRIES = 5
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.LockNotAvailable,
              pg_errors.QueryCanceled)  # fmt: skip


class _Conn(SqlConn):
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), tuple(args))  # pyright: ignore[reportArgumentType, reportCallIssue]
            return list(cur.fetchall()) if cur.description is not None else []

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self.conn.cursor() as cur:
            try:
                cur.execute(sql.replace("?", "%s"), tuple(args))  # pyright: ignore[reportArgumentType, reportCallIssue]
            except pg_errors.UniqueViolation as exc:
                raise UniqueViolationError(first_line(exc)) from exc
            return cur.rowcount


class _Handoff:
    """Passes a locked connection from a worker thread to a caller that may have stopped waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._conn: psycopg.Connection[Any] | None = None

    def deliver(self, conn: psycopg.Connection[Any]) -> bool:
        """Hand `conn` over; False when the caller has gone (the thread must release it)."""
        with self._lock:
            self._conn = None if self._abandoned else conn
            return not self._abandoned

    def abandon(self) -> psycopg.Connection[Any] | None:
        """Stop waiting; returns a connection delivered just before (the caller must release it)."""
        with self._lock:
            self._abandoned = True
            return self._conn


class PostgresDialect(SqlDialect):
    """PostgreSQL's catalog, and full-text matching in a `tsvector` column with a GIN index.

    `hg_text` holds one row per current version: its index terms (`terms`, space-joined) and
    `tsv`, written as a `tsvector` literal so the terms (`hivegraph.memory.text.tokenize`) are
    stored exactly, never re-parsed by a text search configuration: the scope and kind tags
    with weight D, the terms with weight A. A search is one `tsv @@ query` with the scope and
    kinds inside it (tags restricted to weight D, terms to A, so a text cannot pass for a tag).
    """

    def columns(self, conn: SqlConn, table: str) -> set[str]:
        """The names of the columns of `table` in the current schema."""
        sql = (
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = ? AND table_schema = current_schema()"
        )
        return {str(row[0]) for row in conn.rows(sql, (table,))}

    def create_text_index(self, conn: SqlConn) -> None:
        """Create the text table and its GIN index, if missing."""
        conn.run("CREATE TABLE IF NOT EXISTS hg_text (record_id TEXT NOT NULL, version BIGINT NOT NULL,"
                 " terms TEXT NOT NULL, tsv tsvector NOT NULL, PRIMARY KEY (record_id, version))")  # fmt: skip
        conn.run("CREATE INDEX IF NOT EXISTS hg_text_tsv ON hg_text USING GIN (tsv)")

    def index_text(self, conn: SqlConn, record: MemoryRecord, tags: Sequence[str], terms: Sequence[str]) -> None:
        """Add one version."""
        conn.run("INSERT INTO hg_text(record_id, version, terms, tsv) VALUES (?, ?, ?, ?::tsvector)",
                 (str(record.id), record.version, " ".join(terms), tsvector_literal(tags, terms)))  # fmt: skip

    def unindex_text(self, conn: SqlConn, record_id: str, version: int) -> list[str] | None:
        """Drop one version; its stored terms."""
        rows = conn.rows(
            "DELETE FROM hg_text WHERE record_id = ? AND version = ? RETURNING terms", (record_id, version)
        )
        return str(rows[0][0]).split() if rows else None

    def clear_text_index(self, conn: SqlConn) -> None:
        """Drop every version."""
        conn.run("DELETE FROM hg_text")

    def match_text(self, conn: SqlConn, query: TextQuery) -> list[tuple[str, int, str]]:
        """Every version whose `tsv` matches the `tsquery` of `query` (and its time range)."""
        timed = query.since_us is not None or query.until_us is not None
        sql = (
            "SELECT t.record_id, t.version, t.terms FROM hg_text t"
            + (" JOIN hg_versions v ON v.record_id = t.record_id AND v.version = t.version" if timed else "")
            + " WHERE t.tsv @@ ?::tsquery"
            + (" AND v.occurred_us >= ?" if query.since_us is not None else "")
            + (" AND v.occurred_us <= ?" if query.until_us is not None else "")
        )
        args = [tsquery_literal(query), *(t for t in (query.since_us, query.until_us) if t is not None)]
        return [(str(record_id), int(version), str(terms)) for record_id, version, terms in conn.rows(sql, args)]


def tsvector_literal(tags: Sequence[str], terms: Sequence[str]) -> str:
    """The `tsvector` of one version: tags with weight D, then terms with weight A, each at its position."""
    words = [(tag, "D") for tag in tags] + [(term, "A") for term in terms]
    return " ".join(f"{_lexeme(word)}:{n}{weight}" for n, (word, weight) in enumerate(words, 1))


def tsquery_literal(query: TextQuery) -> str:
    """The `tsquery` of a search: scope tags all, kind tags any (weight D), terms any (weight A)."""
    parts = [_lexeme(tag, "D") for tag in query.scope_tags]
    if query.kind_tags:
        parts.append("(" + " | ".join(_lexeme(tag, "D") for tag in query.kind_tags) + ")")
    parts.append("(" + " | ".join(_lexeme(term, "A") for term in query.terms) + ")")
    return " & ".join(parts)


def _lexeme(word: str, weight: str = "") -> str:
    """`word` quoted as a text search lexeme (taken verbatim), with a weight restriction if given."""
    quoted = "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"
    return f"{quoted}:{weight}" if weight else quoted


class PostgresJournal(SqlJournal):
    """The journal in a PostgreSQL database."""

    name = "postgres"
    dialect = PostgresDialect()

    def __init__(
        self, postgres: PostgresSettings, *, field: str = "journal.postgres.dsn", token_encoding: str | None = None
    ) -> None:
        """Connect (waiting at most `connect_timeout_s`) and create the schema if missing.

        Args:
            postgres: Connection settings.
            field: The settings field the DSN came from (named in errors).
            token_encoding: The tiktoken encoding a new journal counts tokens with (default
                `FALLBACK_ENCODING`); an existing journal keeps the one it was created with.

        Raises:
            BackendUnavailableError: the server cannot be reached.
            ConfigError: the DSN is not a valid connection string, or `token_encoding` not an
                encoding that loads offline.
            JournalSchemaError: the journal was written by a newer hivegraph.

        """
        self._token_request = token_encoding
        self.where = postgres_address(postgres, field=field)
        kwargs = connection_kwargs(postgres, dict_rows=False)
        conninfo = postgres.dsn.get_secret_value()
        self._timeout_s = postgres.connect_timeout_s + postgres.statement_timeout_s
        self._read_timeout_s = postgres.read_timeout_s
        try:
            psycopg.connect(conninfo, **kwargs).close()  # fails at once, with libpq's reason
        except psycopg.OperationalError as exc:
            raise BackendUnavailableError("postgres", f"cannot connect to {self.where}: {first_line(exc)}") from exc
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo, kwargs=kwargs, min_size=postgres.pool_min, max_size=postgres.pool_max, open=False
        )
        try:
            self._pool.open(wait=True, timeout=postgres.connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise BackendUnavailableError("postgres", f"no connection to {self.where} in time") from exc
        self._projection_locks: dict[str, asyncio.Lock] = {}
        try:
            self._sync(self._create_schema, write=True)
        except BaseException:
            self._pool.close()
            raise

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """The journal in the database of `journal.postgres.dsn`."""
        return cls(settings.journal.postgres)

    def _upgrade(self, conn: SqlConn, stored: int | None) -> None:
        """Bring a schema-2 journal to 3 (schema 1 never existed in PostgreSQL)."""
        if stored is not None and stored < SCHEMA_VERSION:
            migrate_v3(conn, self.dialect, self._tokens)

    async def _read(self, fn: Callable[[SqlConn], R]) -> R:
        return await self._in_thread(lambda: self._sync(fn, write=False))

    async def _write(self, fn: Callable[[SqlConn], R]) -> R:
        return await self._in_thread(lambda: self._sync(fn, write=True))

    async def _in_thread(self, fn: Callable[[], R]) -> R:
        """Run `fn` in a worker thread, waiting at most `read_timeout_s` for it.

        libpq has no read timeout: against a stalled server a call would wait forever. The caller is
        answered in time; the thread is left to finish (or fail) when the server answers, so a write
        that timed out here may still be applied then (an idempotency key makes its retry safe).

        Raises:
            BackendUnavailableError: no answer within `read_timeout_s`.

        """
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), self._read_timeout_s)
        except TimeoutError as exc:
            raise BackendUnavailableError(
                "postgres", f"{self.where}: no answer within {self._read_timeout_s:g} s (is the server stalled?)"
            ) from exc

    def _sync(self, fn: Callable[[SqlConn], R], *, write: bool) -> R:
        for attempt in range(RETRIES + 1):
            try:
                return self._once(fn, write)
            except _RETRYABLE as exc:
                if attempt == RETRIES:
                    raise MemoryStoreError(
                        f"postgres journal at {self.where}: busy, gave up: {first_line(exc)}"
                    ) from exc
                time.sleep(0.05 * 2**attempt)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                raise BackendUnavailableError("postgres", f"{self.where}: {first_line(exc)}") from exc
            except psycopg.Error as exc:
                raise MemoryStoreError(f"postgres journal at {self.where} failed: {first_line(exc)}") from exc
        raise AssertionError("unreachable")

    def _once(self, fn: Callable[[SqlConn], R], write: bool) -> R:
        with self._pool.connection(timeout=self._timeout_s) as conn:
            if not write:
                return fn(_Conn(conn))
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_NAMESPACE,))
                return fn(_Conn(conn))

    @asynccontextmanager
    async def projection_lock(self, name: str) -> AsyncGenerator[None]:
        """Exclusive across every process (a session advisory lock) while projection `name` catches up.

        Raises:
            BackendUnavailableError: the server cannot be reached.
            MemoryStoreError: the lock could not be taken in time (`statement_timeout_s`).

        """
        key = zlib.crc32(name.encode()) & 0x7FFFFFFF or 1
        async with self._projection_locks.setdefault(name, asyncio.Lock()):
            handoff = _Handoff()
            try:
                conn = await self._in_thread(lambda: self._guarded(self._locked_connection, key, handoff))
            except BackendUnavailableError:
                late = handoff.abandon()
                if late is not None:  # taken just as we gave up: let it go without waiting again
                    threading.Thread(target=self._unlock, args=(late, key), daemon=True).start()
                raise
            try:
                yield
            finally:
                await self._in_thread(lambda: self._guarded(self._unlock, conn, key))

    def _locked_connection(self, key: int, handoff: _Handoff) -> psycopg.Connection[Any]:
        conn = self._pool.getconn(self._timeout_s)
        try:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, key))
        except BaseException:
            self._pool.putconn(conn)
            raise
        if handoff.deliver(conn):
            return conn
        self._unlock(conn, key)  # the caller stopped waiting (a stalled server): never hold the lock for nobody
        raise BackendUnavailableError("postgres", f"{self.where}: the projection lock came too late")

    def _unlock(self, conn: psycopg.Connection[Any], key: int) -> None:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, key))
        finally:
            self._pool.putconn(conn)  # a broken connection is discarded by the pool, releasing the lock

    def _guarded(self, fn: Callable[..., R], *args: Any) -> R:
        try:
            return fn(*args)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise BackendUnavailableError("postgres", f"{self.where}: {first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise MemoryStoreError(f"postgres journal at {self.where} failed: {first_line(exc)}") from exc

    async def aclose(self) -> None:
        """Close the pool."""
        await asyncio.to_thread(self._pool.close)
