"""Episodic memory: the turns and events of sessions, with the time they happened.

Each turn is one record of kind `episodic` whose text is `"<speaker>: <text>"`
and whose metadata holds `speaker`, `session_id`, `turn` (its index in the
session), `occurred_at` (the event time as a POSIX timestamp),
`occurred_offset` (its UTC offset in seconds, so it reads back in its own
timezone) and, for filters and boosts, `occurred_year` and `occurred_month`
(calendar fields in the event's own timezone). Event time is when it happened; `created_at` is
when it was recorded.

Recording a batch is one journal transaction. The turns go to
`MemoryStore.commit` as ADD entries built here rather than through
`MemoryStore.apply`, because `apply` treats an ADD whose text equals a current
record's as a duplicate (a NOOP, or a refusal inside one batch): right for
facts, wrong for events, where "Alice: Thanks!" said twice is two events.
The texts are still checked by the store's planner (empty or too long is
refused, and then nothing of the batch is written).

`search` reads the query before handing it to the `HybridRetriever`: a
speaker of the scope named in the query becomes a boost for that speaker's
turns (and the name leaves the query text, since nearly every turn of a
conversation mentions or is spoken by its speakers); a month name or a year
becomes a boost for events of that month or year. Explicit ranges go through
`since` and `until`, which filter on the event time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hivegraph.errors import ConfigError, MemoryStoreError
from hivegraph.memory.codec import META_PREFIX, from_item, scope_filter
from hivegraph.memory.retrieval import Boost, HybridRetriever, Retrieval, timestamp
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import Filter
from hivegraph.memory.types import AddOp, MemoryOp, MemoryRecord, Metadata, Scalar, Scope, Source, Text
from hivegraph.memory.validation import check_text

KIND = "episodic"
SPEAKER_KEY = META_PREFIX + "speaker"
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTH = re.compile(r"(?<!^)\b(" + "|".join(MONTHS) + r")\b")
_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")


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

    speaker_boost: float = 2.0
    """Factor for the turns of a speaker the query names (1 disables)."""
    time_boost: float = 3.0
    """Factor for the events in a month or year the query names (1 disables)."""
    strip_speakers: bool = True
    """Take named speakers out of the query text (the boost stands for them)."""


class EpisodicMemory:
    """Record turns with their session and time; find them by similarity, keyword, time or session."""

    def __init__(
        self, store: MemoryStore, retriever: HybridRetriever, *, settings: EpisodicSettings | None = None
    ) -> None:
        """Record into `store` and search through `retriever` (whose keyword index projects `store`).

        Raises:
            ConfigError: the retriever's keyword index does not track speakers (`meta_speaker`).

        """
        if SPEAKER_KEY not in retriever.keyword.facets:
            raise ConfigError(f"the keyword index must track {SPEAKER_KEY!r} (facets=...)", field="facets")
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
        expand_neighbours: bool = True,
    ) -> Retrieval:
        """The turns in `scope` that best match `query`, within the event-time range and token budget.

        Raises:
            InvalidInputError: `since` or `until` is naive.

        """
        text, boosts = self.read_query(query, scope=scope)
        return await self.retriever.retrieve(
            text, scope=scope, k=k, kinds=(KIND,), since=since, until=until,
            token_budget=token_budget, expand_neighbours=expand_neighbours, boosts=boosts,
        )  # fmt: skip

    def read_query(self, query: str, *, scope: Scope) -> tuple[str, list[Boost]]:
        """The query text to search with and the boosts the query implies (see the module docstring)."""
        boosts: list[Boost] = []
        where = scope_filter(scope, kinds=(KIND,))
        speakers = [str(s) for s in self.retriever.keyword.values(SPEAKER_KEY, where=where)]
        for speaker in speakers:
            pattern = re.compile(rf"\b{re.escape(speaker)}(?:['\u2019]s)?\b", re.IGNORECASE)
            if pattern.search(query):
                boosts.append(Boost({SPEAKER_KEY: speaker}, self.settings.speaker_boost))
                if self.settings.strip_speakers:
                    query = " ".join(pattern.sub(" ", query).split())
        months = sorted({MONTHS.index(m) + 1 for m in _MONTH.findall(query)})
        if months:
            boosts.append(Boost({META_PREFIX + "occurred_month": {"$in": months}}, self.settings.time_boost))
        years = sorted({int(y) for y in _YEAR.findall(query)})
        if years:
            boosts.append(Boost({META_PREFIX + "occurred_year": {"$in": years}}, self.settings.time_boost))
        return query, boosts

    async def between(self, since: datetime, until: datetime, *, scope: Scope) -> list[Event]:
        """The events in `scope` that happened in [since, until], in time order.

        Raises:
            InvalidInputError: `since` or `until` is naive.

        """
        where = self.retriever.filter(scope, kinds=(KIND,), since=since, until=until)
        return _in_order(await self._events(where))

    async def session(self, session_id: str, *, scope: Scope) -> list[Event]:
        """The turns of one session in `scope`, in turn order."""
        where = scope_filter(scope, kinds=(KIND,), extra={META_PREFIX + "session_id": session_id})
        return sorted(await self._events(where), key=lambda e: (e.turn, e.occurred_at, e.record.id))

    async def _events(self, where: Filter) -> list[Event]:
        await self.store.catch_up()
        items = await self.store.index.get(where=where)
        return [event for item in items if (event := _event(from_item(item))) is not None]

    async def _next_turn(self, session_id: str, scope: Scope) -> int:
        turns = [event.turn for event in await self.session(session_id, scope=scope)]
        return max(turns) + 1 if turns else 0


def _event_metadata(turn: Turn, session_id: str, index: int) -> dict[str, Scalar]:
    return {
        "speaker": turn.speaker,
        "session_id": session_id,
        "turn": index,
        "occurred_at": timestamp(turn.occurred_at),
        "occurred_year": turn.occurred_at.year,
        "occurred_month": turn.occurred_at.month,
        "occurred_offset": int(offset.total_seconds()) if (offset := turn.occurred_at.utcoffset()) else 0,
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
