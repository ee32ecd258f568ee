"""Episodic memory on a persistent Chroma collection with the real MiniLM embedder, across a reopen."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hivegraph.memory.episodic import EpisodicSettings, Turn
from hivegraph.memory.facade import Memory, MemoryOptions
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.retrieval import RetrievalSettings
from hivegraph.memory.stores.chroma import ChromaSpace
from hivegraph.memory.text import tokenize
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


LOCOMO = MemoryOptions(
    retrieval=RetrievalSettings(after_share=0.5, before_share=0.3),
    episodic=EpisodicSettings(speaker_boost=2.0, time_boost=3.0, strip_speakers=True),
)
"""Neighbour expansion and query reading for conversational data (both off by default)."""


async def open_memory(folder: Path) -> Memory:
    space = ChromaSpace.persistent_at(folder / "chroma", prefix="episodic-test", embedder=MiniLMEmbedder())
    return await Memory.of(space, journal=SqliteJournal(folder / "journal.db"), options=LOCOMO).open()


async def test_record_search_and_reopen_on_chroma_with_minilm(tmp_path: Path) -> None:
    memory = await open_memory(tmp_path)
    episodic = memory.episodic
    batch = [Turn(speaker=s, text=t, occurred_at=DAY + timedelta(minutes=i)) for i, (s, t) in enumerate(CONVERSATION)]
    records = await episodic.record(batch, scope=ADA, session_id="session_1")
    later = [Turn(speaker="Ada", text="We adopted a puppy named Oscar.", occurred_at=DAY + timedelta(days=30))]
    (oscar,) = await episodic.record(later, scope=ADA, session_id="session_2")

    result = await episodic.search("Which agencies is Ada looking into?", scope=ADA, k=3, token_budget=60)
    assert records[3].id in [h.record_id for h in result.hits]
    assert result.tokens <= 60 and all(h.loaded.scope == ADA for h in result.hits)
    june = await episodic.between(DAY + timedelta(days=20), DAY + timedelta(days=40), scope=ADA)
    assert [e.record.text for e in june] == ["Ada: We adopted a puppy named Oscar."]
    assert (await memory.store.vectors.counts())[0] == len(CONVERSATION) + 1
    await memory.aclose()

    reopened = await open_memory(tmp_path)  # the keyword index is the journal's own: nothing to replay
    found = await reopened.journal.keyword_search(tokenize("puppy Oscar"), scope=ADA)
    assert [version_id for version_id, _ in found] == [oscar.version_id]
    assert (await reopened.store.vectors.counts())[0] == len(CONVERSATION) + 1  # nothing doubled
    pet = await reopened.episodic.search("What is the name of Ada's pet?", scope=ADA, k=1)
    assert [h.text for h in pet.hits] == ["Ada: We adopted a puppy named Oscar."]
    assert (await reopened.episodic.search("puppy", scope=Scope(user_id="bob"), k=3)).hits == []
    session = await reopened.episodic.session("session_1", scope=ADA)
    assert [e.turn for e in session] == [0, 1, 2, 3, 4]
    await reopened.aclose()
