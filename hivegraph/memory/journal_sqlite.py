"""`SqliteJournal`: the journal in one SQLite file in WAL mode (or in memory).

Each append is one transaction that writes the op rows and the record
versions they close and open, so the journal's own state is never half an
op. `synchronous=FULL` makes an acknowledged op survive a power cut, not only
a crash of the process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar
from uuid import UUID

from hivegraph.config import HivegraphSettings
from hivegraph.errors import BackendUnavailableError
from hivegraph.memory.codec import OPEN as OPEN_END
from hivegraph.memory.journal import Journal, JournalEntry
from hivegraph.memory.types import SCOPE_FIELDS, MemoryKind, MemoryRecord, Scope

R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ops (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id TEXT NOT NULL UNIQUE,
    batch_id TEXT NOT NULL,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    record_id TEXT,
    undo_of TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_record ON ops(record_id);
CREATE TABLE IF NOT EXISTS versions (
    version_id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    user_id TEXT, agent_id TEXT, team_id TEXT, run_id TEXT,
    created_at REAL NOT NULL,
    valid_from REAL NOT NULL,
    valid_to REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_record ON versions(record_id);
CREATE INDEX IF NOT EXISTS versions_current ON versions(valid_to, kind);
CREATE INDEX IF NOT EXISTS versions_hash ON versions(hash);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""


class SqliteJournal(Journal):
    """The journal in SQLite; `path=":memory:"` keeps it in this process only."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"sqlite journal {self.path}", str(exc)) from exc
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """The journal at `journal.sqlite.path` (default `<data_dir>/journal.sqlite`)."""
        return cls(settings.resolve(settings.journal.sqlite.path, "journal.sqlite"))

    async def _run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        def locked() -> R:
            with self._lock:
                return fn(self._db)

        return await asyncio.to_thread(locked)

    async def append(self, entries: Sequence[JournalEntry]) -> list[JournalEntry]:
        """Record `entries` in one transaction; returns them with their `seq` set."""
        return await self._run(lambda db: _append(db, entries))

    async def read(self, *, after: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Entries with `seq > after`, in order."""
        sql = "SELECT seq, body FROM ops WHERE seq > ? ORDER BY seq" + (" LIMIT ?" if limit else "")
        args: tuple[Any, ...] = (after, limit) if limit else (after,)
        rows = await self._run(lambda db: db.execute(sql, args).fetchall())
        return [_entry(row) for row in rows]

    async def entry(self, op_id: UUID) -> JournalEntry | None:
        """The entry of one op."""
        sql = "SELECT seq, body FROM ops WHERE op_id = ?"
        row = await self._run(lambda db: db.execute(sql, (str(op_id),)).fetchone())
        return _entry(row) if row else None

    async def entries_for(self, record_id: UUID) -> list[JournalEntry]:
        """Every entry that touched a record, in order."""
        sql = "SELECT seq, body FROM ops WHERE record_id = ? ORDER BY seq"
        rows = await self._run(lambda db: db.execute(sql, (str(record_id),)).fetchall())
        return [_entry(row) for row in rows]

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
        """Record versions inside `scope`: current ones, those valid at `as_of`, or all."""
        where, args = _version_filter(scope, record_ids, kinds, text_hash, as_of, all_versions)
        sql = f"SELECT body FROM versions WHERE {where} ORDER BY created_at, record_id, version"
        rows = await self._run(lambda db: db.execute(sql, args).fetchall())
        return [MemoryRecord.model_validate_json(row[0]) for row in rows]

    async def cursor(self, name: str) -> int:
        """The last `seq` the derived index `name` has applied (0 if none)."""
        row = await self._run(lambda db: db.execute("SELECT seq FROM cursors WHERE name = ?", (name,)).fetchone())
        return int(row[0]) if row else 0

    async def advance(self, name: str, seq: int) -> None:
        """Record that the derived index `name` has applied everything up to `seq`."""
        sql = "INSERT INTO cursors(name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq"
        await self._run(lambda db: db.execute(sql, (name, seq)))

    async def last_seq(self) -> int:
        """The `seq` of the newest entry (0 when empty)."""
        row = await self._run(lambda db: db.execute("SELECT MAX(seq) FROM ops").fetchone())
        return int(row[0] or 0)

    async def aclose(self) -> None:
        """Close the database."""
        await self._run(lambda db: db.close())


def _append(db: sqlite3.Connection, entries: Sequence[JournalEntry]) -> list[JournalEntry]:
    stored: list[JournalEntry] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for entry in entries:
            record = entry.after or entry.before
            row = (
                str(entry.op_id), str(entry.batch_id), entry.at.timestamp(), entry.actor, entry.op.event,
                str(record.id) if record else None, str(entry.undo_of) if entry.undo_of else None,
            )  # fmt: skip
            cur = db.execute(
                "INSERT INTO ops(op_id, batch_id, at, actor, event, record_id, undo_of, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, '')",
                row,
            )
            done = entry.model_copy(update={"seq": cur.lastrowid})
            db.execute("UPDATE ops SET body = ? WHERE seq = ?", (done.model_dump_json(), done.seq))
            for version in (entry.before, entry.after):
                if version is not None:
                    _put_version(db, version)
            stored.append(done)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return stored


def _put_version(db: sqlite3.Connection, record: MemoryRecord) -> None:
    scope = [getattr(record.scope, name) for name in SCOPE_FIELDS]
    valid_to = record.valid_to.timestamp() if record.valid_to else OPEN_END
    db.execute(
        "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record.version_id, str(record.id), record.version, record.kind, record.hash, *scope,
         record.created_at.timestamp(), record.valid_from.timestamp(), valid_to, record.model_dump_json()),
    )  # fmt: skip


def _entry(row: tuple[int, str]) -> JournalEntry:
    return JournalEntry.model_validate_json(row[1])


def _version_filter(
    scope: Scope,
    record_ids: Sequence[UUID] | None,
    kinds: Sequence[MemoryKind] | None,
    text_hash: str | None,
    as_of: datetime | None,
    all_versions: bool,
) -> tuple[str, list[Any]]:
    clauses = [f"{name} = ?" for name in scope.fields()]
    args: list[Any] = list(scope.fields().values())
    if record_ids is not None:
        clauses.append(f"record_id IN ({', '.join('?' * len(record_ids))})")
        args += [str(r) for r in record_ids]
    if kinds:
        clauses.append(f"kind IN ({', '.join('?' * len(kinds))})")
        args += list(kinds)
    if text_hash is not None:
        clauses.append("hash = ?")
        args.append(text_hash)
    if as_of is not None:
        clauses.append("valid_from <= ? AND valid_to > ?")
        args += [as_of.timestamp(), as_of.timestamp()]
    elif not all_versions:
        clauses.append("valid_to = ?")
        args.append(OPEN_END)
    return " AND ".join(clauses) or "1 = 1", args
