"""What `ChromaSpace` does beyond the space conformance suite: settings, naming, ownership, errors."""

from __future__ import annotations

import asyncio
import os
import signal
import time
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
from hivegraph.errors import BackendUnavailableError, ConfigError
from hivegraph.memory.stores.base import IndexItem
from hivegraph.memory.stores.chroma import ChromaSpace, ChromaVectorIndex, close_client
from hivegraph.memory.stores.chroma_lock import lock_embedded
from hivegraph.models.testing import HashEmbedder
from hivegraph.registry import VECTOR_STORES
from tests.fixtures.chroma_server import ChromaServer, chroma_client, free_port, running_chroma_process

pytestmark = pytest.mark.integration

ITEMS = [IndexItem("a", "apples grow in orchards", {"n": 1}), IndexItem("b", "bicycles have two wheels", {"n": 2})]


class _Unregistered(HashEmbedder):
    name = "unregistered"


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


def _collections(path: Path) -> dict[str, int]:
    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    try:
        return {c.name: c.count() for c in client.list_collections()}
    finally:
        close_client(client)


async def test_the_registry_opens_an_embedded_space_named_after_prefix_and_embedder(tmp_path: Path) -> None:
    embedder = EmbedderSettings(backend="hash", hash=HashEmbedderSettings(dim=16))
    settings = HivegraphSettings(data_dir=tmp_path, embedder=embedder)
    space = VECTOR_STORES.load("chroma").from_settings(settings)
    assert isinstance(space, ChromaSpace)
    await space.collection("ada").upsert(ITEMS)
    await space.collection("history").upsert(ITEMS[:1])
    await space.aclose()

    assert _collections(tmp_path / "chroma") == {"hivegraph-hash-16-ada": 2, "hivegraph-hash-16-history": 1}


async def test_from_settings_connects_to_a_chroma_server(chroma_server: ChromaServer, prefix: str) -> None:
    chroma = ChromaSettings(mode="http", host=chroma_server.host, port=chroma_server.port, collection_prefix=prefix)
    settings = HivegraphSettings(
        embedder=EmbedderSettings(backend="hash"), vector_store=VectorStoreSettings(chroma=chroma)
    )
    space = ChromaSpace.from_settings(settings)
    await space.collection("ada").upsert(ITEMS)
    assert await space.names() == ["ada"]
    await space.aclose()
    client = chroma_client(chroma_server)
    try:
        assert client.get_collection(f"{prefix}-hash-64-ada").count() == 2
    finally:
        close_client(client)


async def test_names_leave_out_other_embedders_prefixes_and_the_single_collection(tmp_path: Path) -> None:
    for dim, prefix in [(64, "hivegraph"), (32, "hivegraph"), (64, "other")]:
        other = ChromaSpace.persistent_at(tmp_path, prefix=prefix, embedder=HashEmbedder(dim=dim))
        await other.collection(f"from-{prefix}-{dim}").upsert(ITEMS)
        await other.aclose()
    single = ChromaVectorIndex.persistent_at(tmp_path, collection="hivegraph-hash-64", embedder=HashEmbedder())
    await single.upsert(ITEMS)
    await single.aclose()

    space = ChromaSpace.persistent_at(tmp_path, prefix="hivegraph", embedder=HashEmbedder(dim=64))
    assert await space.names() == ["from-hivegraph-64"]
    await space.aclose()


async def test_names_list_every_collection_beyond_a_hundred(tmp_path: Path) -> None:
    space = ChromaSpace.persistent_at(tmp_path, prefix="many", embedder=HashEmbedder(dim=8))
    names = [f"u{n:03d}" for n in range(120)]
    for name in names:
        await space.collection(name).upsert(ITEMS[:1])
    assert await space.names() == names
    await space.aclose()


async def test_one_query_vector_serves_every_collection(tmp_path: Path) -> None:
    space = ChromaSpace.persistent_at(tmp_path, prefix="hivegraph", embedder=HashEmbedder())
    await space.collection("ada").upsert(ITEMS[:1])
    await space.collection("bob").upsert(ITEMS[1:])
    vector = space.embed_query("bicycles have two wheels")
    found = await asyncio.gather(*(space.collection(name).nearest(vector, k=5) for name in ("ada", "bob")))
    assert [[id_ for id_, _ in pairs] for pairs in found] == [["a"], ["b"]]
    assert found[1][0][1] == pytest.approx(1.0, abs=1e-5)
    await space.aclose()


async def test_closing_the_space_releases_the_folder(tmp_path: Path) -> None:
    space = ChromaSpace.persistent_at(tmp_path, prefix="hivegraph", embedder=HashEmbedder())
    await space.collection("ada").upsert(ITEMS)
    await space.aclose()
    await space.aclose()  # twice: released once
    lock_embedded(tmp_path).release()
    assert _collections(tmp_path) == {"hivegraph-hash-64-ada": 2}


async def test_an_embedder_chroma_cannot_store_leaves_no_lock_and_no_client(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not registered"):
        ChromaSpace.persistent_at(tmp_path, prefix="hivegraph", embedder=_Unregistered())
    space = ChromaSpace.persistent_at(tmp_path, prefix="hivegraph", embedder=HashEmbedder())
    await space.collection("ada").upsert(ITEMS)
    await space.aclose()


async def test_a_client_passed_in_stays_open_after_aclose(chroma_server: ChromaServer, prefix: str) -> None:
    client = chroma_client(chroma_server)
    try:
        space = ChromaSpace(client=client, prefix=prefix, embedder=HashEmbedder())
        await space.collection("ada").upsert(ITEMS)
        await space.aclose()
        assert client.get_collection(f"{prefix}-hash-64-ada").count() == 2
    finally:
        close_client(client)


async def test_a_closed_port_is_an_unavailable_backend_naming_the_address() -> None:
    port = free_port()
    with pytest.raises(BackendUnavailableError, match=f"127\\.0\\.0\\.1:{port}"):
        ChromaSpace.http("127.0.0.1", port, prefix="nobody", embedder=HashEmbedder())


async def test_a_frozen_server_times_out_names_and_queries(tmp_path: Path) -> None:
    timeout_s = 1.0
    with running_chroma_process(tmp_path, free_port()) as (server, process):
        space = ChromaSpace.http(
            server.host, server.port, prefix="frozen", embedder=HashEmbedder(), timeout_s=timeout_s
        )
        await space.collection("ada").upsert(ITEMS)
        vector = space.embed_query("apples")
        os.kill(process.pid, signal.SIGSTOP)
        try:
            for call in (space.names, lambda: space.collection("ada").nearest(vector, k=1)):
                start = time.monotonic()
                async with asyncio.timeout(4 * timeout_s):
                    with pytest.raises(BackendUnavailableError, match="timed out"):
                        await call()
                assert time.monotonic() - start < 2.5 * timeout_s
        finally:
            os.kill(process.pid, signal.SIGCONT)
        assert await space.names() == ["ada"]
        await space.aclose()
