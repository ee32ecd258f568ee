"""The journal in a SQL database: one schema and one set of queries for SQLite and PostgreSQL.

A backend supplies a connection that runs statements (`SqlConn`), an exclusive
write transaction (SQLite `BEGIN IMMEDIATE`, PostgreSQL a transaction-level
advisory lock) and a projection lock; everything else is here.

The schema makes a lost update impossible, not just unlikely: a version is
keyed by (record id, version), at most one version of a record is open (a
partial unique index), and a version is closed by an `UPDATE ... WHERE` it is
still open, checked to touch exactly one row. Times are integer microseconds,
so `as_of` boundaries are exact. Sequence numbers are assigned under the
write lock, so they follow commit order and a projection reading `seq > n`
never skips an entry that commits later.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from hivegraph.errors import ConflictError, JournalSchemaError, MemoryStoreError
from hivegraph.memory.journal import SCHEMA_VERSION, Batch, BatchResult, Journal, JournalEntry, UndoRequest, Unreadable
from hivegraph.memory.journal_codec import OPEN_US, decode_entry, decode_version, micros
from hivegraph.memory.planner import apply_batch, apply_undo, claim_key
from hivegraph.memory.types import SCOPE_FIELDS, MemoryKind, MemoryRecord, Scope, utcnow

R = TypeVar("R")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS hg_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hg_ops (
    seq BIGINT PRIMARY KEY, op_id TEXT NOT NULL UNIQUE, batch_id TEXT NOT NULL, at_us BIGINT NOT NULL,
    actor TEXT NOT NULL, event TEXT NOT NULL, record_id TEXT, undo_of TEXT, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hg_ops_record ON hg_ops(record_id);
CREATE TABLE IF NOT EXISTS hg_versions (
    record_id TEXT NOT NULL, version BIGINT NOT NULL, kind TEXT NOT NULL, hash TEXT NOT NULL,
    user_id TEXT, agent_id TEXT, team_id TEXT, run_id TEXT,
    created_us BIGINT NOT NULL, valid_from_us BIGINT NOT NULL, valid_to_us BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (record_id, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS hg_versions_open ON hg_versions(record_id) WHERE valid_to_us = {OPEN_US};
CREATE INDEX IF NOT EXISTS hg_versions_user ON hg_versions(user_id, valid_to_us, kind);
CREATE INDEX IF NOT EXISTS hg_versions_hash ON hg_versions(hash);
CREATE TABLE IF NOT EXISTS hg_cursors (name TEXT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS hg_keys (key TEXT PRIMARY KEY, scope TEXT NOT NULL, at_us BIGINT NOT NULL);
"""
"""Statements that create the schema (both dialects; `?` placeholders are the backend's to translate)."""

_VERSION_COLUMNS = "record_id, version, kind, hash, user_id, agent_id, team_id, run_id, created_us, valid_from_us"


class UniqueViolationError(MemoryStoreError):
    """A statement broke a uniqueness rule of the schema (raised by a backend's `SqlConn`)."""


class SqlConn(Protocol):
    """A connection inside a transaction (or autocommit for reads), with `?` placeholders."""

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        ...

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement and return the number of rows it changed.

        Raises:
            UniqueViolationError: it broke a uniqueness rule (a second open version, a version twice).

        """
        ...


class SqlTxn:
    """The planner's view of the journal inside one exclusive write transaction."""

    def __init__(self, conn: SqlConn) -> None:
        self.conn = conn

    def current(self, record_id: UUID) -> MemoryRecord | None:
        """The open version of a record."""
        rows = self.conn.rows("SELECT body FROM hg_versions WHERE record_id = ? AND valid_to_us = ?",
                              (str(record_id), OPEN_US))  # fmt: skip
        return _version(rows[0][0]) if rows else None

    def latest(self, record_id: UUID) -> MemoryRecord | None:
        """The newest version of a record."""
        sql = "SELECT body FROM hg_versions WHERE record_id = ? ORDER BY version DESC LIMIT 1"
        rows = self.conn.rows(sql, (str(record_id),))
        return _version(rows[0][0]) if rows else None

    def duplicate(self, scope: Scope, kind: MemoryKind, hash_: str) -> MemoryRecord | None:
        """An open version of `kind` in exactly `scope` with this text hash."""
        where, args = version_filter(scope, None, [kind], hash_, None, False)
        rows = self.conn.rows(f"SELECT body FROM hg_versions WHERE {where}", args)
        found = (_version(row[0]) for row in rows)
        return next((r for r in found if r is not None and r.scope == scope), None)

    def entry(self, op_id: UUID) -> JournalEntry | None:
        """A journaled op.

        Raises:
            MemoryStoreError: the op is journaled but its entry cannot be read (see `verify`).

        """
        rows = self.conn.rows("SELECT seq, body FROM hg_ops WHERE op_id = ?", (str(op_id),))
        if not rows:
            return None
        found = decode_entry(int(rows[0][0]), rows[0][1])
        if isinstance(found, Unreadable):
            raise MemoryStoreError(f"the journal entry of op {op_id} cannot be read ({found.problem})")
        return found

    def entries_for(self, record_id: UUID) -> list[JournalEntry]:
        """Every entry that touched a record, in order."""
        return _entries(self.conn.rows("SELECT seq, body FROM hg_ops WHERE record_id = ? ORDER BY seq",
                                       (str(record_id),)))  # fmt: skip

    def key_scope(self, key: str) -> Scope | None:
        """The scope a key is bound to."""
        rows = self.conn.rows("SELECT scope FROM hg_keys WHERE key = ?", (key,))
        return Scope.model_validate_json(rows[0][0]) if rows else None

    def bind_key(self, key: str, scope: Scope, at: datetime) -> None:
        """Bind an unbound key to `scope`."""
        self.conn.run("INSERT INTO hg_keys(key, scope, at_us) VALUES (?, ?, ?)",
                      (key, scope.model_dump_json(exclude_none=True), micros(at)))  # fmt: skip

    def insert(self, entry: JournalEntry) -> JournalEntry:
        """Append `entry` and write its versions, all or nothing (a savepoint).

        Raises:
            ConflictError: it closes a version that is not open, or opens one that exists.

        """
        self.conn.run("SAVEPOINT hg_op")
        try:
            stored = self._insert(entry)
        except (ConflictError, UniqueViolationError) as exc:
            self.conn.run("ROLLBACK TO SAVEPOINT hg_op")
            self.conn.run("RELEASE SAVEPOINT hg_op")
            record = entry.after or entry.before
            if isinstance(exc, ConflictError) or record is None:
                raise
            raise ConflictError(str(record.id), f"the schema refused the change ({exc})") from exc
        self.conn.run("RELEASE SAVEPOINT hg_op")
        return stored

    def _insert(self, entry: JournalEntry) -> JournalEntry:
        seq = int(self.conn.rows("SELECT COALESCE(MAX(seq), 0) + 1 FROM hg_ops")[0][0])
        stored = entry.model_copy(update={"seq": seq})
        record = entry.after or entry.before
        self.conn.run(
            "INSERT INTO hg_ops(seq, op_id, batch_id, at_us, actor, event, record_id, undo_of, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, str(entry.op_id), str(entry.batch_id), micros(entry.at), entry.actor, entry.op.event,
             str(record.id) if record else None, str(entry.undo_of) if entry.undo_of else None,
             stored.model_dump_json()),
        )  # fmt: skip
        if entry.before is not None:
            self._close(entry.before)
        if entry.after is not None:
            self._open(entry.after)
        return stored

    def _close(self, record: MemoryRecord) -> None:
        assert record.valid_to is not None
        changed = self.conn.run(
            "UPDATE hg_versions SET valid_to_us = ?, body = ? WHERE record_id = ? AND version = ? AND valid_to_us = ?",
            (micros(record.valid_to), record.model_dump_json(), str(record.id), record.version, OPEN_US),
        )
        if changed != 1:
            raise ConflictError(str(record.id), f"version {record.version} is not open")

    def _open(self, record: MemoryRecord) -> None:
        taken = "SELECT 1 FROM hg_versions WHERE record_id = ? AND (version = ? OR valid_to_us = ?)"
        if self.conn.rows(taken, (str(record.id), record.version, OPEN_US)):
            raise ConflictError(str(record.id), f"version {record.version} exists or another version is open")
        scope = [getattr(record.scope, name) for name in SCOPE_FIELDS]
        self.conn.run(
            f"INSERT INTO hg_versions({_VERSION_COLUMNS}, valid_to_us, body) VALUES ({', '.join('?' * 12)})",
            (str(record.id), record.version, record.kind, record.hash, *scope, micros(record.created_at),
             micros(record.valid_from), OPEN_US, record.model_dump_json()),
        )  # fmt: skip


class SqlJournal(Journal):
    """A `Journal` over SQL; subclasses provide connections and locks."""

    @abstractmethod
    async def _read(self, fn: Callable[[SqlConn], R]) -> R:
        """Run `fn` on a connection that sees every committed write."""

    @abstractmethod
    async def _write(self, fn: Callable[[SqlConn], R]) -> R:
        """Run `fn` inside a write transaction that excludes every other writer; commit if it returns."""

    def _create_schema(self, conn: SqlConn) -> None:
        """Create the tables, or check the stored schema version.

        Raises:
            JournalSchemaError: the journal was written by a newer hivegraph.

        """
        for statement in filter(str.strip, SCHEMA.split(";")):
            conn.run(statement)
        rows = conn.rows("SELECT value FROM hg_meta WHERE key = 'schema_version'")
        if not rows:
            conn.run("INSERT INTO hg_meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(rows[0][0]) > SCHEMA_VERSION:
            raise JournalSchemaError(
                f"the journal has schema version {rows[0][0]}; this hivegraph reads up to {SCHEMA_VERSION} (upgrade it)"
            )

    async def submit(self, batch: Batch) -> BatchResult:
        """Plan `batch` and append what is accepted, in one exclusive transaction."""
        return await self._write(lambda conn: apply_batch(SqlTxn(conn), batch))

    async def undo(self, request: UndoRequest) -> JournalEntry:
        """Plan and append the revert of one op, in one exclusive transaction."""
        return await self._write(lambda conn: apply_undo(SqlTxn(conn), request))

    async def claim(self, key: str, scope: Scope, *, create: bool = True) -> bool:
        """Bind `key` to `scope`; True when `scope` owns it."""

        def run(conn: SqlConn) -> bool:
            txn = SqlTxn(conn)
            if not create and txn.key_scope(key) is None:
                return False
            claim_key(txn, key, scope, utcnow(), what=key.split(":", 1)[0])
            return True

        return await self._write(run)

    async def read(self, *, after: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Entries with `seq > after`, in order (unreadable ones left out)."""
        sql = "SELECT seq, body FROM hg_ops WHERE seq > ? ORDER BY seq" + (" LIMIT ?" if limit else "")
        args: tuple[Any, ...] = (after, limit) if limit else (after,)
        return _entries(await self._read(lambda conn: conn.rows(sql, args)))

    async def entry(self, op_id: UUID) -> JournalEntry | None:
        """The entry of one op."""
        return await self._read(lambda conn: SqlTxn(conn).entry(op_id))

    async def entries_for(self, record_id: UUID) -> list[JournalEntry]:
        """Every entry that touched a record, in order."""
        return await self._read(lambda conn: SqlTxn(conn).entries_for(record_id))

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
        where, args = version_filter(scope, record_ids, kinds, text_hash, as_of, all_versions)
        sql = f"SELECT body FROM hg_versions WHERE {where} ORDER BY created_us, record_id, version"
        rows = await self._read(lambda conn: conn.rows(sql, args))
        return [r for row in rows if (r := _version(row[0])) is not None]

    async def cursor(self, name: str) -> int:
        """The last `seq` the derived index `name` has applied (0 if none)."""
        rows = await self._read(lambda conn: conn.rows("SELECT seq FROM hg_cursors WHERE name = ?", (name,)))
        return int(rows[0][0]) if rows else 0

    async def advance(self, name: str, seq: int) -> None:
        """Record that the derived index `name` has applied everything up to `seq`."""
        sql = "INSERT INTO hg_cursors(name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq"
        await self._write(lambda conn: conn.run(sql, (name, seq)))

    async def last_seq(self) -> int:
        """The `seq` of the newest entry (0 when empty)."""
        rows = await self._read(lambda conn: conn.rows("SELECT MAX(seq) FROM hg_ops"))
        return int(rows[0][0] or 0)

    async def counts(self) -> tuple[int, int]:
        """How many versions the journal holds, and how many of them are current."""
        sql = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN valid_to_us = ? THEN 1 ELSE 0 END), 0) FROM hg_versions"
        rows = await self._read(lambda conn: conn.rows(sql, (OPEN_US,)))
        return int(rows[0][0]), int(rows[0][1])

    async def unreadable(self) -> list[Unreadable]:
        """Stored entries and versions that do not parse."""

        def scan(conn: SqlConn) -> list[Unreadable]:
            ops = [decode_entry(seq, body) for seq, body in conn.rows("SELECT seq, body FROM hg_ops ORDER BY seq")]
            versions = [
                decode_version(f"version {rid}:{n}", body)
                for rid, n, body in conn.rows("SELECT record_id, version, body FROM hg_versions ORDER BY record_id")
            ]
            return [found for found in [*ops, *versions] if isinstance(found, Unreadable)]

        return await self._read(scan)


def version_filter(
    scope: Scope,
    record_ids: Sequence[UUID] | None,
    kinds: Sequence[MemoryKind] | None,
    text_hash: str | None,
    as_of: datetime | None,
    all_versions: bool,
) -> tuple[str, list[Any]]:
    """The WHERE clause (with `?` placeholders) and its arguments for a versions read."""
    clauses = [f"{name} = ?" for name in scope.fields()]
    args: list[Any] = list(scope.fields().values())
    if record_ids is not None:
        clauses.append(f"record_id IN ({', '.join('?' * len(record_ids))})" if record_ids else "1 = 0")
        args += [str(r) for r in record_ids]
    if kinds:
        clauses.append(f"kind IN ({', '.join('?' * len(kinds))})")
        args += list(kinds)
    if text_hash is not None:
        clauses.append("hash = ?")
        args.append(text_hash)
    if as_of is not None:
        clauses.append("valid_from_us <= ? AND valid_to_us > ?")
        args += [micros(as_of), micros(as_of)]
    elif not all_versions:
        clauses.append("valid_to_us = ?")
        args.append(OPEN_US)
    return " AND ".join(clauses) or "1 = 1", args


def _entries(rows: Sequence[tuple[Any, ...]]) -> list[JournalEntry]:
    return [e for seq, body in rows if isinstance(e := decode_entry(int(seq), body), JournalEntry)]


def _version(body: str) -> MemoryRecord | None:
    found = decode_version("", body)
    return found if isinstance(found, MemoryRecord) else None
