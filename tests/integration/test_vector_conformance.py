"""The vector-index and vector-space conformance suites against real Chroma, embedded and as a server.

The in-memory references run the same suites in tests/unit/test_inmemory_index.py.
Run with `pytest -p tests.fixtures.chroma_server` until tests/conftest.py lists the plugin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hivegraph.errors import BackendUnavailableError
from hivegraph.memory.conformance import CHECKS, OpenIndex, checks_for
from hivegraph.memory.space_conformance import SPACE_CHECKS, OpenSpace, space_checks_for
from hivegraph.memory.stores.base import VectorIndex, VectorSpace
from hivegraph.memory.stores.chroma import ChromaSpace, ChromaVectorIndex, close_client
from hivegraph.models.embedder import Embedder
from hivegraph.models.testing import HashEmbedder
from tests.fixtures.chroma_server import ChromaServer, chroma_client, free_port

pytestmark = pytest.mark.integration

COLLECTION = "conformance"


def _persistent(path: Path) -> OpenIndex:
    async def open_index() -> VectorIndex:
        return ChromaVectorIndex.persistent_at(path, collection=COLLECTION, embedder=HashEmbedder())

    return open_index


def _http(host: str, port: int, collection: str) -> OpenIndex:
    async def open_index() -> VectorIndex:
        return ChromaVectorIndex.http(host, port, collection=collection, embedder=HashEmbedder())

    return open_index


@pytest.fixture
def space_prefix(chroma_server: ChromaServer) -> Iterator[str]:
    """A collection prefix no other test uses; its collections are dropped from the server after the test."""
    prefix = f"s{uuid.uuid4().hex[:12]}"
    yield prefix
    client = chroma_client(chroma_server)
    try:
        for collection in client.list_collections():
            if collection.name.startswith(prefix):
                client.delete_collection(collection.name)
    finally:
        close_client(client)


def _persistent_space(path: Path) -> OpenSpace:
    async def open_space(embedder: Embedder) -> VectorSpace:
        return ChromaSpace.persistent_at(path, prefix="conformance", embedder=embedder, embedder_backend="hash")

    return open_space


def _http_space(server: ChromaServer, prefix: str) -> OpenSpace:
    async def open_space(embedder: Embedder) -> VectorSpace:
        host, port = server
        return ChromaSpace.http(host, port, prefix=prefix, embedder=embedder, embedder_backend="hash")

    return open_space


@pytest.mark.parametrize("name", space_checks_for(ChromaSpace))
async def test_persistent_space_conformance(name: str, tmp_path: Path) -> None:
    await SPACE_CHECKS[name](_persistent_space(tmp_path / "chroma"))


@pytest.mark.parametrize("name", space_checks_for(ChromaSpace))
async def test_http_space_conformance(name: str, chroma_server: ChromaServer, space_prefix: str) -> None:
    await SPACE_CHECKS[name](_http_space(chroma_server, space_prefix))


@pytest.mark.parametrize("name", checks_for(ChromaVectorIndex))
async def test_persistent_conformance(name: str, tmp_path: Path) -> None:
    await CHECKS[name](_persistent(tmp_path / "chroma"))


@pytest.mark.parametrize("name", checks_for(ChromaVectorIndex))
async def test_http_conformance(name: str, chroma_server: tuple[str, int], chroma_collection: str) -> None:
    host, port = chroma_server
    await CHECKS[name](_http(host, port, chroma_collection))


async def test_a_closed_port_is_an_unavailable_backend_naming_the_address() -> None:
    port = free_port()  # nothing listens there: the port could just be bound
    with pytest.raises(BackendUnavailableError, match=f"127\\.0\\.0\\.1:{port}") as info:
        index = ChromaVectorIndex.http("127.0.0.1", port, collection="nobody-home", embedder=HashEmbedder())
        await index.count()
    assert info.value.backend == "chroma"
    assert info.value.__cause__ is not None
