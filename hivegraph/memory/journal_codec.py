"""Reading stored journal rows back, tolerating rows that an older, laxer version wrote.

Rows are validated as they are written, so a row that no longer parses was
written before a check existed (a NaN metadata value stored as `null`, say).
Such a row must not stop the journal from opening: the offending metadata
values are dropped (they were never readable), and a row that still does not
parse is reported as `Unreadable` and left out of reads. `verify` lists both.

Also here, shared by every journal: the event columns a version's metadata
gives, the canonical key of a scope, version ids, and the BM25 scoring of
keyword search (so every backend ranks alike: the SQL journals match in their
full-text index and score the matches here, with statistics they keep in the
same transactions).
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from pydantic import ValidationError

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.codec import OPEN as OPEN_US
from hivegraph.memory.codec import micros
from hivegraph.memory.journal import JournalEntry, Unreadable
from hivegraph.memory.types import MemoryRecord, Scalar, Scope

STORED = {"stored": True}
"""Validation context for rows read back: the write-time checks are not repeated."""
MAX_BIGINT = 2**63 - 1
"""The largest value a BIGINT column holds; event values beyond it are left out."""
_TERM = re.compile(r"\w+")
__all__ = [
    "BM25_B",
    "BM25_K1",
    "MAX_BIGINT",
    "OPEN_US",
    "STORED",
    "EventColumns",
    "TextStats",
    "bm25_rank",
    "decode_entry",
    "decode_version",
    "event_columns",
    "event_order",
    "index_terms",
    "micros",
    "parse_version_id",
    "scope_key",
    "split_version_id",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventColumns:
    """What four well-known metadata keys (written by episodic memory) say about a version."""

    session_id: str | None = None
    """`str(metadata["session_id"])` when present."""
    turn: int | None = None
    """`metadata["turn"]` when it is an int (not a bool)."""
    speaker: str | None = None
    """`metadata["speaker"]` when it is a string."""
    occurred_us: int | None = None
    """`metadata["occurred_at"]` (POSIX seconds) in integer microseconds, when it is a finite number."""


def event_columns(metadata: Mapping[str, Scalar]) -> EventColumns:
    """The event columns of a version with this metadata."""
    session, turn, speaker, when = (metadata.get(k) for k in ("session_id", "turn", "speaker", "occurred_at"))
    occurred: int | None = None
    if isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when):
        occurred = round(when * 1_000_000)
    return EventColumns(
        session_id=str(session) if session is not None else None,
        turn=turn if isinstance(turn, int) and not isinstance(turn, bool) and abs(turn) <= MAX_BIGINT else None,
        speaker=speaker if isinstance(speaker, str) else None,
        occurred_us=occurred if occurred is not None and abs(occurred) <= MAX_BIGINT else None,
    )


def event_order(columns: EventColumns, record_id: str) -> tuple[int, bool, str, bool, int, str]:
    """The sort key of `events`: event time, session id, turn, record id (a missing value first)."""
    return (columns.occurred_us or 0, columns.session_id is not None, columns.session_id or "",
            columns.turn is not None, columns.turn or 0, record_id)  # fmt: skip


def index_terms(terms: Sequence[str]) -> list[str]:
    """The query terms that can be index terms (lowercase word characters), in order; the others match nothing."""
    return [term for term in terms if _TERM.fullmatch(term) and term == term.casefold()]


BM25_K1 = 1.2
"""BM25 term-frequency saturation."""
BM25_B = 0.75
"""BM25 length normalisation (0: none, 1: full)."""


@dataclass(frozen=True)
class TextStats:
    """Statistics of the indexed (current) versions of every scope, as BM25 needs them."""

    docs: int
    """How many versions are indexed."""
    terms: int
    """How many index terms they hold together."""
    df: Mapping[str, int]
    """For (at least) each query term, how many versions hold it."""


def bm25_rank(
    terms: Sequence[str], candidates: Iterable[tuple[str, str]], stats: TextStats, k: int
) -> list[tuple[str, float]]:
    """The `k` best of `candidates` (version id, its index terms space-joined) for `terms`, best first.

    Okapi BM25 with Lucene's IDF `log(1 + (N - n + 0.5) / (n + 0.5))`, which is never negative; a
    repeated query term counts as often as it is repeated. Candidates sharing no term are left out;
    ties go by version id. Term frequencies are counted in the text itself (with every term set
    apart by its own spaces, so repeats next to each other all count): no per-term objects, which
    matters when a broad search scores tens of thousands of candidates.
    """
    query = Counter(terms)
    pairs = list(candidates)
    ids = [version_id for version_id, _ in pairs]
    texts = [f" {text.replace(' ', '  ')} " for _, text in pairs]
    docs = max(stats.docs, 1)
    average = stats.terms / docs or 1.0
    norms = [BM25_K1 * (1.0 - BM25_B + BM25_B * (text.count(" ") + 1 if text else 0) / average) for _, text in pairs]
    scores: dict[int, float] = {}
    for term, repeats in query.items():  # one tight pass per term
        held = max(stats.df.get(term, 0), 1)  # at least the candidate holding it (statistics read a moment apart)
        weight = repeats * math.log(1.0 + (max(docs, held) - held + 0.5) / (held + 0.5)) * (BM25_K1 + 1.0)
        needle = f" {term} "
        for n, count in enumerate([text.count(needle) for text in texts]):
            if count:
                scores[n] = scores.get(n, 0.0) + weight * count / (count + norms[n])
    ranked = heapq.nsmallest(max(k, 0), ((-score, ids[n]) for n, score in scores.items()))
    return [(version_id, -score) for score, version_id in ranked]


def scope_key(scope: Scope) -> str:
    """The canonical text of one exact scope (the fields it sets, as sorted JSON)."""
    return json.dumps(scope.fields(), sort_keys=True)


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def split_version_id(version_id: str) -> tuple[str, int] | None:
    """The record id (canonical text) and version of `<record id>:<version>`, or None when it is not one."""
    record, _, number = version_id.rpartition(":")
    if _CANONICAL_UUID.fullmatch(record) and number.isascii() and number.isdigit() and int(number) <= MAX_BIGINT:
        return record, int(number)
    parsed = parse_version_id(version_id)
    return (str(parsed[0]), parsed[1]) if parsed is not None else None


def parse_version_id(version_id: str) -> tuple[UUID, int] | None:
    """The record id and version of `<record id>:<version>`, or None when it is not one."""
    record, _, number = version_id.rpartition(":")
    if not (number.isascii() and number.isdigit()) or int(number) > MAX_BIGINT:
        return None
    try:
        return UUID(record), int(number)
    except ValueError:
        return None


def decode_entry(seq: int, body: str) -> JournalEntry | Unreadable:
    """The entry stored at `seq`, or why it cannot be read."""
    try:
        entry = JournalEntry.model_validate_json(body, context=STORED)
    except (ValidationError, MemoryStoreError, ValueError) as exc:
        salvaged = _salvage(body, exc)
        if isinstance(salvaged, Unreadable):
            return Unreadable(f"op {seq}", salvaged.problem)
        entry = JournalEntry.model_validate(salvaged, context=STORED)
    return entry.model_copy(update={"seq": seq})


def decode_version(where: str, body: str) -> MemoryRecord | Unreadable:
    """The record version stored as `body`, or why it cannot be read."""
    try:
        return MemoryRecord.model_validate_json(body, context=STORED)
    except (ValidationError, MemoryStoreError, ValueError) as exc:
        salvaged = _salvage(body, exc, record=True)
        if isinstance(salvaged, Unreadable):
            return Unreadable(where, salvaged.problem)
        return MemoryRecord.model_validate(salvaged, context=STORED)


def _salvage(body: str, exc: Exception, *, record: bool = False) -> dict[str, Any] | Unreadable:
    """`body` with unreadable metadata values dropped, if that makes it valid."""
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            return Unreadable("", "not a JSON object")
        parsed = cast(dict[str, Any], data)
        for part in [parsed] if record else [parsed.get("op"), parsed.get("before"), parsed.get("after")]:
            _drop_bad_metadata(part)
        (MemoryRecord if record else JournalEntry).model_validate(parsed, context=STORED)
    except (ValidationError, MemoryStoreError, ValueError, TypeError):
        return Unreadable("", f"does not parse: {str(exc).splitlines()[0]:.200}")
    return parsed


def _drop_bad_metadata(part: object) -> None:
    if not isinstance(part, dict):
        return
    metadata = cast(dict[str, Any], part).get("metadata")
    if not isinstance(metadata, dict):
        return
    values = cast(dict[str, Any], metadata)
    for key in [k for k, v in values.items() if not _scalar(v)]:
        del values[key]


def _scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)
