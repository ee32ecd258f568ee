"""`HivegraphEmbeddingFunction`: how a hivegraph embedder is described to and rebuilt by Chroma."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from chromadb.utils.embedding_functions import (
    known_embedding_functions,  # pyright: ignore[reportUnknownVariableType]
)

from hivegraph.errors import ConfigError
from hivegraph.memory.stores.base import QueryCache
from hivegraph.memory.stores.chroma import collection_name
from hivegraph.memory.stores.chroma_embedding import HivegraphEmbeddingFunction, registry_name
from hivegraph.models.testing import HashEmbedder
from hivegraph.registry import EMBEDDERS


class _Unregistered(HashEmbedder):
    name = "unregistered"


class _NoConfig:
    name = "noconfig"
    dim = 2

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]


def test_it_is_registered_with_chroma_on_import() -> None:
    assert known_embedding_functions["hivegraph"] is HivegraphEmbeddingFunction


def test_config_names_the_registry_backend_and_rebuilds_the_same_embedder() -> None:
    function = HivegraphEmbeddingFunction(HashEmbedder(dim=12))
    config = function.get_config()
    assert config == {"backend": "hash", "config": {"dim": 12}}
    rebuilt = HivegraphEmbeddingFunction.build_from_config(config)
    assert isinstance(rebuilt.embedder, HashEmbedder)
    assert rebuilt.embedder.dim == 12
    assert np.allclose(rebuilt(["a cat"]), HashEmbedder(dim=12).embed(["a cat"]))
    assert not function.is_legacy()
    assert function.supported_spaces() == ["cosine"]


def test_the_backend_is_found_under_any_registered_name() -> None:
    with EMBEDDERS.registered("custom-hash", _Unregistered):
        assert registry_name(_Unregistered()) == "custom-hash"


def test_an_unregistered_embedder_cannot_be_stored() -> None:
    with pytest.raises(ConfigError, match="_Unregistered is not registered"):
        HivegraphEmbeddingFunction(_Unregistered())


def test_an_embedder_without_get_config_cannot_be_stored() -> None:
    with pytest.raises(ConfigError, match="no get_config"):
        HivegraphEmbeddingFunction(_NoConfig())


@pytest.mark.parametrize("config", [{}, {"backend": "hash"}, {"backend": 1, "config": {}}])
def test_a_malformed_stored_config_is_a_config_error(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="invalid hivegraph embedding-function config"):
        HivegraphEmbeddingFunction.build_from_config(config)


def test_collection_names_keep_to_chromas_alphabet() -> None:
    class Odd(HashEmbedder):
        name = "org/Model:v1 (int8)"

    assert collection_name("hivegraph", Odd(dim=8)) == "hivegraph-org-Model-v1-int8-8"


class _Counting(HashEmbedder):
    """Counts the texts it embeds."""

    embedded = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        type(self).embedded += len(texts)
        return super().embed(texts)


def test_a_repeated_query_is_embedded_once_and_the_cache_is_bounded() -> None:
    embedder = _Counting(dim=8)
    function = HivegraphEmbeddingFunction(embedder, backend="hash", queries=QueryCache(embedder, size=2))
    first = function.query_vector("where does Ada live")
    again = function.query_vector("where does Ada live")
    assert _Counting.embedded == 1 and np.array_equal(first, again)
    assert np.allclose(first, np.asarray(HashEmbedder(dim=8).embed(["where does Ada live"])[0]))
    function.query_vector("b")
    function.query_vector("c")  # evicts the oldest
    function.query_vector("where does Ada live")
    assert _Counting.embedded == 4


def test_a_shared_query_cache_serves_every_function_built_with_it() -> None:
    embedder = _Counting(dim=8)
    queries = QueryCache(embedder)
    first = HivegraphEmbeddingFunction(embedder, backend="hash", queries=queries)
    second = HivegraphEmbeddingFunction(embedder, backend="hash", queries=queries)
    before = _Counting.embedded
    assert first.query_vector("shared query") == second.query_vector("shared query")
    assert _Counting.embedded == before + 1
