"""Episodic memory on a persistent Chroma collection with the real MiniLM embedder, across a reopen."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hivegraph.memory.episodic import EpisodicMemory, Turn
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.keyword import KeywordIndex
from hivegraph.memory.retrieval import HybridRetriever
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.chroma import ChromaVectorIndex
from hivegraph.memory.types import Scope
from hivegraph.models.minilm import MiniLMEmbedder

pytestmark = pytest.mark.integration

ADA = Scope(user_id="ada")
DAY = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
CONVERSATION = [
    ("Mel", "Hey Ada! How have you been?"),
    ("Ada", "Busy! I went to a support group yesterday and it was so powerful."),
    ("Mel", "That's great. What are you researching these days?"),
    ("Ada", "Adoption agencies. I want to give kids a loving home."),
    ("Mel", "I painted a sunrise over the lake last week."),
]


async def open_memory(folder: Path) -> EpisodicMemory:
    index = ChromaVectorIndex.persistent_at(folder / "chroma", collection="episodic-test", embedder=MiniLMEmbedder())
    keyword = KeywordIndex()
    store = await MemoryStore(index, journal=SqliteJournal(folder / "journal.db"), projections=[keyword]).open()
    return EpisodicMemory(store, HybridRetriever(store, keyword))


async def test_record_search_and_reopen_on_chroma_with_minilm(tmp_path: Path) -> None:
    episodic = await open_memory(tmp_path)
    batch = [Turn(speaker=s, text=t, occurred_at=DAY + timedelta(minutes=i)) for i, (s, t) in enumerate(CONVERSATION)]
    records = await episodic.record(batch, scope=ADA, session_id="session_1")
    later = [Turn(speaker="Ada", text="We adopted a puppy named Oscar.", occurred_at=DAY + timedelta(days=30))]
    await episodic.record(later, scope=ADA, session_id="session_2")

    result = await episodic.search("Which agencies is Ada looking into?", scope=ADA, k=3, token_budget=60)
    assert records[3].id in [b.record_id for b in result.blocks]
    assert result.tokens <= 60 and all(b.record.scope == ADA for b in result.blocks)
    june = await episodic.between(DAY + timedelta(days=20), DAY + timedelta(days=40), scope=ADA)
    assert [e.record.text for e in june] == ["Ada: We adopted a puppy named Oscar."]
    assert await episodic.store.index.count() == len(CONVERSATION) + 1
    await episodic.store.aclose()

    reopened = await open_memory(tmp_path)  # the keyword index is replayed from the journal
    assert len(reopened.retriever.keyword) == len(CONVERSATION) + 1
    assert await reopened.store.index.count() == len(CONVERSATION) + 1  # nothing doubled
    pet = await reopened.search("What is the name of Ada's pet?", scope=ADA, k=1)
    assert [b.text for b in pet.blocks] == ["Ada: We adopted a puppy named Oscar."]
    assert (await reopened.search("puppy", scope=Scope(user_id="bob"), k=3)).blocks == []
    session = await reopened.session("session_1", scope=ADA)
    assert [e.turn for e in session] == [0, 1, 2, 3, 4]
    await reopened.store.aclose()
