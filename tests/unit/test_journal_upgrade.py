"""A journal written by hivegraph 0.1 (schema 1, laxer checks) still opens, loses nothing, and is verified."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from hivegraph.errors import JournalSchemaError
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import AddOp, MemoryRecord, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder
from hivegraph.models.tokens import FALLBACK_ENCODING

ADA = Scope(user_id="ada")
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
V1_SCHEMA = """
CREATE TABLE ops (seq INTEGER PRIMARY KEY AUTOINCREMENT, op_id TEXT NOT NULL UNIQUE, batch_id TEXT NOT NULL,
    at REAL NOT NULL, actor TEXT NOT NULL, event TEXT NOT NULL, record_id TEXT, undo_of TEXT, body TEXT NOT NULL);
CREATE TABLE versions (version_id TEXT PRIMARY KEY, record_id TEXT NOT NULL, version INTEGER NOT NULL,
    kind TEXT NOT NULL, hash TEXT NOT NULL, user_id TEXT, agent_id TEXT, team_id TEXT, run_id TEXT,
    created_at REAL NOT NULL, valid_from REAL NOT NULL, valid_to REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""


def _v1_row(db: sqlite3.Connection, entry: JournalEntry, body: str) -> None:
    record = entry.after or entry.before
    db.execute(
        "INSERT INTO ops(op_id, batch_id, at, actor, event, record_id, undo_of, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (str(entry.op_id), str(entry.batch_id), entry.at.timestamp(), entry.actor, entry.op.event,
         str(record.id) if record else None, None, body),
    )  # fmt: skip


def write_v1_journal(path: Path) -> tuple[MemoryRecord, MemoryRecord]:
    """A schema-1 file: an ADD whose metadata holds a null (a NaN as 0.1 journaled it), an ADD + UPDATE, junk."""
    tea = MemoryRecord(text="Ada likes tea", metadata={"score": 1.0}, scope=ADA, created_at=T0, valid_from=T0)
    lisbon = MemoryRecord(text="Ada lives in Lisbon", scope=ADA, created_at=T0, valid_from=T0)
    later = T0 + timedelta(days=1)
    porto = lisbon.model_copy(update={"text": "Ada lives in Porto", "version": 2, "valid_from": later})
    entries = [
        JournalEntry(batch_id=uuid4(), at=T0, actor="v1", scope=ADA, op=AddOp(text=tea.text), after=tea),
        JournalEntry(batch_id=uuid4(), at=T0, actor="v1", scope=ADA, op=AddOp(text=lisbon.text), after=lisbon),
        JournalEntry(batch_id=uuid4(), at=later, actor="v1", scope=ADA,
                     op=UpdateOp(record_id=lisbon.id, text=porto.text),
                     before=lisbon.model_copy(update={"valid_to": later}), after=porto),
    ]  # fmt: skip
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    poisoned = json.loads(entries[0].model_dump_json())
    poisoned["after"]["metadata"]["score"] = None
    _v1_row(db, entries[0], json.dumps(poisoned))
    for entry in entries[1:]:
        _v1_row(db, entry, entry.model_dump_json())
    _v1_row(db, entries[1].model_copy(update={"op_id": uuid4()}), '{"not": "an entry"}')
    db.commit()
    db.close()
    return tea, porto


async def test_a_schema_1_journal_opens_with_everything_it_held(tmp_path: Path) -> None:
    tea, porto = write_v1_journal(tmp_path / "journal.sqlite")
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    current = {r.text: r for r in await journal.records(scope=ADA)}
    assert set(current) == {"Ada likes tea", "Ada lives in Porto"}
    assert current["Ada likes tea"].metadata == {}  # the unreadable null is dropped, the record kept
    assert current["Ada lives in Porto"].version == porto.version and current["Ada likes tea"].id == tea.id
    assert len(await journal.records(scope=ADA, all_versions=True)) == 3
    assert await journal.last_seq() == 4  # the junk row is kept, not lost
    assert [u.where for u in await journal.unreadable()] == ["op 4"]
    store = await MemoryStore(InMemorySpace(HashEmbedder()), journal=journal).open()
    assert {h.text for h in await store.search("Ada", scope=ADA, k=5)} == set(current)
    report = await store.verify()
    assert not report.divergences and [u.where for u in report.unreadable] == ["op 4"]
    added = await store.add("Ada plays the cello", scope=ADA)  # writes go on after the bad entry
    assert added.version == 1
    await store.aclose()
    tables = sqlite3.connect(tmp_path / "journal.sqlite").execute("SELECT name FROM sqlite_master").fetchall()
    assert ("v1_ops",) in tables  # the old tables are kept beside the new ones


async def test_a_schema_1_journal_is_brought_to_schema_3(tmp_path: Path) -> None:
    tea, porto = write_v1_journal(tmp_path / "journal.sqlite")
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    found = await journal.keyword_search(tokenize("tea Porto Lisbon"), scope=ADA)
    assert {v for v, _ in found} == {tea.version_id, porto.version_id}
    with closing(sqlite3.connect(tmp_path / "journal.sqlite")) as db:
        assert db.execute("SELECT value FROM hg_meta WHERE key = 'schema_version'").fetchall() == [("3",)]
    assert journal.token_encoding == FALLBACK_ENCODING
    await journal.aclose()


async def test_a_journal_from_a_newer_hivegraph_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    await SqliteJournal(path).aclose()
    db = sqlite3.connect(path)
    db.execute("UPDATE hg_meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(JournalSchemaError, match="schema version 99"):
        SqliteJournal(path)
