"""Episodic memory: recording turns in one transaction, time ranges, sessions, search."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from hivegraph.errors import ConfigError, MemoryStoreError
from hivegraph.memory.episodic import EpisodicMemory, Turn
from hivegraph.memory.keyword import KeywordIndex
from hivegraph.memory.retrieval import HybridRetriever
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemoryVectorIndex
from hivegraph.memory.types import Scope
from hivegraph.models.testing import HashEmbedder

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
MONDAY = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)


def memory() -> EpisodicMemory:
    keyword = KeywordIndex()
    store = MemoryStore(InMemoryVectorIndex(HashEmbedder()), projections=[keyword], max_text_chars=200)
    return EpisodicMemory(store, HybridRetriever(store, keyword))


def turns(day: datetime, *lines: tuple[str, str]) -> list[Turn]:
    return [Turn(speaker=s, text=t, occurred_at=day + timedelta(minutes=i)) for i, (s, t) in enumerate(lines)]


async def test_a_batch_is_one_journal_transaction_and_repeated_texts_are_kept() -> None:
    episodic = memory()
    first = await episodic.record(
        turns(MONDAY, ("Ada", "Thanks!"), ("Bob", "Any time."), ("Ada", "Thanks!")), scope=ADA, session_id="s1"
    )
    second = await episodic.record(turns(MONDAY, ("Ada", "Bye")), scope=ADA, session_id="s2")
    entries = await episodic.store.journal.read()
    assert [e.op.event for e in entries] == ["ADD"] * 4
    assert len({e.batch_id for e in entries[:3]}) == 1 and entries[3].batch_id != entries[0].batch_id
    assert [r.text for r in first] == ["Ada: Thanks!", "Bob: Any time.", "Ada: Thanks!"]
    assert first[0].id != first[2].id and len(second) == 1
    assert [(r.kind, r.metadata["turn"], r.metadata["session_id"]) for r in first] == [
        ("episodic", 0, "s1"), ("episodic", 1, "s1"), ("episodic", 2, "s1"),
    ]  # fmt: skip
    assert first[1].metadata["occurred_at"] == (MONDAY + timedelta(minutes=1)).timestamp()


async def test_a_bad_turn_records_nothing_of_its_batch() -> None:
    episodic = memory()
    with pytest.raises(MemoryStoreError, match="over the limit"):
        await episodic.record(turns(MONDAY, ("Ada", "fine"), ("Ada", "x" * 300)), scope=ADA, session_id="s1")
    assert await episodic.store.journal.read() == []
    with pytest.raises(ValidationError):
        Turn(speaker="Ada", text="naive", occurred_at=datetime(2030, 1, 1))


async def test_between_returns_the_events_of_a_time_range_in_time_order() -> None:
    episodic = memory()
    last_week = MONDAY - timedelta(days=7)
    await episodic.record(turns(MONDAY, ("Ada", "back at work")), scope=ADA, session_id="this-week")
    await episodic.record(
        turns(last_week, ("Ada", "off to the coast"), ("Bob", "enjoy!")), scope=ADA, session_id="last-week"
    )
    await episodic.record(turns(last_week, ("Bob", "Bob's own week")), scope=BOB, session_id="last-week")
    events = await episodic.between(last_week - timedelta(days=1), MONDAY - timedelta(days=1), scope=ADA)
    assert [e.record.text for e in events] == ["Ada: off to the coast", "Bob: enjoy!"]
    assert [(e.speaker, e.session_id, e.turn) for e in events] == [("Ada", "last-week", 0), ("Bob", "last-week", 1)]
    assert events[1].occurred_at == last_week + timedelta(minutes=1)
    everything = await episodic.between(last_week, MONDAY, scope=ADA)
    assert [e.record.text for e in everything] == ["Ada: off to the coast", "Bob: enjoy!", "Ada: back at work"]


async def test_sessions_in_turn_order_with_numbering_continued() -> None:
    episodic = memory()
    await episodic.record(turns(MONDAY, ("Ada", "one"), ("Bob", "two")), scope=ADA, session_id="s1")
    await episodic.record(turns(MONDAY + timedelta(hours=1), ("Ada", "three")), scope=ADA, session_id="s1")
    await episodic.record(turns(MONDAY, ("Ada", "elsewhere")), scope=ADA, session_id="s2")
    session = await episodic.session("s1", scope=ADA)
    assert [(e.turn, e.record.text) for e in session] == [(0, "Ada: one"), (1, "Bob: two"), (2, "Ada: three")]
    assert await episodic.session("s1", scope=BOB) == []


async def test_event_time_reads_back_in_its_own_timezone() -> None:
    episodic = memory()
    lisbon = timezone(timedelta(hours=1))
    when = datetime(2030, 7, 1, 23, 30, tzinfo=lisbon)
    (record,) = await episodic.record(
        [Turn(speaker="Ada", text="late dinner", occurred_at=when)], scope=ADA, session_id="s"
    )
    assert record.metadata["occurred_month"] == 7 and record.metadata["occurred_year"] == 2030
    (event,) = await episodic.session("s", scope=ADA)
    assert event.occurred_at == when and event.occurred_at.utcoffset() == timedelta(hours=1)


async def test_search_prefers_the_named_speaker_and_month() -> None:
    episodic = memory()
    june, july = datetime(2030, 6, 10, tzinfo=UTC), datetime(2030, 7, 10, tzinfo=UTC)
    await episodic.record(turns(june, ("Ada", "we went camping"), ("Bob", "I went camping too")), scope=ADA,
                          session_id="june")  # fmt: skip
    await episodic.record(turns(july, ("Bob", "camping again, with Ada")), scope=ADA, session_id="july")
    text, boosts = episodic.read_query("When did Ada's family go camping in July?", scope=ADA)
    assert text == "When did family go camping in July?"
    assert [b.where for b in boosts] == [{"meta_speaker": "Ada"}, {"meta_occurred_month": {"$in": [7]}}]
    by_ada = await episodic.search("What did Ada do?", scope=ADA, k=1, expand_neighbours=False)
    assert [b.text for b in by_ada.blocks] == ["Ada: we went camping"]
    in_july = await episodic.search("who went camping in July", scope=ADA, k=1, expand_neighbours=False)
    assert [b.text for b in in_july.blocks] == ["Bob: camping again, with Ada"]
    window = await episodic.search("camping", scope=ADA, k=5, since=july - timedelta(days=1))
    assert [b.text for b in window.blocks] == ["Bob: camping again, with Ada"]
    assert (await episodic.search("camping", scope=BOB, k=5)).blocks == []


def test_a_keyword_index_without_the_speaker_facet_is_refused() -> None:
    keyword = KeywordIndex(facets=("meta_session_id",))
    store = MemoryStore(InMemoryVectorIndex(HashEmbedder()), projections=[keyword])
    with pytest.raises(ConfigError, match="meta_speaker"):
        EpisodicMemory(store, HybridRetriever(store, keyword))
