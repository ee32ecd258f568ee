"""Episodic memory: recording turns in one transaction, time ranges, sessions, search."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from hivegraph.errors import InvalidInputError, MemoryStoreError
from hivegraph.memory.episodic import EpisodicMemory, EpisodicSettings, Turn
from hivegraph.memory.facade import Memory, MemoryOptions
from hivegraph.memory.retrieval import RetrievalSettings
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import Scope
from hivegraph.models.testing import HashEmbedder

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
MONDAY = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
READS_SPEAKERS_AND_MONTHS = EpisodicSettings(speaker_boost=2.0, time_boost=3.0, strip_speakers=True)
"""The query reading LoCoMo-style data uses (off by default)."""
EXPANDING = RetrievalSettings(after_share=0.5, before_share=0.3)


def memory(settings: EpisodicSettings | None = None, retrieval: RetrievalSettings | None = None) -> EpisodicMemory:
    store = MemoryStore(InMemorySpace(HashEmbedder()), max_text_chars=200)
    options = MemoryOptions(retrieval=retrieval or RetrievalSettings(), episodic=settings or EpisodicSettings())
    return Memory(store, options=options).episodic


def same_store(episodic: EpisodicMemory, retrieval: RetrievalSettings) -> EpisodicMemory:
    """The episodic memory of the same store, with the same query reading, retrieving with `retrieval`."""
    options = MemoryOptions(retrieval=retrieval, episodic=episodic.settings)
    return Memory(episodic.store, options=options).episodic


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
    episodic = memory(READS_SPEAKERS_AND_MONTHS)
    june, july = datetime(2030, 6, 10, tzinfo=UTC), datetime(2030, 7, 10, tzinfo=UTC)
    await episodic.record(turns(june, ("Ada", "we went camping"), ("Bob", "I went camping too")), scope=ADA,
                          session_id="june")  # fmt: skip
    await episodic.record(turns(july, ("Bob", "camping again, with Ada")), scope=ADA, session_id="july")
    text, boosts = await episodic.read_query("When did Ada's family go camping in July?", scope=ADA)
    assert text == "When did family go camping in July?"
    assert [b.where for b in boosts] == [{"speaker": "Ada"}, {"occurred_month": {"$in": [7]}}]
    by_ada = await episodic.search("What did Ada do?", scope=ADA, k=1)
    assert [h.text for h in by_ada.hits] == ["Ada: we went camping"]
    in_july = await episodic.search("who went camping in July", scope=ADA, k=1)
    assert [h.text for h in in_july.hits] == ["Bob: camping again, with Ada"]
    expanding = same_store(episodic, EXPANDING)
    window = await expanding.search("camping", scope=ADA, k=5, since=july - timedelta(days=1))
    assert [h.text for h in window.hits] == ["Bob: camping again, with Ada"]
    assert (await expanding.search("camping", scope=BOB, k=5)).hits == []


async def test_a_query_is_read_as_it_is_by_default() -> None:
    episodic = memory()
    await episodic.record(turns(MONDAY, ("Ada", "we went camping")), scope=ADA, session_id="june")
    assert await episodic.read_query("When did Ada go camping in July?", scope=ADA) == (
        "When did Ada go camping in July?", []
    )  # fmt: skip


async def test_a_turn_records_whether_it_asks_and_whether_it_mentions_a_time() -> None:
    episodic = memory()
    records = await episodic.record(turns(MONDAY, ("Bob", "Did you adopt the cat?"), ("Ada", "I adopted her last May."),
                                          ("Ada", "I may adopt another")), scope=ADA, session_id="s")  # fmt: skip
    assert [(r.metadata["question"], r.metadata["mentions_time"]) for r in records] == [
        (True, False), (False, True), (False, False)  # "may" the verb is no month
    ]  # fmt: skip


async def test_a_when_question_prefers_turns_that_mention_a_time_over_questions() -> None:
    lines = (("Bob", "When did Ada adopt the cat?"), ("Ada", "We adopted it two years ago."))
    plain = memory()
    await plain.record(turns(MONDAY, *lines), scope=ADA, session_id="s")
    query = "When did Ada adopt the cat?"
    assert [h.text for h in (await plain.search(query, scope=ADA, k=1)).hits] == ["Bob: When did Ada adopt the cat?"]

    reading = same_settings(plain, EpisodicSettings(when_boost=1.6, question_factor=0.5))
    text, boosts = await reading.read_query(query, scope=ADA)
    assert text == query and [b.where for b in boosts] == [{"question": True}, {"mentions_time": True}]
    found = await reading.search(query, scope=ADA, k=1)
    assert [h.text for h in found.hits] == ["Ada: We adopted it two years ago."]
    assert [b.where for b in (await reading.read_query("Where is the cat?", scope=ADA))[1]] == [{"question": True}]


def same_settings(episodic: EpisodicMemory, settings: EpisodicSettings) -> EpisodicMemory:
    """The episodic memory of the same store, reading queries with `settings`."""
    return Memory(episodic.store, options=MemoryOptions(episodic=settings)).episodic


async def test_concurrent_sessions_each_keep_their_turns_and_flags() -> None:
    episodic = memory()
    lines = (("Bob", "When was it?"), ("Ada", "Last week."), ("Ada", "It was fun"))
    batches = await asyncio.gather(
        *(episodic.record(turns(MONDAY, *lines), scope=ADA, session_id=f"s{n}") for n in range(8))
    )
    assert all(len(batch) == 3 for batch in batches)
    for n in range(8):
        events = await episodic.session(f"s{n}", scope=ADA)
        flags = [(e.record.metadata["question"], e.record.metadata["mentions_time"]) for e in events]
        assert [e.turn for e in events] == [0, 1, 2] and flags == [(True, False), (False, True), (False, False)]


@pytest.mark.parametrize("bad", ["Last week \ud800?", "x" * 500])
async def test_a_hostile_turn_is_refused_and_its_batch_left_unwritten(bad: str) -> None:
    episodic = memory()
    with pytest.raises((MemoryStoreError, ValidationError)):
        await episodic.record(turns(MONDAY, ("Ada", "When?"), ("Bob", bad)), scope=ADA, session_id="s")
    assert await episodic.session("s", scope=ADA) == []
    with pytest.raises(InvalidInputError, match=r"metadata\.score"):
        Turn(speaker="Ada", text="ok", occurred_at=MONDAY, metadata={"score": float("nan")})
