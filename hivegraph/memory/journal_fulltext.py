"""Keyword search in the SQL journals: what a backend's full-text index does, and what they share.

A backend's `SqlDialect` keeps a full-text index of the current versions and
matches in it; the scope and kind filters are part of the match, as tags (one
per scope field, a hash of its value; one for the kind). The index only
matches: the matches are ranked by BM25 (`journal_codec.bm25_rank`, as the
in-memory journal ranks) with term statistics that `index_version` and
`unindex_version` keep in two small tables, in the transaction that opens or
closes the version. The backends' own rankings are not used: FTS5's `bm25()`
counts each query term's documents by reading all its postings on every query
(10-40 ms at 100k versions for common terms), and PostgreSQL's `ts_rank` has
no document frequency at all.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hivegraph.memory.journal_codec import TextStats, index_terms
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import SEARCHED_KINDS, MemoryKind, MemoryRecord, Scope

if TYPE_CHECKING:
    from hivegraph.memory.journal_sql import SqlConn  # journal_sql imports this module

CHUNK = 400
"""Keys per statement (well under every backend's limit on parameters)."""
_SCOPE_TAGS = {"user_id": "u", "agent_id": "a", "team_id": "t", "run_id": "r"}


@dataclass(frozen=True)
class TextQuery:
    """A keyword search, as a backend's full-text index matches it."""

    scope_tags: list[str]
    """Tags a version must all have (its scope)."""
    kind_tags: list[str]
    """Tags of which it must have one (its kind); empty: any kind."""
    terms: list[str]
    """Index terms (`\\w+`, lowercase), of which it must have one; repeats weigh more."""
    since_us: int | None
    until_us: int | None
    k: int


class SqlDialect(ABC):
    """What differs between the SQL backends: the catalog and the full-text index of current versions.

    The index only matches; ranking (BM25 over the statistics in `hg_text_terms` and
    `hg_text_totals`, kept by `index_version` and `unindex_version`) is shared.
    """

    @abstractmethod
    def columns(self, conn: SqlConn, table: str) -> set[str]:
        """The names of the columns of `table`."""

    @abstractmethod
    def create_text_index(self, conn: SqlConn) -> None:
        """Create the full-text index if missing."""

    @abstractmethod
    def index_text(self, conn: SqlConn, record: MemoryRecord, tags: Sequence[str], terms: Sequence[str]) -> None:
        """Add a version that was just opened (its `hg_versions` row exists)."""

    @abstractmethod
    def unindex_text(self, conn: SqlConn, record_id: str, version: int) -> list[str] | None:
        """Drop a version that was just closed; its stored index terms, or None if it was not indexed."""

    @abstractmethod
    def clear_text_index(self, conn: SqlConn) -> None:
        """Drop every indexed version."""

    @abstractmethod
    def match_text(self, conn: SqlConn, query: TextQuery) -> list[tuple[str, int, str]]:
        """Every indexed version that matches `query`, as (record id, version, its index terms space-joined)."""

    def rank_text(self, conn: SqlConn, query: TextQuery) -> list[tuple[str, float]] | None:
        """The `query.k` best matches as (version id, score), ranked by the index itself; None: rank them here."""
        return None


TEXT_STATS = """
CREATE TABLE IF NOT EXISTS hg_text_terms (term TEXT PRIMARY KEY, docs BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS hg_text_totals (id INTEGER PRIMARY KEY, docs BIGINT NOT NULL, terms BIGINT NOT NULL);
"""
"""What BM25 needs of the indexed versions: how many hold each term; how many there are, with how many terms."""


def index_version(conn: SqlConn, dialect: SqlDialect, record: MemoryRecord) -> None:
    """Add an opened version to the full-text index and its statistics (a link, which is never searched, is not)."""
    if record.kind not in SEARCHED_KINDS:
        return
    terms = tokenize(record.text)
    dialect.index_text(conn, record, record_tags(record), terms)
    _count_terms(conn, terms, 1)


def unindex_version(conn: SqlConn, dialect: SqlDialect, record_id: str, version: int) -> None:
    """Drop a closed version from the full-text index and its statistics."""
    terms = dialect.unindex_text(conn, record_id, version)
    if terms is not None:
        _count_terms(conn, terms, -1)


def clear_text_index(conn: SqlConn, dialect: SqlDialect) -> None:
    """Empty the full-text index and its statistics."""
    dialect.clear_text_index(conn)
    conn.run("DELETE FROM hg_text_terms")
    conn.run("DELETE FROM hg_text_totals")


def _count_terms(conn: SqlConn, terms: Sequence[str], sign: int) -> None:
    conn.run("INSERT INTO hg_text_totals(id, docs, terms) VALUES (0, ?, ?) ON CONFLICT(id) DO UPDATE SET"
             " docs = hg_text_totals.docs + excluded.docs, terms = hg_text_totals.terms + excluded.terms",
             (sign, sign * len(terms)))  # fmt: skip
    distinct = list(dict.fromkeys(terms))
    for at in range(0, len(distinct), CHUNK):
        chunk = distinct[at : at + CHUNK]
        conn.run(f"INSERT INTO hg_text_terms(term, docs) VALUES {', '.join(['(?, ?)'] * len(chunk))}"
                 " ON CONFLICT(term) DO UPDATE SET docs = hg_text_terms.docs + excluded.docs",
                 [v for term in chunk for v in (term, sign)])  # fmt: skip
        if sign < 0:
            conn.run(f"DELETE FROM hg_text_terms WHERE docs <= 0 AND term IN ({', '.join('?' * len(chunk))})", chunk)


def text_stats(conn: SqlConn, terms: Sequence[str]) -> TextStats:
    """The statistics BM25 needs for a query of `terms`."""
    totals = conn.rows("SELECT docs, terms FROM hg_text_totals WHERE id = 0")
    wanted = list(dict.fromkeys(terms))
    held = conn.rows(f"SELECT term, docs FROM hg_text_terms WHERE term IN ({', '.join('?' * len(wanted))})", wanted)
    docs, total = (int(totals[0][0]), int(totals[0][1])) if totals else (0, 0)
    return TextStats(docs=docs, terms=total, df={str(term): int(n) for term, n in held})


def record_tags(record: MemoryRecord) -> list[str]:
    """The full-text tags of a version: one per scope field it sets, and its kind."""
    return [*scope_tags(record.scope), kind_tag(record.kind)]


def scope_tags(scope: Scope) -> list[str]:
    """One tag per field `scope` sets: a letter for the field and a hash of the value (any text fits)."""
    fields = scope.fields().items()
    return [f"{_SCOPE_TAGS[name]}_{hashlib.sha1(value.encode()).hexdigest()[:16]}" for name, value in fields]


def kind_tag(kind: str) -> str:
    """The full-text tag of a kind."""
    return f"k_{kind}"


def text_query(
    terms: Sequence[str], scope: Scope, kinds: Sequence[MemoryKind] | None, since_us: int | None,
    until_us: int | None, k: int,
) -> TextQuery | None:  # fmt: skip
    """The full-text query of a `keyword_search`, or None when it can match nothing."""
    words = index_terms(terms)
    if k <= 0 or not words:
        return None
    kind_tags = [kind_tag(kind) for kind in dict.fromkeys(kinds or ())]
    return TextQuery(scope_tags(scope), kind_tags, words, since_us, until_us, k)
