"""Bringing a journal of schema 2 (or one just brought over from schema 1) to schema 3.

Schema 3 serves the read path: each `hg_versions` row also holds its token
count and the event columns of its metadata, and the backend's full-text
index holds the current versions. The upgrade runs inside the transaction
that opens the journal, so it happens once, all or nothing, while every other
writer waits: the columns are added where missing, every version's are filled
from its stored body (tokens are counted for closed versions too, since
`versions` reads any version), and the full-text index is rebuilt from the
current versions. Running it twice gives the same result. A version whose
body no longer parses keeps empty columns and stays out of the index (reads
leave it out already; `verify` reports it).
"""

from __future__ import annotations

import logging

from hivegraph.memory.journal_codec import OPEN_US, decode_version
from hivegraph.memory.journal_fulltext import SqlDialect, clear_text_index, index_version
from hivegraph.memory.journal_sql import READ_COLUMNS, SqlConn, create_read_schema, version_row
from hivegraph.memory.types import MemoryRecord
from hivegraph.models.tokens import TokenCounter

log = logging.getLogger(__name__)
PAGE = 500
"""Versions read per statement while filling the columns."""
_SET = ", ".join(f"{name} = ?" for name in READ_COLUMNS)
_FILL = f"UPDATE hg_versions SET {_SET} WHERE record_id = ? AND version = ?"


def migrate_v3(conn: SqlConn, dialect: SqlDialect, tokens: TokenCounter) -> int:
    """Add and fill the read columns and the full-text index, inside the caller's transaction.

    Returns:
        How many versions were filled.

    """
    have = dialect.columns(conn, "hg_versions")
    for name, sql_type in READ_COLUMNS.items():
        if name not in have:
            conn.run(f"ALTER TABLE hg_versions ADD COLUMN {name} {sql_type}")
    create_read_schema(conn, dialect)
    clear_text_index(conn, dialect)
    filled = 0
    last: tuple[str, int] = ("", -1)
    while rows := conn.rows(
        "SELECT record_id, version, valid_to_us, body FROM hg_versions WHERE (record_id, version) > (?, ?)"
        " ORDER BY record_id, version LIMIT ?",
        (*last, PAGE),
    ):
        for record_id, version, valid_to_us, body in rows:
            record = decode_version("", body)
            if isinstance(record, MemoryRecord) and (str(record.id), record.version) == (record_id, version):
                _fill(conn, dialect, tokens, record, int(valid_to_us))
                filled += 1
        last = (str(rows[-1][0]), int(rows[-1][1]))
    log.info("journal schema 3: filled the read columns of %d versions and indexed the current ones", filled)
    return filled


def _fill(conn: SqlConn, dialect: SqlDialect, tokens: TokenCounter, record: MemoryRecord, valid_to_us: int) -> None:
    values = version_row(record, valid_to_us, tokens.count(record.text))[-len(READ_COLUMNS) :]
    conn.run(_FILL, (*values, str(record.id), record.version))
    if valid_to_us == OPEN_US:
        index_version(conn, dialect, record)
