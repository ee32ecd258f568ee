"""Keyword search in the journal: index terms, BM25 ranking, filters, closed versions, reopening, event facets.

Keyword search is no projection: every journal keeps its full-text index in the
same transaction as the versions, so these tests write through `MemoryStore.apply`
and read with `Journal.keyword_search`, on the in-memory reference journal and on
SQLite (FTS5).
"""

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hivegraph.memory.journal import Journal, TurnKey
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import AddOp, DeleteOp, MemoryKind, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
EVERYONE = Scope()


@pytest.fixture(params=["memory", "sqlite"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    """The reference journal, and the SQLite one (FTS5)."""
    found: Journal = InMemoryJournal() if request.param == "memory" else SqliteJournal(tmp_path / "j.sqlite")
    yield found
    await found.aclose()


def store_over(journal: Journal) -> MemoryStore:
    return MemoryStore(InMemorySpace(HashEmbedder()), journal=journal)


async def search(
    journal: Journal,
    query: str,
    scope: Scope = ADA,
    *,
    kinds: tuple[MemoryKind, ...] | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
) -> list[tuple[str, float]]:
    return await journal.keyword_search(
        tokenize(query), scope=scope, kinds=kinds, since_us=since_us, until_us=until_us, k=10
    )


async def texts_of(journal: Journal, found: list[tuple[str, float]]) -> list[str]:
    versions = await journal.versions([version_id for version_id, _ in found])
    return [versions[version_id].record.text for version_id, _ in found]


async def texts(journal: Journal, query: str, scope: Scope = ADA) -> list[str]:
    return await texts_of(journal, await search(journal, query, scope))


def test_tokens_are_lowercase_stemmed_words_without_stop_words() -> None:
    assert tokenize("What is Ada researching? The Adoption-agencies!") == ["ada", "research", "adopt", "agenc"]
    assert tokenize("Researching papers", stem=False) == ["researching", "papers"]


async def test_bm25_scores_follow_the_formula() -> None:
    """The reference journal's scores are Okapi BM25 (k1 = 1.2, b = 0.75) over every current version."""
    store = store_over(InMemoryJournal())
    for text in ["tea tea coffee", "coffee milk", "water"]:
        await store.add(text, scope=ADA)
    hits = await store.journal.keyword_search(["tea"], scope=ADA)
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    average = (3 + 2 + 1) / 3
    expected = idf * 2 * 2.2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / average))
    assert await texts_of(store.journal, hits) == ["tea tea coffee"]
    assert math.isclose(hits[0][1], expected)


async def test_more_specific_matches_rank_first(journal: Journal) -> None:
    store = store_over(journal)
    for text in ["Ada drinks green tea every morning", "Ada likes tea", "Ada walks her dog", "Bob likes green paint"]:
        await store.add(text, scope=ADA)
    assert await texts(journal, "green tea") == [
        "Ada drinks green tea every morning",
        "Ada likes tea",  # as rare a word as "green", in a shorter text
        "Bob likes green paint",
    ]
    assert await texts(journal, "the of what") == []  # stop words only
    assert await texts(journal, "walking dogs") == ["Ada walks her dog"]  # stems


async def test_scope_kind_and_event_time_filters(journal: Journal) -> None:
    store = store_over(journal)
    await store.add("Ada likes tea", scope=ADA)
    await store.add("Bob likes tea", scope=BOB)
    party = AddOp(text="tea party on Friday", kind="episodic", metadata={"occurred_at": 5.0})
    assert not (await store.apply([party], scope=ADA, actor="t")).refused
    assert await texts(journal, "tea", BOB) == ["Bob likes tea"]
    assert sorted(await texts(journal, "tea", EVERYONE)) == ["Ada likes tea", "Bob likes tea", "tea party on Friday"]
    episodic = await search(journal, "tea", kinds=("episodic",), since_us=4_000_000, until_us=6_000_000)
    assert await texts_of(journal, episodic) == ["tea party on Friday"]
    assert await search(journal, "tea", since_us=6_000_000) == []
    assert await search(journal, "tea", kinds=("procedural",)) == []


async def test_closed_versions_leave_the_index_in_the_same_write(journal: Journal) -> None:
    store = store_over(journal)
    tea = await store.add("Ada likes tea", scope=ADA)
    dog = await store.add("Ada has a dog", scope=ADA)
    await store.apply([UpdateOp(record_id=tea.id, text="Ada likes coffee")], scope=ADA, actor="t")
    assert await texts(journal, "tea") == []
    assert await texts(journal, "coffee") == ["Ada likes coffee"]
    assert sorted(await texts(journal, "ada")) == ["Ada has a dog", "Ada likes coffee"]  # one version per record
    await store.apply([DeleteOp(record_id=dog.id)], scope=ADA, actor="t")
    assert await texts(journal, "dog") == [] and await texts(journal, "ada") == ["Ada likes coffee"]
    (coffee,) = await search(journal, "coffee")
    assert await search(journal, "tea coffee") == [(f"{tea.id}:2", coffee[1])]  # the closed "tea" counts nowhere


async def test_replaying_a_batch_or_rebuilding_the_projections_changes_nothing(journal: Journal) -> None:
    store = store_over(journal)
    ops = [AddOp(text="Ada likes tea"), AddOp(text="Ada drinks green tea")]
    await store.apply(ops, scope=ADA, actor="t", idempotency_key="step-1")
    before = await search(journal, "tea")
    await store.apply(ops, scope=ADA, actor="t", idempotency_key="step-1")  # a resumed run replays its step
    assert await search(journal, "tea") == before and len(before) == 2
    await store.rebuild()
    assert await search(journal, "tea") == before


async def test_a_reopened_sqlite_journal_finds_everything_without_replay(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    store = store_over(SqliteJournal(path))
    kept = await store.add("Ada likes tea", scope=ADA)
    gone = await store.add("Ada likes rain", scope=ADA)
    await store.apply([DeleteOp(record_id=gone.id)], scope=ADA, actor="t")
    await store.aclose()

    reopened = store_over(SqliteJournal(path))  # as in a new process: nothing opened, caught up or replayed
    found = await reopened.journal.keyword_search(tokenize("likes"), scope=ADA)
    assert [version_id for version_id, _ in found] == [kept.version_id]
    assert await reopened.vectors.is_empty()  # the vectors were not replayed; the keyword index needed no replay
    await reopened.open()
    await reopened.rebuild()
    assert [version_id for version_id, _ in await reopened.journal.keyword_search(["like"], scope=ADA)] == [
        kept.version_id
    ]
    await reopened.aclose()


async def test_event_facets_and_turns_stay_inside_the_scope(journal: Journal) -> None:
    store = store_over(journal)
    when = datetime(2030, 1, 1, tzinfo=UTC)
    for scope, speaker in ((ADA, "Ada"), (BOB, "Bob")):
        ops = [AddOp(text=f"{speaker} turn {i}", kind="episodic",
                     metadata={"session_id": "s1", "speaker": speaker, "turn": i}) for i in range(2)]  # fmt: skip
        await store.apply(ops, scope=scope, actor="t", now=when)
    members = await journal.turns([TurnKey(ADA, "s1", turn) for turn in range(3)])
    assert {key.turn: stored.record.text for key, stored in members.items()} == {0: "Ada turn 0", 1: "Ada turn 1"}
    assert await journal.facet_values("speaker", scope=BOB) == ["Bob"]
    assert await journal.facet_values("speaker", scope=EVERYONE) == ["Ada", "Bob"]
    assert await journal.facet_values("session_id", scope=ADA, kinds=("semantic",)) == []
    (bobs_first,) = [r for r in await store.list(scope=BOB) if r.metadata["turn"] == 0]
    await store.apply([DeleteOp(record_id=bobs_first.id)], scope=BOB, actor="t")
    assert await journal.turns([TurnKey(BOB, "s1", 0)]) == {}  # only current versions are turns
    assert await journal.facet_values("speaker", scope=EVERYONE) == ["Ada", "Bob"]
