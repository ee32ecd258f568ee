"""What `ChromaVectorIndex` does beyond the conformance suite: settings, errors, ownership."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings

from hivegraph.config import (
    ChromaSettings,
    EmbedderSettings,
    HashEmbedderSettings,
    HivegraphSettings,
    VectorStoreSettings,
)
from hivegraph.errors import BackendUnavailableError, MemoryStoreError
from hivegraph.memory.stores.base import IndexItem
from hivegraph.memory.stores.chroma import ChromaVectorIndex, close_client
from hivegraph.models.testing import HashEmbedder
from tests.fixtures.chroma_server import ChromaServer, chroma_client, free_port, running_chroma_server

pytestmark = pytest.mark.integration

ITEMS = [IndexItem("a", "apples grow in orchards", {"n": 1}), IndexItem("b", "bicycles have two wheels", {"n": 2})]


@pytest.fixture
def prefix(chroma_server: ChromaServer) -> Iterator[str]:
    """A collection prefix of this test's own; its collections are dropped after."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    client = chroma_client(chroma_server)
    try:
        for collection in client.list_collections():
            if collection.name.startswith(prefix):
                client.delete_collection(collection.name)
    finally:
        close_client(client)


async def test_from_settings_opens_an_embedded_collection_named_after_the_embedder(tmp_path: Path) -> None:
    embedder = EmbedderSettings(backend="hash", hash=HashEmbedderSettings(dim=16))
    settings = HivegraphSettings(data_dir=tmp_path, embedder=embedder)
    index = ChromaVectorIndex.from_settings(settings)
    await index.upsert(ITEMS)
    await index.aclose()

    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False))
    try:
        assert [c.name for c in client.list_collections()] == ["hivegraph-hash-16"]
        assert client.get_collection("hivegraph-hash-16").count() == 2
    finally:
        close_client(client)


async def test_from_settings_connects_to_a_chroma_server(chroma_server: ChromaServer, prefix: str) -> None:
    host, port = chroma_server
    chroma = ChromaSettings(mode="http", host=host, port=port, collection_prefix=prefix)
    settings = HivegraphSettings(
        embedder=EmbedderSettings(backend="hash"), vector_store=VectorStoreSettings(chroma=chroma)
    )
    index = ChromaVectorIndex.from_settings(settings)
    await index.upsert(ITEMS)
    assert [hit.id for hit in await index.query("bicycles have two wheels", k=1)] == ["b"]
    await index.aclose()
    client = chroma_client(chroma_server)
    try:
        assert client.get_collection(f"{prefix}-hash-64").count() == 2
    finally:
        close_client(client)


async def test_a_server_that_stops_is_an_unavailable_backend(tmp_path: Path) -> None:
    port = free_port()
    with running_chroma_server(tmp_path, port) as server:
        index = ChromaVectorIndex.http(server.host, server.port, collection="going-away", embedder=HashEmbedder())
        await index.upsert(ITEMS)
    with pytest.raises(BackendUnavailableError, match=f"127\\.0\\.0\\.1:{port}"):
        await index.query("apples", k=1)
    await index.aclose()


async def test_string_ranges_are_refused(tmp_path: Path) -> None:
    index = ChromaVectorIndex.persistent_at(tmp_path, collection="ranges", embedder=HashEmbedder())
    await index.upsert([IndexItem("a", "text", {"day": "2024-01-05"})])
    with pytest.raises(MemoryStoreError, match=r"numbers only"):
        await index.get(where={"day": {"$gte": "2024-01-01"}})
    await index.aclose()


async def test_a_client_passed_in_stays_open_after_aclose(chroma_server: ChromaServer, chroma_collection: str) -> None:
    client = chroma_client(chroma_server)
    try:
        index = ChromaVectorIndex(client=client, collection=chroma_collection, embedder=HashEmbedder())
        await index.upsert(ITEMS)
        await index.aclose()
        assert client.get_collection(chroma_collection).count() == 2
    finally:
        close_client(client)


async def test_concurrent_operations_on_a_fresh_index(tmp_path: Path) -> None:
    index = ChromaVectorIndex.persistent_at(tmp_path, collection="busy", embedder=HashEmbedder())
    batches = [[IndexItem(f"{n}-{i}", f"text {n} {i}", {"n": n}) for i in range(20)] for n in range(8)]
    await asyncio.gather(*(index.upsert(batch) for batch in batches))
    counts = await asyncio.gather(*(index.get(where={"n": n}) for n in range(8)))
    assert [len(found) for found in counts] == [20] * 8
    assert await index.count() == 160
    await index.aclose()
