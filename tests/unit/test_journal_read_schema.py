"""Schema 3 of the SQLite journal: the upgrade from schema 2 (and 1), the full-text index under
rolled-back ops, the query plans of the read path, and the token encoding a journal keeps."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from hivegraph.errors import ConfigError, ConflictError, JournalSchemaError
from hivegraph.memory.journal import SCHEMA_VERSION, Batch, JournalEntry, TurnKey
from hivegraph.memory.journal_codec import OPEN_US, micros
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.journal_sql import SqlConn, SqlTxn
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.planner import apply_batch
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import AddOp, MemoryRecord, Scope, UpdateOp
from hivegraph.models.tokens import FALLBACK_ENCODING, TokenCounter

ADA = Scope(user_id="ada")
ADA_PLANNER = Scope(user_id="ada", agent_id="planner")
BOB = Scope(user_id="bob")
T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
V2_SCHEMA = f"""
CREATE TABLE hg_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE hg_ops (
    seq BIGINT PRIMARY KEY, op_id TEXT NOT NULL UNIQUE, batch_id TEXT NOT NULL, at_us BIGINT NOT NULL,
    actor TEXT NOT NULL, event TEXT NOT NULL, record_id TEXT, undo_of TEXT, body TEXT NOT NULL
);
CREATE INDEX hg_ops_record ON hg_ops(record_id);
CREATE TABLE hg_versions (
    record_id TEXT NOT NULL, version BIGINT NOT NULL, kind TEXT NOT NULL, hash TEXT NOT NULL,
    user_id TEXT, agent_id TEXT, team_id TEXT, run_id TEXT,
    created_us BIGINT NOT NULL, valid_from_us BIGINT NOT NULL, valid_to_us BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (record_id, version)
);
CREATE UNIQUE INDEX hg_versions_open ON hg_versions(record_id) WHERE valid_to_us = {OPEN_US};
CREATE INDEX hg_versions_user ON hg_versions(user_id, valid_to_us, kind);
CREATE INDEX hg_versions_hash ON hg_versions(hash);
CREATE TABLE hg_cursors (name TEXT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE hg_keys (key TEXT PRIMARY KEY, scope TEXT NOT NULL, at_us BIGINT NOT NULL);
INSERT INTO hg_meta(key, value) VALUES ('schema_version', '2');
"""
"""The schema hivegraph wrote before schema 3 (copied from journal_sql.py at that time)."""


Execute = Callable[[str, Sequence[Any]], object]
"""Runs one statement with `?` placeholders (on SQLite or, translated, on PostgreSQL)."""


def _v2_version(execute: Execute, record: MemoryRecord, body: str | None = None) -> None:
    valid_to = micros(record.valid_to) if record.valid_to else OPEN_US
    execute(
        "INSERT INTO hg_versions(record_id, version, kind, hash, user_id, agent_id, team_id, run_id, created_us,"
        " valid_from_us, valid_to_us, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (str(record.id), record.version, record.kind, record.hash, record.scope.user_id, record.scope.agent_id,
         None, None, micros(record.created_at), micros(record.valid_from), valid_to, body or record.model_dump_json()),
    )  # fmt: skip


def write_v2_journal(execute: Execute) -> dict[str, MemoryRecord]:
    """A schema-2 journal as hivegraph wrote it: facts, an updated fact, an episodic turn, another user, junk."""
    turn_meta = {"session_id": "s1", "turn": 3, "speaker": "Mel", "occurred_at": T0.timestamp()}
    records = {
        "tea": MemoryRecord(text="Ada likes green tea", scope=ADA, created_at=T0, valid_from=T0),
        "turn": MemoryRecord(text="Mel: we went hiking at the lake", kind="episodic", metadata=turn_meta,
                             scope=ADA_PLANNER, created_at=T0, valid_from=T0),
        "lisbon": MemoryRecord(text="Ada lives in Lisbon", scope=ADA, created_at=T0, valid_from=T0),
        "bob": MemoryRecord(text="Bob likes black tea", scope=BOB, created_at=T0, valid_from=T0),
    }  # fmt: skip
    later = T0 + timedelta(days=1)
    lisbon = records["lisbon"]
    records["lisbon"] = lisbon.model_copy(update={"valid_to": later})
    records["porto"] = MemoryRecord(id=lisbon.id, version=2, text="Ada lives in Porto", scope=ADA, created_at=T0,
                                    valid_from=later)  # fmt: skip
    for statement in filter(str.strip, V2_SCHEMA.split(";")):
        execute(statement, ())
    for seq, record in enumerate(records.values(), 1):
        entry = JournalEntry(seq=seq, batch_id=uuid4(), actor="v2", scope=record.scope, op=AddOp(text=record.text),
                             after=record)  # fmt: skip
        execute(
            "INSERT INTO hg_ops VALUES (?, ?, ?, ?, 'v2', 'ADD', ?, NULL, ?)",
            (seq, str(entry.op_id), str(entry.batch_id), micros(entry.at), str(record.id), entry.model_dump_json()),
        )
        _v2_version(execute, record)
    _v2_version(execute, MemoryRecord(text="junk", scope=ADA), body='{"not": "a record"}')
    return records


def write_v2_file(path: Path) -> dict[str, MemoryRecord]:
    """`write_v2_journal` into a SQLite file."""
    with closing(sqlite3.connect(path)) as db:
        records = write_v2_journal(db.execute)
        db.commit()
    return records


def _rows(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


def assert_text_stats_agree(path: Path) -> None:
    """The full-text index holds exactly the current (readable) versions' terms, and the BM25 statistics count them."""
    docs = _rows(path, "SELECT text_id, record_id, version, terms FROM hg_fts_docs")
    bodies = [str(terms).split() for *_, terms in docs]
    held = Counter(term for body in bodies for term in set(body))
    assert _rows(path, "SELECT docs, terms FROM hg_text_totals") in ([(len(bodies), sum(map(len, bodies)))], [])
    assert dict(_rows(path, "SELECT term, docs FROM hg_text_terms")) == held
    current = _rows(path, f"SELECT record_id, version FROM hg_versions WHERE valid_to_us = {OPEN_US} AND tokens >= 0")
    assert sorted((rid, v) for _, rid, v, _ in docs) == sorted(current)
    with closing(sqlite3.connect(path)) as db:
        assert sorted(r for (r,) in db.execute("SELECT rowid FROM hg_fts")) == sorted(d[0] for d in docs)
        db.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, hg_fts, 'col')")
        assert dict(db.execute("SELECT term, doc FROM temp.vocab WHERE col = 'body'").fetchall()) == held


async def test_a_schema_2_journal_is_upgraded_in_place_with_nothing_lost(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    records = write_v2_file(path)
    before = _rows(path, "SELECT record_id, version, valid_to_us, body FROM hg_versions ORDER BY record_id, version")
    journal = SqliteJournal(path, token_encoding="cl100k_base")
    assert journal.token_encoding == "cl100k_base"  # a journal without an encoding takes the one asked for
    assert _rows(path, "SELECT record_id, version, valid_to_us, body FROM hg_versions ORDER BY 1, 2") == before
    assert dict(_rows(path, "SELECT key, value FROM hg_meta")) == {
        "schema_version": str(SCHEMA_VERSION), "token_encoding": "cl100k_base"
    }  # fmt: skip
    counter = TokenCounter(encoding_name="cl100k_base")
    filled = _rows(path, "SELECT record_id, version, tokens, scope_key, session_id, turn, speaker, occurred_us"
                         " FROM hg_versions WHERE tokens IS NOT NULL")  # fmt: skip
    want = {(str(r.id), r.version): counter.count(r.text) for r in records.values()}
    assert {(rid, v): tokens for rid, v, tokens, *_ in filled} == want  # closed versions too; the junk row not
    turn = records["turn"]
    assert (str(turn.id), 1, want[(str(turn.id), 1)], '{"agent_id": "planner", "user_id": "ada"}', "s1", 3, "Mel",
            micros(T0)) in filled  # fmt: skip

    found = await journal.keyword_search(tokenize("tea Lisbon Porto hiking"), scope=ADA)
    assert {v for v, _ in found} == {records[n].version_id for n in ("tea", "porto", "turn")}
    assert await journal.keyword_search(tokenize("Lisbon"), scope=ADA) == []  # the closed version is not indexed
    assert _rows(path, "SELECT COUNT(*) FROM hg_fts") == [(4,)]  # the current, readable versions
    assert_text_stats_agree(path)
    key = TurnKey(ADA_PLANNER, "s1", 3)
    assert (await journal.turns([key]))[key].record == turn
    assert [r.id for r in await journal.events(scope=ADA)] == [turn.id]
    assert len(await journal.unreadable()) == 1  # the junk row: kept, still reported, not indexed
    await journal.aclose()

    again = SqliteJournal(path, token_encoding="o200k_base")  # reopening changes nothing, the encoding included
    assert again.token_encoding == "cl100k_base"
    assert _rows(path, "SELECT COUNT(*) FROM hg_fts") == [(4,)]
    assert {v for v, _ in await again.keyword_search(["tea"], scope=Scope())} == {
        records["tea"].version_id, records["bob"].version_id
    }  # fmt: skip
    await again.aclose()


async def test_the_upgrade_rolls_back_whole_when_it_fails(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    write_v2_file(path)
    with pytest.raises(ConfigError):
        SqliteJournal(path, token_encoding="no_such_encoding")
    assert _rows(path, "SELECT value FROM hg_meta WHERE key = 'schema_version'") == [("2",)]
    assert "tokens" not in {row[1] for row in _rows(path, "PRAGMA table_info(hg_versions)")}
    journal = SqliteJournal(path)
    assert journal.token_encoding == FALLBACK_ENCODING
    await journal.aclose()


async def test_a_journal_keeps_the_encoding_it_was_created_with(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = SqliteJournal(path, token_encoding="cl100k_base")
    text = "Ada: जानकारी हिन्दी भाषा"
    result = await journal.submit(Batch(ops=[AddOp(text=text)], scope=ADA, actor="t"))
    record = result.applied[0].after
    assert record is not None
    await journal.aclose()
    reopened = SqliteJournal(path)
    assert reopened.token_encoding == "cl100k_base"
    stored = (await reopened.versions([record.version_id]))[record.version_id]
    assert stored.tokens == TokenCounter(encoding_name="cl100k_base").count(text)
    assert stored.tokens != TokenCounter(encoding_name="o200k_base").count(text)  # the two really differ here
    await reopened.aclose()
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE hg_meta SET value = 'p999k_future' WHERE key = 'token_encoding'")
        db.commit()
    with pytest.raises(JournalSchemaError, match="p999k_future"):
        SqliteJournal(path)
    with pytest.raises(ConfigError, match="no_such_encoding"):
        SqliteJournal(tmp_path / "new.sqlite", token_encoding="no_such_encoding")


async def test_a_rolled_back_op_leaves_nothing_in_the_full_text_index(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = SqliteJournal(path)
    added = await journal.submit(Batch(ops=[AddOp(text="Ada keeps bees")], scope=ADA, actor="t"))
    bees = added.applied[0].after
    assert bees is not None
    planted = bees.model_copy(update={"version": 2, "text": "planted", "valid_to": T0})
    with closing(sqlite3.connect(path)) as db:  # a closed version 2 the planner does not know of
        _v2_version(db.execute, planted)
        db.execute("UPDATE hg_versions SET tokens = 1 WHERE version = 2")
        db.commit()
    ops = [AddOp(text="Ada plants tulips"), UpdateOp(record_id=bees.id, text="Ada keeps wasps")]
    result = await journal.submit(Batch(ops=ops, scope=ADA, actor="t"))
    assert [r.code for r in result.refused] == ["conflict"]  # closing version 1 was rolled back with the op
    assert len(result.applied) == 1
    assert await journal.keyword_search(["wasp"], scope=ADA) == []
    assert [v for v, _ in await journal.keyword_search(["bee"], scope=ADA)] == [bees.version_id]
    assert [v for v, _ in await journal.keyword_search(["tulip"], scope=ADA)] != []
    assert _rows(path, "SELECT COUNT(*) FROM hg_fts") == _rows(path, "SELECT COUNT(*) FROM hg_fts_docs") == [(2,)]
    assert _rows(path, "SELECT docs FROM hg_text_terms WHERE term = 'bee'") == [(1,)]
    assert_text_stats_agree(path)

    class FailsAfterOpening(SqlTxn):
        """Fails each op after its version and full-text row are written (a failure late in the op)."""

        def _open(self, record: MemoryRecord) -> None:
            super()._open(record)
            raise ConflictError(str(record.id), "failed after writing")

    def failing(conn: SqlConn) -> object:
        txn = FailsAfterOpening(conn, dialect=journal.dialect)
        return apply_batch(txn, Batch(ops=[AddOp(text="Ada paints owls")], scope=ADA, actor="t"))

    await journal._write(failing)  # pyright: ignore[reportPrivateUsage] - a transaction that fails is the point
    assert await journal.keyword_search(["owl"], scope=ADA) == []
    assert _rows(path, "SELECT COUNT(*) FROM hg_fts") == [(2,)]
    assert_text_stats_agree(path)
    await journal.aclose()


async def test_sqlite_matches_what_the_in_memory_reference_matches(tmp_path: Path) -> None:
    """Both match the same versions; scores and order may differ where a term is in over half the documents.

    SQLite ranks with FTS5's BM25, whose IDF is floored near 0 for such terms; the reference uses Lucene's.
    """
    texts = [
        "Ada likes green tea in the morning", "Ada likes black coffee", "Bob drinks tea and tea and more tea",
        "Ada went hiking with Bob near the lake", "a long note about tea, coffee, cakes, walks, lakes and hills",
        "Coffee again", "Ada's cat sleeps",
    ]  # fmt: skip
    journals = [SqliteJournal(tmp_path / "journal.sqlite"), InMemoryJournal()]
    for journal in journals:
        for n, text in enumerate(texts):
            await journal.submit(Batch(ops=[AddOp(text=text)], scope=ADA if n % 3 else BOB, actor="t"))
    for query, scope in [("tea coffee", ADA), ("tea tea lake", Scope()), ("Ada Bob hiking", BOB), ("cat", BOB)]:
        ranked: list[list[str]] = []
        for journal in journals:
            found = await journal.keyword_search(tokenize(query), scope=scope)
            texts_of = await journal.versions([v for v, _ in found])
            ranked.append([texts_of[v].record.text for v, _ in found])
        assert ranked[0], query
        assert set(ranked[0]) == set(ranked[1]), query
    await journals[0].aclose()


async def _fill(journal: SqliteJournal, users: int = 20, per_user: int = 15) -> list[MemoryRecord]:
    opened: list[MemoryRecord] = []
    for u in range(users):
        ops = [AddOp(text=f"user {u} note {n} about tea and walks", kind="episodic", dedupe=False,
                     metadata={"session_id": f"s{n % 3}", "turn": n, "speaker": f"p{n % 4}",
                               "occurred_at": T0.timestamp() + n}) for n in range(per_user)]  # fmt: skip
        result = await journal.submit(Batch(ops=ops, scope=Scope(user_id=f"u{u}", agent_id="a"), actor="t"))
        opened += [e.after for e in result.applied if e.after is not None]
    return opened


READS: dict[str, Callable[[SqliteJournal, list[MemoryRecord]], Awaitable[object]]] = {
    "versions": lambda j, r: j.versions([v.version_id for v in r[::37]]),
    "turns": lambda j, r: j.turns([TurnKey(v.scope, "s1", 4) for v in r[::50]]),
    "keyword_search": lambda j, r: j.keyword_search(["tea", "walk"], scope=Scope(user_id="u3")),
    "keyword_search_timed": lambda j, r: j.keyword_search(["tea"], scope=Scope(user_id="u3"), since_us=1),
    "facet_values": lambda j, r: j.facet_values("speaker", scope=Scope(user_id="u3")),
    "events": lambda j, r: j.events(scope=Scope(user_id="u3"), since_us=micros(T0)),
    "events_of_a_session": lambda j, r: j.events(scope=Scope(user_id="u3"), session_id="s1"),
    "last_seq": lambda j, r: j.last_seq(),
}
"""Reads of the read path that must be answered from indexes (user-scoped, or by key)."""


@pytest.mark.parametrize("name", list(READS))
async def test_reads_use_indexes_not_full_scans(tmp_path: Path, name: str) -> None:
    journal = SqliteJournal(tmp_path / "journal.sqlite", synchronous="OFF")
    opened = await _fill(journal)
    statements: list[str] = []
    journal.trace(statements.append)
    assert await READS[name](journal, opened)
    journal.trace(None)
    reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert reads
    with closing(sqlite3.connect(tmp_path / "journal.sqlite")) as db:
        plans = [row[3] for sql in reads for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
    allowed = ("SCAN hg_fts VIRTUAL TABLE", "SCAN asked", "SCAN main.hg_fts_config")
    # the FTS5 match itself; the keys asked for; FTS5's own settings, read once by each new connection
    scans = [step for step in plans if step.startswith("SCAN") and "CONSTANT ROWS" not in step
             and not step.startswith(allowed)]  # fmt: skip
    assert scans == [], plans
    await journal.aclose()


@pytest.mark.parametrize("name", list(READS))
async def test_no_statement_runs_on_the_event_loop_thread(tmp_path: Path, name: str) -> None:
    # An ASGI server (LangGraph's, say) refuses blocking calls on its loop: every read and write goes to a thread.
    journal = SqliteJournal(tmp_path / "journal.sqlite", synchronous="OFF")
    threads: Counter[bool] = Counter()
    loop_thread = threading.get_ident()
    journal.trace(lambda _sql: threads.update([threading.get_ident() == loop_thread]))
    records = await _fill(journal, users=2, per_user=5)
    await READS[name](journal, records)
    await journal.aclose()
    assert threads[False] > 0
    assert threads[True] == 0
