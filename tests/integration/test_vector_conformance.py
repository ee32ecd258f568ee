"""The vector-index conformance suite against real Chroma, embedded and as a server.

The in-memory reference runs the same suite in tests/unit/test_inmemory_index.py.
Run with `pytest -p tests.fixtures.chroma_server` until tests/conftest.py lists the plugin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegraph.errors import BackendUnavailableError
from hivegraph.memory.conformance import CHECKS, OpenIndex, checks_for
from hivegraph.memory.stores.base import VectorIndex
from hivegraph.memory.stores.chroma import ChromaVectorIndex
from hivegraph.models.testing import HashEmbedder
from tests.fixtures.chroma_server import free_port

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
