"""Exact search of small collections on real Chroma: the same answers as Chroma's, and never stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegraph.memory.exact import ExactVectors
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.chroma import ChromaSpace
from hivegraph.memory.types import DeleteOp, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder
from tests.fixtures.chroma_server import ChromaServer

pytestmark = pytest.mark.integration
ADA = Scope(user_id="ada")
FACTS = [
    "Ada likes green tea", "Ada runs on Sundays", "Ada's sister lives in Lyon", "Ada reads science fiction",
    "Ada's cat is called Miso", "Ada plays the cello", "Ada moved to Porto in May", "Ada is allergic to nuts",
]  # fmt: skip
QUERIES = ["what does Ada drink", "where does Ada's sister live", "Ada's pet", "music", "Ada likes"]
K = len(FACTS)
"""Every fact: Chroma picks among items tied at the k-th place as it likes, the exact search by id."""


def ranked(hits: list[MemoryHit]) -> list[tuple[float, str]]:
    return sorted((-round(hit.score, 4), hit.id) for hit in hits)


async def test_exact_search_gives_chromas_answers(tmp_path: Path) -> None:
    def open_store(exact: ExactVectors) -> MemoryStore:
        space = ChromaSpace.persistent_at(tmp_path / "chroma", prefix="mem", embedder=HashEmbedder())
        return MemoryStore(space, journal=SqliteJournal(tmp_path / "journal.sqlite"), exact=exact)

    store = await open_store(ExactVectors()).open()
    for fact in FACTS:
        await store.add(fact, scope=ADA)
    exact = {q: ranked(await store.search(q, scope=ADA, k=K)) for q in QUERIES}
    assert store.vectors.exact.held == len(FACTS)  # answered from the copy
    await store.aclose()

    store = await open_store(ExactVectors(max_items=0)).open()  # Chroma answers every search
    chroma = {q: ranked(await store.search(q, scope=ADA, k=K)) for q in QUERIES}
    assert store.vectors.exact.held == 0
    await store.aclose()
    assert exact == chroma


async def test_another_process_writes_are_seen_by_a_store_that_copied_the_collection(
    chroma_server: ChromaServer, chroma_collection: str, tmp_path: Path
) -> None:
    def open_store() -> MemoryStore:
        space = ChromaSpace.http(chroma_server.host, chroma_server.port, prefix=chroma_collection,
                                 embedder=HashEmbedder())  # fmt: skip
        return MemoryStore(space, journal=SqliteJournal(tmp_path / "journal.sqlite"))

    writer, reader = await open_store().open(), await open_store().open()
    try:
        tea = await writer.add("Ada likes green tea", scope=ADA)
        await writer.add("Ada plays the cello", scope=ADA)
        assert {h.text for h in await reader.search("Ada", scope=ADA, k=5)} == {"Ada likes green tea",
                                                                              "Ada plays the cello"}  # fmt: skip
        assert reader.vectors.exact.held == 2

        await writer.apply([UpdateOp(record_id=tea.id, text="Ada likes black coffee")], scope=ADA, actor="w")
        await writer.add("Ada runs on Sundays", scope=ADA)
        found = {h.text for h in await reader.search("Ada", scope=ADA, k=5)}
        assert found == {"Ada likes black coffee", "Ada plays the cello", "Ada runs on Sundays"}

        (cello,) = await reader.search("cello", scope=ADA, k=1)
        assert cello.record is not None and cello.text == "Ada plays the cello"
        await writer.apply([DeleteOp(record_id=cello.record.id)], scope=ADA, actor="w")
        assert {h.text for h in await reader.search("Ada", scope=ADA, k=5)} == {"Ada likes black coffee",
                                                                              "Ada runs on Sundays"}  # fmt: skip
    finally:
        await writer.vectors.reset()  # this test's collections, dropped from the shared server
        await writer.aclose()
        await reader.aclose()
