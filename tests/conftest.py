"""Shared fixtures: the network guard and the plugins that start real services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hivegraph.memory.facade import Memory
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.models import base
from hivegraph.models.testing import HashEmbedder

pytest_plugins = [
    "tests.fixtures.model_server",
    "tests.fixtures.chroma_server",
    "tests.fixtures.postgres_server",
    "tests.fixtures.bolt_server",
]


@pytest.fixture(autouse=True)
def _network_models(request: pytest.FixtureRequest) -> Iterator[None]:
    """Unit tests may not reach a network model; integration tests may."""
    previous = base.ALLOW_NETWORK_MODELS
    base.ALLOW_NETWORK_MODELS = request.node.get_closest_marker("integration") is not None
    yield
    base.ALLOW_NETWORK_MODELS = previous


@pytest.fixture
def memory_store() -> MemoryStore:
    """A memory store over the in-memory reference space and journal, with the hash embedder."""
    return MemoryStore(InMemorySpace(HashEmbedder()), max_text_chars=500)


@pytest.fixture
def memory(memory_store: MemoryStore) -> Memory:
    """The `Memory` facade over `memory_store` (neutral retrieval settings)."""
    return Memory(memory_store)
