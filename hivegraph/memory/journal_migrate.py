"""Bringing a SQLite journal written by hivegraph 0.1 (schema 1) to the current schema.

Schema 1 kept `ops`, `versions` and `cursors` with float-second times and no
schema version. Every op row is copied as it is (an entry that no longer
parses keeps its raw body, so `verify` reports it and nothing is lost); the
versions are re-derived from the entries in order; the old tables are kept
as `v1_*`. Cursors are not copied: every projection is re-derived once, which
also rewrites index items in the current format.
"""

from __future__ import annotations

import logging

from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.journal_codec import OPEN_US, decode_entry, decode_version, micros
from hivegraph.memory.journal_sql import SqlConn
from hivegraph.memory.types import SCOPE_FIELDS, MemoryRecord

log = logging.getLogger(__name__)


def needs_v1_migration(conn: SqlConn) -> bool:
    """Whether the database holds schema-1 tables not yet migrated."""
    return bool(conn.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ops'"))


def migrate_v1(conn: SqlConn) -> int:
    """Copy the schema-1 journal into the current tables (inside the caller's transaction); returns ops copied."""
    rows = conn.rows("SELECT seq, op_id, batch_id, at, actor, event, record_id, undo_of, body FROM ops ORDER BY seq")
    for seq, op_id, batch_id, at, actor, event, record_id, undo_of, body in rows:
        conn.run(
            "INSERT INTO hg_ops(seq, op_id, batch_id, at_us, actor, event, record_id, undo_of, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, op_id, batch_id, round(float(at) * 1_000_000), actor, event, record_id, undo_of, body),
        )
        entry = decode_entry(int(seq), body)
        if isinstance(entry, JournalEntry):
            for version in (entry.before, entry.after):
                if version is not None:
                    _put(conn, version)
    for table in ("ops", "versions", "cursors"):
        conn.run(f"ALTER TABLE {table} RENAME TO v1_{table}")
    log.warning("migrated %d journal entries from schema 1; the old tables are kept as v1_*", len(rows))
    return len(rows)


def _put(conn: SqlConn, record: MemoryRecord) -> None:
    """Write the latest state of one version; a second open version of a record closes the older one."""
    valid_to = micros(record.valid_to) if record.valid_to is not None else OPEN_US
    if valid_to == OPEN_US:
        _close_others(conn, record)
    scope = [getattr(record.scope, name) for name in SCOPE_FIELDS]
    conn.run(
        "INSERT INTO hg_versions(record_id, version, kind, hash, user_id, agent_id, team_id, run_id, created_us,"
        " valid_from_us, valid_to_us, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(record_id, version) DO UPDATE SET valid_to_us = excluded.valid_to_us, body = excluded.body",
        (str(record.id), record.version, record.kind, record.hash, *scope, micros(record.created_at),
         micros(record.valid_from), valid_to, record.model_dump_json()),
    )  # fmt: skip


def _close_others(conn: SqlConn, record: MemoryRecord) -> None:
    """Close other open versions of `record`'s id at its `valid_from` (schema 1 could leave two open)."""
    sql = "SELECT body FROM hg_versions WHERE record_id = ? AND version <> ? AND valid_to_us = ?"
    for (body,) in conn.rows(sql, (str(record.id), record.version, OPEN_US)):
        other = decode_version("", body)
        if isinstance(other, MemoryRecord):
            closed = other.model_copy(update={"valid_to": record.valid_from})
            conn.run(
                "UPDATE hg_versions SET valid_to_us = ?, body = ? WHERE record_id = ? AND version = ?",
                (micros(record.valid_from), closed.model_dump_json(), str(other.id), other.version),
            )
            log.warning("record %s had two open versions; closed version %d", other.id, other.version)
