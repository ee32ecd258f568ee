"""The BM25 keyword index: scoring, filters, incremental upkeep from the journal, replay."""

import math
from datetime import UTC, datetime
from pathlib import Path

from hivegraph.memory.codec import scope_filter
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.keyword import KeywordIndex, tokenize
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import IndexItem
from hivegraph.memory.stores.inmemory import InMemoryVectorIndex
from hivegraph.memory.types import AddOp, DeleteOp, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")


def keyword_store(journal: SqliteJournal | None = None) -> tuple[MemoryStore, KeywordIndex]:
    keyword = KeywordIndex()
    store = MemoryStore(InMemoryVectorIndex(HashEmbedder()), journal=journal, projections=[keyword])
    return store, keyword


async def texts(keyword: KeywordIndex, query: str, scope: Scope = ADA) -> list[str]:
    return [hit.text for hit in await keyword.query(query, k=10, where=scope_filter(scope))]


def test_tokens_are_lowercase_stemmed_words_without_stop_words() -> None:
    assert tokenize("What is Ada researching? The Adoption-agencies!") == ["ada", "research", "adopt", "agenc"]
    assert tokenize("Researching papers", stem=False) == ["researching", "papers"]


async def test_bm25_scores_follow_the_formula() -> None:
    keyword = KeywordIndex(k1=1.2, b=0.75, facets=())
    keyword.add(IndexItem("a", "tea tea coffee"))
    keyword.add(IndexItem("b", "coffee milk"))
    keyword.add(IndexItem("c", "water"))
    hits = await keyword.query("tea")
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    average = (3 + 2 + 1) / 3
    expected = idf * 2 * 2.2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / average))
    assert [h.id for h in hits] == ["a"]
    assert math.isclose(hits[0].score, expected)


async def test_more_specific_matches_rank_first() -> None:
    store, keyword = keyword_store()
    for text in ["Ada drinks green tea every morning", "Ada likes tea", "Ada walks her dog", "Bob likes green paint"]:
        await store.add(text, scope=ADA)
    assert await texts(keyword, "green tea") == [
        "Ada drinks green tea every morning",
        "Ada likes tea",  # as rare a word as "green", in a shorter text
        "Bob likes green paint",
    ]
    assert await texts(keyword, "the of what") == []  # stop words only
    assert await texts(keyword, "walking dogs") == ["Ada walks her dog"]  # stems


async def test_filters_are_the_vector_index_filters() -> None:
    store, keyword = keyword_store()
    await store.add("Ada likes tea", scope=ADA)
    await store.add("Bob likes tea", scope=BOB)
    await store.apply([AddOp(text="tea party on Friday", kind="episodic", metadata={"at": 5.0})], scope=ADA, actor="t")
    assert await texts(keyword, "tea", BOB) == ["Bob likes tea"]
    episodic = scope_filter(ADA, kinds=("episodic",), extra={"meta_at": {"$gte": 4.0, "$lte": 6.0}})
    assert [h.text for h in await keyword.query("tea", where=episodic)] == ["tea party on Friday"]
    late = scope_filter(ADA, extra={"meta_at": {"$gte": 6.0}})
    assert await keyword.query("tea", where=late) == []


async def test_closed_versions_leave_the_index_incrementally() -> None:
    store, keyword = keyword_store()
    tea = await store.add("Ada likes tea", scope=ADA)
    dog = await store.add("Ada has a dog", scope=ADA)
    await store.apply([UpdateOp(record_id=tea.id, text="Ada likes coffee")], scope=ADA, actor="t")
    assert await texts(keyword, "tea") == []
    assert await texts(keyword, "coffee") == ["Ada likes coffee"]
    assert len(keyword) == 2
    await store.apply([DeleteOp(record_id=dog.id)], scope=ADA, actor="t")
    assert await texts(keyword, "dog") == [] and len(keyword) == 1
    assert keyword.scores("tea coffee") == {f"{tea.id}:2": keyword.scores("coffee")[f"{tea.id}:2"]}


async def test_projecting_the_same_entries_twice_changes_nothing() -> None:
    store, keyword = keyword_store()
    await store.add("Ada likes tea", scope=ADA)
    before = keyword.scores("tea")
    await keyword.project(await store.journal.read())
    assert keyword.scores("tea") == before and len(keyword) == 1


async def test_a_new_store_replays_the_journal_into_the_index(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    store, _ = keyword_store(SqliteJournal(path))
    kept = await store.add("Ada likes tea", scope=ADA)
    gone = await store.add("Ada likes rain", scope=ADA)
    await store.apply([DeleteOp(record_id=gone.id)], scope=ADA, actor="t")
    await store.aclose()

    reopened, keyword = keyword_store(SqliteJournal(path))
    assert await keyword.is_empty()
    await reopened.open()
    hits = await keyword.query("likes", where=scope_filter(ADA))
    assert [(h.id, h.text) for h in hits] == [(kept.version_id, "Ada likes tea")]
    await reopened.rebuild()
    assert len(keyword) == 1
    await reopened.aclose()


async def test_facets_find_session_members_and_values_inside_a_filter() -> None:
    store, keyword = keyword_store()
    when = datetime(2030, 1, 1, tzinfo=UTC)
    for scope, speaker in ((ADA, "Ada"), (BOB, "Bob")):
        ops = [AddOp(text=f"{speaker} turn {i}", kind="episodic", metadata={"session_id": "s1", "speaker": speaker})
               for i in range(2)]  # fmt: skip
        await store.apply(ops, scope=scope, actor="t", now=when)
    members = keyword.members("meta_session_id", "s1", where=scope_filter(ADA))
    assert sorted(item.text for item in members) == ["Ada turn 0", "Ada turn 1"]
    assert keyword.values("meta_speaker", where=scope_filter(BOB)) == ["Bob"]
    assert keyword.values("meta_speaker") == ["Ada", "Bob"]
    await keyword.reset()
    assert keyword.values("meta_speaker") == [] and await keyword.is_empty()
