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

Schema 3 serves the read path from the same database: each version row also
holds its token count and the event columns of its metadata (indexed, partial
on current versions), and a backend's full-text index (`SqlDialect`) holds the
current versions only, written by the same transaction that opens or closes
them, so a rolled-back op leaves nothing in it and every process sees it at
once (`hivegraph.memory.journal_fulltext`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar, Literal, Protocol, TypeVar
from uuid import UUID

from hivegraph.errors import ConfigError, ConflictError, JournalSchemaError, MemoryStoreError
from hivegraph.memory.journal import (
    SCHEMA_VERSION,
    Batch,
    BatchResult,
    Journal,
    JournalEntry,
    StoredVersion,
    TurnKey,
    UndoRequest,
    Unreadable,
)
from hivegraph.memory.journal_codec import (
    MAX_BIGINT,
    OPEN_US,
    EventColumns,
    TextStats,
    bm25_rank,
    decode_entry,
    decode_version,
    event_columns,
    event_order,
    micros,
    scope_key,
    split_version_id,
)
from hivegraph.memory.journal_fulltext import (
    CHUNK,
    TEXT_STATS,
    SqlDialect,
    index_version,
    text_query,
    text_stats,
    unindex_version,
)
from hivegraph.memory.planner import apply_batch, apply_undo, claim_key
from hivegraph.memory.types import SCOPE_FIELDS, MemoryKind, MemoryRecord, Scope, utcnow
from hivegraph.models.tokens import FALLBACK_ENCODING, TokenCounter

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
    tokens BIGINT, scope_key TEXT, session_id TEXT, turn BIGINT, speaker TEXT, occurred_us BIGINT,
    PRIMARY KEY (record_id, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS hg_versions_open ON hg_versions(record_id) WHERE valid_to_us = {OPEN_US};
CREATE INDEX IF NOT EXISTS hg_versions_user ON hg_versions(user_id, valid_to_us, kind);
CREATE INDEX IF NOT EXISTS hg_versions_hash ON hg_versions(hash);
CREATE TABLE IF NOT EXISTS hg_cursors (name TEXT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS hg_keys (key TEXT PRIMARY KEY, scope TEXT NOT NULL, at_us BIGINT NOT NULL);
"""
"""Statements that create the schema (both dialects; `?` placeholders are the backend's to translate)."""

READ_COLUMNS = {
    "tokens": "BIGINT", "scope_key": "TEXT", "session_id": "TEXT", "turn": "BIGINT", "speaker": "TEXT",
    "occurred_us": "BIGINT",
}  # fmt: skip
"""Columns schema 3 added to `hg_versions` for the read path (filled from each version as it is written)."""
READ_INDEXES = f"""
CREATE INDEX IF NOT EXISTS hg_versions_turn ON hg_versions(scope_key, session_id, turn) WHERE valid_to_us = {OPEN_US};
CREATE INDEX IF NOT EXISTS hg_versions_event ON hg_versions(user_id, occurred_us) WHERE valid_to_us = {OPEN_US};
CREATE INDEX IF NOT EXISTS hg_versions_facet ON hg_versions(user_id, kind, speaker, session_id)
    WHERE valid_to_us = {OPEN_US};
"""
"""Indexes on the read columns (created once the columns exist, after a migration adds them)."""

VERSION_COLUMNS = (
    "record_id, version, kind, hash, user_id, agent_id, team_id, run_id, created_us, valid_from_us, valid_to_us, body,"
    " tokens, scope_key, session_id, turn, speaker, occurred_us"
)
"""Every column of `hg_versions`, in the order of `version_row`."""
_MARKS = ", ".join("?" * len(VERSION_COLUMNS.split(",")))
_OPEN = f"valid_to_us = {OPEN_US}"
"""Current versions, written as a literal so that the partial indexes apply."""


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


def version_row(record: MemoryRecord, valid_to_us: int, tokens: int | None) -> tuple[Any, ...]:
    """The values of every `hg_versions` column (`VERSION_COLUMNS` order) for one version."""
    event = event_columns(record.metadata)
    return (str(record.id), record.version, record.kind, record.hash, *(getattr(record.scope, n) for n in SCOPE_FIELDS),
            micros(record.created_at), micros(record.valid_from), valid_to_us, record.model_dump_json(), tokens,
            scope_key(record.scope), event.session_id, event.turn, event.speaker, event.occurred_us)  # fmt: skip


class SqlTxn:
    """The planner's view of the journal inside one exclusive write transaction.

    Opening and closing versions also writes the full-text index of `dialect` (none without
    one: only tests that plant rows go without) and counts tokens with `tokens`.
    """

    def __init__(self, conn: SqlConn, *, dialect: SqlDialect | None = None, tokens: TokenCounter | None = None) -> None:
        self.conn = conn
        self.dialect = dialect
        self.tokens = tokens or TokenCounter(encoding_name=FALLBACK_ENCODING)

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
        if self.dialect is not None:
            unindex_version(self.conn, self.dialect, str(record.id), record.version)

    def _open(self, record: MemoryRecord) -> None:
        taken = "SELECT 1 FROM hg_versions WHERE record_id = ? AND (version = ? OR valid_to_us = ?)"
        if self.conn.rows(taken, (str(record.id), record.version, OPEN_US)):
            raise ConflictError(str(record.id), f"version {record.version} exists or another version is open")
        self.conn.run(f"INSERT INTO hg_versions({VERSION_COLUMNS}) VALUES ({_MARKS})",
                      version_row(record, OPEN_US, self.tokens.count(record.text)))  # fmt: skip
        if self.dialect is not None:
            index_version(self.conn, self.dialect, record)


class SqlJournal(Journal):
    """A `Journal` over SQL; subclasses provide connections, locks, their dialect and schema upgrades."""

    dialect: ClassVar[SqlDialect]
    token_encoding: str = FALLBACK_ENCODING
    _token_request: str | None = None
    """The encoding asked for when the journal was opened (used only if it is new)."""
    _tokens: TokenCounter

    @abstractmethod
    async def _read(self, fn: Callable[[SqlConn], R]) -> R:
        """Run `fn` on a connection that sees every committed write."""

    @abstractmethod
    async def _write(self, fn: Callable[[SqlConn], R]) -> R:
        """Run `fn` inside a write transaction that excludes every other writer; commit if it returns."""

    @abstractmethod
    def _upgrade(self, conn: SqlConn, stored: int | None) -> None:
        """Bring a journal of schema `stored` (None: no version recorded) to the current schema."""

    def _create_schema(self, conn: SqlConn) -> None:
        """Create the tables, or check the stored schema version and upgrade an older one.

        Raises:
            JournalSchemaError: the journal was written by a newer hivegraph, or counts tokens with
                an encoding this one cannot load.

        """
        for statement in statements(SCHEMA):
            conn.run(statement)
        rows = conn.rows("SELECT value FROM hg_meta WHERE key = 'schema_version'")
        stored = int(rows[0][0]) if rows else None
        if stored is not None and stored > SCHEMA_VERSION:
            raise JournalSchemaError(
                f"the journal has schema version {stored}; this hivegraph reads up to {SCHEMA_VERSION} (upgrade it)"
            )
        self._choose_encoding(conn)
        self._upgrade(conn, stored)
        create_read_schema(conn, self.dialect)
        if stored != SCHEMA_VERSION:
            conn.run("INSERT INTO hg_meta(key, value) VALUES ('schema_version', ?)"
                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))  # fmt: skip

    def _choose_encoding(self, conn: SqlConn) -> None:
        """Use the stored token encoding; a journal without one stores the one asked for (or the fallback)."""
        rows = conn.rows("SELECT value FROM hg_meta WHERE key = 'token_encoding'")
        name = str(rows[0][0]) if rows else (self._token_request or FALLBACK_ENCODING)
        try:
            self._tokens = TokenCounter(encoding_name=name)  # the encoding itself loads on first use
        except ConfigError as exc:
            if not rows:
                raise
            raise JournalSchemaError(f"the journal counts tokens with {name!r}, which this hivegraph lacks") from exc
        self.token_encoding = name
        if not rows:
            conn.run("INSERT INTO hg_meta(key, value) VALUES ('token_encoding', ?)", (name,))

    def _txn(self, conn: SqlConn) -> SqlTxn:
        return SqlTxn(conn, dialect=self.dialect, tokens=self._tokens)

    async def submit(self, batch: Batch) -> BatchResult:
        """Plan `batch` and append what is accepted, in one exclusive transaction."""
        return await self._write(lambda conn: apply_batch(self._txn(conn), batch))

    async def undo(self, request: UndoRequest) -> JournalEntry:
        """Plan and append the revert of one op, in one exclusive transaction."""
        return await self._write(lambda conn: apply_undo(self._txn(conn), request))

    async def claim(self, key: str, scope: Scope, *, create: bool = True) -> bool:
        """Bind `key` to `scope`; True when `scope` owns it."""

        def run(conn: SqlConn) -> bool:
            txn = self._txn(conn)
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

    async def counts(self, *, kinds: Sequence[MemoryKind] | None = None) -> tuple[int, int]:
        """How many versions (of `kinds`, or of every kind) the journal holds, and how many of them are current."""
        sql = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN valid_to_us = ? THEN 1 ELSE 0 END), 0) FROM hg_versions"
        args: list[object] = [OPEN_US]
        if kinds is not None:
            sql += f" WHERE kind IN ({', '.join('?' * len(kinds))})" if kinds else " WHERE 0 = 1"
            args += kinds
        rows = await self._read(lambda conn: conn.rows(sql, args))
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

    async def versions(self, version_ids: Sequence[str]) -> dict[str, StoredVersion]:
        """The versions with these ids, open or closed, read by primary key; unknown or malformed ids left out."""
        asked: dict[tuple[str, int], list[str]] = {}
        for version_id in version_ids:
            if (parsed := split_version_id(version_id)) is not None:
                asked.setdefault(parsed, []).append(version_id)
        records = sorted({record_id for record_id, _ in asked})

        def read(conn: SqlConn) -> list[tuple[Any, ...]]:
            found: list[tuple[Any, ...]] = []
            for at in range(0, len(records), CHUNK):  # by record (the key's prefix); other versions dropped below
                chunk = records[at : at + CHUNK]
                sql = f"SELECT {STORED_COLUMNS} FROM hg_versions h WHERE h.record_id IN ({', '.join('?' * len(chunk))})"
                found += conn.rows(sql, chunk)
            return found

        result: dict[str, StoredVersion] = {}
        for row in await self._read(read) if records else []:
            wanted = asked.get((str(row[0]), int(row[1])))
            if wanted:
                stored = self._stored(row)
                result.update(dict.fromkeys(wanted, stored))
        return result

    async def keyword_search(
        self,
        terms: Sequence[str],
        *,
        scope: Scope,
        kinds: Sequence[MemoryKind] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        k: int = 50,
    ) -> list[tuple[str, float]]:
        """The `k` current versions in `scope` that best match `terms` by BM25 (matched by the full-text index)."""
        query = text_query(terms, scope, kinds, since_us, until_us, k)
        if query is None:
            return []

        def read(conn: SqlConn) -> list[tuple[str, float]] | tuple[list[tuple[str, int, str]], TextStats]:
            ranked = self.dialect.rank_text(conn, query)
            if ranked is not None:
                return ranked
            return self.dialect.match_text(conn, query), text_stats(conn, query.terms)

        answer = await self._read(read)
        if isinstance(answer, list):
            return answer
        found, stats = answer
        candidates = ((f"{record_id}:{version}", terms) for record_id, version, terms in found)
        return bm25_rank(query.terms, candidates, stats, k)

    async def turns(
        self,
        keys: Sequence[TurnKey],
        *,
        kinds: Sequence[MemoryKind] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> dict[TurnKey, StoredVersion]:
        """The current version at each (exact scope, session id, turn), read through the turn index."""
        asked: dict[tuple[str, str, int], list[TurnKey]] = {}
        for key in keys:
            if abs(key.turn) <= MAX_BIGINT:
                asked.setdefault((scope_key(key.scope), key.session_id, key.turn), []).append(key)
        triples = list(asked)
        filters, args = _event_filter(kinds, None, since_us, until_us, required=False, table="h")

        def read(conn: SqlConn) -> list[tuple[Any, ...]]:
            found: list[tuple[Any, ...]] = []
            for at in range(0, len(triples), CHUNK):
                chunk = triples[at : at + CHUNK]
                columns = f"h.created_us, h.scope_key, {STORED_COLUMNS}"
                sql = _by_keys(columns, ("scope_key", "session_id", "turn"), len(chunk)) + f" WHERE h.{_OPEN}{filters}"
                found += conn.rows(sql, [*(v for t in chunk for v in t), *args])
            return found

        rows = sorted(await self._read(read) if triples else [], key=lambda r: (int(r[0]), str(r[2])))
        result: dict[TurnKey, StoredVersion] = {}
        for row in rows:
            key_text, stored_row = row[1], row[2:]
            waiting = [
                key for key in asked.get((key_text, stored_row[9], int(stored_row[10])), []) if key not in result
            ]
            if waiting:
                result.update(dict.fromkeys(waiting, self._stored(stored_row)))
        return result

    async def facet_values(
        self, key: Literal["speaker", "session_id", "kind"], *, scope: Scope, kinds: Sequence[MemoryKind] | None = None
    ) -> list[str]:
        """The distinct values of an event column among the current versions in `scope`, sorted.

        Raises:
            ValueError: `key` is not an event column with values to list.

        """
        if key not in ("speaker", "session_id", "kind"):
            raise ValueError(f"no facet {key!r}; facets: speaker, session_id, kind")
        where, args = version_filter(scope, None, kinds, None, None, False)
        sql = f"SELECT DISTINCT {key} FROM hg_versions WHERE {where} AND {key} IS NOT NULL"
        return sorted(str(row[0]) for row in await self._read(lambda conn: conn.rows(sql, args)))

    async def events(
        self,
        *,
        scope: Scope,
        kinds: Sequence[MemoryKind] | None = None,
        session_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[MemoryRecord]:
        """The current versions in `scope` with an event time, in event order."""
        where, args = version_filter(scope, None, None, None, None, False)
        filters, more = _event_filter(kinds, session_id, since_us, until_us, required=True)
        sql = f"SELECT body, occurred_us, session_id, turn, record_id FROM hg_versions WHERE {where}{filters}"
        rows = await self._read(lambda conn: conn.rows(sql, [*args, *more]))
        ordered = sorted(rows, key=lambda r: event_order(EventColumns(r[2], r[3], None, r[1]), r[4]))
        return [record for row in ordered if (record := _version(row[0])) is not None]

    def _stored(self, row: Sequence[Any]) -> StoredVersion:
        """A `STORED_COLUMNS` row as a stored version, decoded on first use (a missing count is counted now)."""
        record_id, version, body, tokens, valid_to, *scope_values, session, turn = row
        scope = _scope(tuple(scope_values))
        stored = StoredVersion(
            f"{record_id}:{version}", tokens=int(tokens or 0), current=int(valid_to) == OPEN_US, scope=scope,
            session_id=session, turn=int(turn) if turn is not None else None, decode=lambda: _version(body),
        )  # fmt: skip
        if tokens is None:
            stored.tokens = self._tokens.count(stored.record.text)
        return stored


def statements(script: str) -> list[str]:
    """The statements of a `;`-separated script."""
    return [statement for statement in script.split(";") if statement.strip()]


def create_read_schema(conn: SqlConn, dialect: SqlDialect) -> None:
    """Create the indexes of the read columns and the full-text index with its statistics, where missing."""
    for statement in statements(READ_INDEXES + TEXT_STATS):
        conn.run(statement)
    dialect.create_text_index(conn)


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
        clauses.append(_OPEN)
    return " AND ".join(clauses) or "1 = 1", args


def _event_filter(
    kinds: Sequence[MemoryKind] | None, session_id: str | None, since_us: int | None, until_us: int | None,
    *, required: bool, table: str = "",
) -> tuple[str, list[Any]]:  # fmt: skip
    """Clauses (each after ` AND `, on columns of `table` if given) and arguments on kinds, session and event time."""
    at = f"{table}." if table else ""
    clauses: list[str] = [f"{at}occurred_us IS NOT NULL"] if required else []
    args: list[Any] = []
    if kinds:
        clauses.append(f"{at}kind IN ({', '.join('?' * len(kinds))})")
        args += list(kinds)
    bounds = (("session_id = ?", session_id), ("occurred_us >= ?", since_us), ("occurred_us <= ?", until_us))
    for clause, value in bounds:
        if value is not None:
            clauses.append(at + clause)
            args.append(value)
    return "".join(f" AND {c}" for c in clauses), args


@lru_cache(maxsize=4096)
def _scope(values: tuple[str | None, ...]) -> Scope:
    """The scope of stored scope columns (read back as stored; many versions share one)."""
    fields: dict[str, Any] = {n: v for n, v in zip(SCOPE_FIELDS, values, strict=True) if v is not None}
    return Scope.model_construct(None, **fields)


STORED_COLUMNS = (
    "h.record_id, h.version, h.body, h.tokens, h.valid_to_us, h.user_id, h.agent_id, h.team_id, h.run_id, "
    "h.session_id, h.turn"
)
"""What a read of stored versions selects (see `SqlJournal._stored`)."""


def _by_keys(select: str, columns: Sequence[str], count: int) -> str:
    """A read of `select` from `hg_versions h` at `count` keys on `columns` (one index look-up each).

    A join to the keys as rows, not `(a, b) IN (VALUES ...)`, which SQLite answers with a full scan.
    """
    row = f"({', '.join('?' * len(columns))})"
    on = " AND ".join(f"h.{column} = asked.{column}" for column in columns)
    asked = f"WITH asked({', '.join(columns)}) AS (VALUES {', '.join([row] * count)})"
    return f"{asked} SELECT {select} FROM asked JOIN hg_versions h ON {on}"


def _entries(rows: Sequence[tuple[Any, ...]]) -> list[JournalEntry]:
    return [e for seq, body in rows if isinstance(e := decode_entry(int(seq), body), JournalEntry)]


def _version(body: str) -> MemoryRecord | None:
    found = decode_version("", body)
    return found if isinstance(found, MemoryRecord) else None
