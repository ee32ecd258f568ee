"""Episodic memory: the turns and events of sessions, with the time they happened.

Each turn is one record of kind `episodic` whose text is `"<speaker>: <text>"`
and whose metadata holds `speaker`, `session_id`, `turn` (its index in the
session), `occurred_at` (the event time as a POSIX timestamp),
`occurred_offset` (its UTC offset in seconds, so it reads back in its own
timezone) and, for filters and boosts, `occurred_year` and `occurred_month`
(calendar fields in the event's own timezone), `question` (the text ends with
a question mark) and `mentions_time` (the text has a time expression:
"yesterday", "last week", "two years ago", a weekday, a month, a year; turns
recorded before these two keys existed have neither, and no factor that
reads them applies to them). Event time is when it happened; `created_at` is
when it was recorded.

Recording a batch is one journal transaction. The turns go to
`MemoryStore.commit` as ADD entries built here rather than through
`MemoryStore.apply`, because `apply` treats an ADD whose text equals a current
record's as a duplicate (a NOOP, or a refusal inside one batch): right for
facts, wrong for events, where "Alice: Thanks!" said twice is two events.
The texts are still checked by the store's planner (empty or too long is
refused, and then nothing of the batch is written).

`search` can read the query before handing it to the `Retriever`, when its
settings ask for it (they are off by default: they suit conversational data
such as LoCoMo, where every turn has a named speaker and a date, and the
benchmark turns them on): a speaker of the scope named in the query becomes a
boost for that speaker's turns (and with `strip_speakers` the name leaves the
query text, since nearly every turn of a conversation mentions or is spoken by
its speakers); a month name or a year becomes a boost for events of that month
or year; a query that asks "when" becomes a boost for turns that mention a
time; and turns that ask a question can weigh less than the statements around
them (a question rarely holds the answer, and neighbour expansion still passes
its score to the reply). Explicit ranges go through `since` and `until`, which
filter on the event time. Speakers, sessions and event times are columns of the journal,
indexed by scope, so these reads never scan other scopes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.codec import micros
from hivegraph.memory.retrieval import Boost, Retrieval, Retriever
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import AddOp, MemoryOp, MemoryRecord, Metadata, Scalar, Scope, Source, Text, ensure_scope
from hivegraph.memory.validation import aware, check_text

KIND = "episodic"
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTH = re.compile(r"(?<!^)\b(" + "|".join(MONTHS) + r")\b")
_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")
_WHEN = re.compile(r"^\W*when\b", re.IGNORECASE)
_TIME = re.compile(
    r"\b(?:(?i:yesterday|today|tonight|tomorrow|ago|last|next|since|recently|weekend|week|month|year"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|" + "|".join(MONTHS) + r"|1[89]\d\d|2\d\d\d)\b"
)
"""A time expression in a turn's text (for `mentions_time`; month names capitalised, so "may" the verb is not one)."""


class Turn(BaseModel):
    """One turn of a conversation (or any event), as it is recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    speaker: Text = Field(min_length=1)
    text: Text
    occurred_at: AwareDatetime
    """When it happened (timezone-aware)."""
    turn: int | None = Field(default=None, ge=0)
    """Index in its session; None continues after the session's last recorded turn."""
    metadata: Metadata = Field(default_factory=dict[str, Scalar])
    """Extra metadata (finite scalars, checked); the episodic keys (`speaker`, `session_id`, ...) take precedence."""


@dataclass(frozen=True)
class Event:
    """A recorded turn, read back."""

    record: MemoryRecord
    speaker: str
    session_id: str
    turn: int
    occurred_at: datetime


@dataclass(frozen=True)
class EpisodicSettings:
    """How `search` reads a query."""

    speaker_boost: float = 1.0
    """Factor for the turns of a speaker the query names (1: off; LoCoMo: 2)."""
    time_boost: float = 1.0
    """Factor for the events in a month or year the query names (1: off; LoCoMo: 3)."""
    strip_speakers: bool = False
    """Take named speakers out of the query text (the boost stands for them; LoCoMo: True)."""
    when_boost: float = 1.0
    """Factor for turns that mention a time, when the query asks "when" (1: off; LoCoMo: 1.6)."""
    question_factor: float = 1.0
    """Factor for turns that ask a question (1: off; LoCoMo: 0.8)."""

    @property
    def reads_speakers(self) -> bool:
        """Whether a query is checked for the scope's speaker names."""
        return self.speaker_boost != 1.0 or self.strip_speakers


class EpisodicMemory:
    """Record turns with their session and time; find them by similarity, keyword, time or session."""

    def __init__(self, store: MemoryStore, retriever: Retriever, *, settings: EpisodicSettings | None = None) -> None:
        """Record into `store` and search through `retriever` (whose sources project `store`)."""
        self.store = store
        self.retriever = retriever
        self.settings = settings or EpisodicSettings()

    async def record(
        self,
        turns: Sequence[Turn],
        *,
        scope: Scope,
        session_id: str,
        actor: str = "episodic",
        source: Source | None = None,
        now: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> list[MemoryRecord]:
        """Record `turns` of session `session_id` in one journal transaction; returns the new records.

        Raises:
            MemoryStoreError: a turn's text is empty or too long (nothing is recorded).

        """
        if not turns:
            return []
        start = await self._next_turn(session_id, scope) if any(t.turn is None for t in turns) else 0
        ops: list[MemoryOp] = []
        for offset, turn in enumerate(turns):
            text = f"{turn.speaker}: {turn.text}"
            check_text(text, f"turn {offset} text", max_chars=self.store.max_text_chars)  # all, before any write
            index = turn.turn if turn.turn is not None else start + offset
            metadata = turn.metadata | _event_metadata(turn, session_id, index)
            ops.append(AddOp(text=text, kind=KIND, metadata=metadata, dedupe=False))  # a turn said twice happened twice
        result = await self.store.apply(
            ops, scope=scope, actor=actor, source=source, now=now, idempotency_key=idempotency_key
        )
        if result.refused:
            raise MemoryStoreError(result.refused[0].reason)
        return [entry.after for entry in result.applied if entry.after is not None]

    async def search(
        self,
        query: str,
        *,
        scope: Scope,
        k: int = 10,
        since: datetime | None = None,
        until: datetime | None = None,
        token_budget: int | None = None,
    ) -> Retrieval:
        """The turns in `scope` that best match `query`, within the event-time range and token budget.

        Raises:
            InvalidInputError: `since` or `until` is naive.

        """
        text, boosts = await self.read_query(query, scope=scope)
        return await self.retriever.retrieve(
            text, scope=scope, k=k, kinds=(KIND,), since=since, until=until, token_budget=token_budget, boosts=boosts
        )

    async def read_query(self, query: str, *, scope: Scope) -> tuple[str, list[Boost]]:
        """The query text to search with and the boosts the query implies (see the module docstring)."""
        boosts: list[Boost] = []
        speakers = (
            await self.store.journal.facet_values("speaker", scope=scope, kinds=(KIND,))
            if self.settings.reads_speakers
            else []
        )
        for speaker in speakers:
            pattern = re.compile(rf"\b{re.escape(speaker)}(?:['\u2019]s)?\b", re.IGNORECASE)
            if pattern.search(query):
                if self.settings.speaker_boost != 1.0:
                    boosts.append(Boost({"speaker": speaker}, self.settings.speaker_boost))
                if self.settings.strip_speakers:
                    query = " ".join(pattern.sub(" ", query).split())
        if self.settings.question_factor != 1.0:
            boosts.append(Boost({"question": True}, self.settings.question_factor))
        if self.settings.when_boost != 1.0 and _WHEN.search(query):
            boosts.append(Boost({"mentions_time": True}, self.settings.when_boost))
        if self.settings.time_boost == 1.0:
            return query, boosts
        months = sorted({MONTHS.index(m) + 1 for m in _MONTH.findall(query)})
        if months:
            boosts.append(Boost({"occurred_month": {"$in": months}}, self.settings.time_boost))
        years = sorted({int(y) for y in _YEAR.findall(query)})
        if years:
            boosts.append(Boost({"occurred_year": {"$in": years}}, self.settings.time_boost))
        return query, boosts

    async def between(self, since: datetime, until: datetime, *, scope: Scope) -> list[Event]:
        """The events in `scope` that happened in [since, until], in time order.

        Raises:
            InvalidInputError: `since` or `until` is naive.

        """
        since_us, until_us = micros(aware(since, "since")), micros(aware(until, "until"))
        records = await self.store.journal.events(scope=ensure_scope(scope), kinds=(KIND,), since_us=since_us,
                                                  until_us=until_us)  # fmt: skip
        return _in_order([e for r in records if (e := _event(r)) is not None])

    async def session(self, session_id: str, *, scope: Scope) -> list[Event]:
        """The turns of one session in `scope`, in turn order."""
        records = await self.store.journal.events(scope=ensure_scope(scope), kinds=(KIND,), session_id=session_id)
        events = [e for r in records if (e := _event(r)) is not None]
        return sorted(events, key=lambda e: (e.turn, e.occurred_at, e.record.id))

    async def _next_turn(self, session_id: str, scope: Scope) -> int:
        turns = [event.turn for event in await self.session(session_id, scope=scope)]
        return max(turns) + 1 if turns else 0


def _event_metadata(turn: Turn, session_id: str, index: int) -> dict[str, Scalar]:
    return {
        "speaker": turn.speaker,
        "session_id": session_id,
        "turn": index,
        "occurred_at": turn.occurred_at.timestamp(),
        "occurred_year": turn.occurred_at.year,
        "occurred_month": turn.occurred_at.month,
        "occurred_offset": int(offset.total_seconds()) if (offset := turn.occurred_at.utcoffset()) else 0,
        "question": turn.text.rstrip().endswith("?"),
        "mentions_time": _TIME.search(turn.text) is not None,
    }


def _event(record: MemoryRecord) -> Event | None:
    meta = record.metadata
    when, turn = meta.get("occurred_at"), meta.get("turn")
    if not isinstance(when, int | float) or not isinstance(turn, int):
        return None
    offset = meta.get("occurred_offset", 0)
    zone = timezone(timedelta(seconds=float(offset))) if isinstance(offset, int | float) else UTC
    moment = datetime.fromtimestamp(float(when), tz=zone)
    return Event(record, str(meta.get("speaker", "")), str(meta.get("session_id", "")), turn, moment)


def _in_order(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.occurred_at, e.session_id, e.turn, e.record.id))
