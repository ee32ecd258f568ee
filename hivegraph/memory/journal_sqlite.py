"""`SqliteJournal`: the journal in one SQLite file in WAL mode (or in memory).

Writers in every process are serialised by `BEGIN IMMEDIATE` (SQLite's write
lock): an op is planned and appended inside that one transaction. A busy
database is waited for (`busy_timeout`) and retried a bounded number of times;
any other database error becomes a `MemoryStoreError`. `synchronous=FULL`
makes an acknowledged op survive a power cut, not only a crash of the process.
Projections catch up under an `flock` on a file beside the database, so two
processes never apply entries to one index out of order.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

from hivegraph.config import HivegraphSettings
from hivegraph.errors import BackendUnavailableError, MemoryStoreError
from hivegraph.memory.journal_migrate import migrate_v1, needs_v1_migration
from hivegraph.memory.journal_sql import SqlConn, SqlJournal, UniqueViolationError

R = TypeVar("R")
BUSY_RETRIES = 5
"""Attempts after `busy_timeout` ran out before a locked database is reported."""


class _Conn(SqlConn):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, tuple(args)).fetchall()

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            return self.db.execute(sql, tuple(args)).rowcount
        except sqlite3.IntegrityError as exc:
            raise UniqueViolationError(str(exc)) from exc


class SqliteJournal(SqlJournal):
    """The journal in SQLite; `path=":memory:"` keeps it in this process only."""

    name = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", busy_timeout_s: float = 10.0) -> None:
        """Open (or create) the journal at `path`.

        Raises:
            BackendUnavailableError: the file cannot be opened.
            JournalSchemaError: it was written by a newer hivegraph.

        """
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
            _wal(self._db, deadline=time.monotonic() + busy_timeout_s)
            self._db.execute(f"PRAGMA synchronous={synchronous}")
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"sqlite journal {self.path}", str(exc)) from exc
        self._lock = threading.Lock()
        self._projection_locks: dict[str, asyncio.Lock] = {}
        try:
            self._sync(self._create_schema, write=True)
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """The journal at `journal.sqlite.path` (default `<data_dir>/journal.sqlite`)."""
        return cls(settings.resolve(settings.journal.sqlite.path, "journal.sqlite"))

    def _create_schema(self, conn: SqlConn) -> None:
        """Create the tables, then migrate a schema-1 journal found in the same file."""
        super()._create_schema(conn)
        if needs_v1_migration(conn):
            migrate_v1(conn)

    async def _read(self, fn: Callable[[SqlConn], R]) -> R:
        return await asyncio.to_thread(self._sync, fn, write=False)

    async def _write(self, fn: Callable[[SqlConn], R]) -> R:
        return await asyncio.to_thread(self._sync, fn, write=True)

    def _sync(self, fn: Callable[[SqlConn], R], *, write: bool) -> R:
        for attempt in range(BUSY_RETRIES + 1):
            try:
                with self._lock:
                    return self._once(fn, write)
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or attempt == BUSY_RETRIES:
                    raise self._error(exc) from exc
                time.sleep(0.05 * 2**attempt)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        raise AssertionError("unreachable")

    def _once(self, fn: Callable[[SqlConn], R], write: bool) -> R:
        if not write:
            return fn(_Conn(self._db))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(_Conn(self._db))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite rolls back by itself after some errors
                self._db.execute("ROLLBACK")
            raise
        return result

    def _error(self, exc: sqlite3.Error) -> MemoryStoreError:
        what = "is locked by another writer (retried)" if _busy(exc) else "failed"
        return MemoryStoreError(f"sqlite journal {self.path} {what}: {exc}")

    @asynccontextmanager
    async def projection_lock(self, name: str) -> AsyncGenerator[None]:
        """Exclusive across processes (an `flock` beside the database) while projection `name` catches up."""
        lock = self._projection_locks.setdefault(name, asyncio.Lock())
        async with lock:
            if self.path == ":memory:":
                yield
                return
            fd = os.open(f"{self.path}.{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    async def aclose(self) -> None:
        """Close the database."""
        await asyncio.to_thread(self._db.close)


def _wal(db: sqlite3.Connection, *, deadline: float) -> None:
    """Switch to WAL mode, waiting while another process holds the lock (the switch fails at once, unlike writes)."""
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
