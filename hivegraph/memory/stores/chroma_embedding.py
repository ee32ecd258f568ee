"""`HivegraphEmbeddingFunction`: any hivegraph `Embedder` as a Chroma embedding function.

Chroma stores an embedding function's `name()` and `get_config()` with the
collection and, when the collection is opened again, rebuilds it with
`build_from_config` from the class registered under that name. The config
names the embedder's `hivegraph.registry.EMBEDDERS` backend and its own
`get_config()`, so any process that has imported this module can reopen a
collection with plain `client.get_collection(name)` and query it by text.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import (
    register_embedding_function,  # pyright: ignore[reportUnknownVariableType]
)

from hivegraph.errors import ConfigError
from hivegraph.memory.stores.base import QueryCache
from hivegraph.models.embedder import Embedder
from hivegraph.registry import EMBEDDERS

EMBEDDING_FUNCTION_NAME = "hivegraph"


@runtime_checkable
class ConfigurableEmbedder(Embedder, Protocol):
    """An embedder that can describe itself, so another process can rebuild it."""

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable settings that `from_config` accepts (no secrets)."""
        ...


class HivegraphEmbeddingFunction(EmbeddingFunction[Documents]):
    """Wraps a hivegraph `Embedder` (cosine space) for Chroma."""

    def __init__(self, embedder: Embedder, *, backend: str | None = None, queries: QueryCache | None = None) -> None:
        """Wrap `embedder`; `backend` is its name in `EMBEDDERS`, found by its class when None.

        `queries` is a cache of `embedder`'s query vectors to share (a new one when None).

        Raises:
            ConfigError: the embedder has no `get_config` or is not registered.

        """
        if not isinstance(embedder, ConfigurableEmbedder):
            name = type(embedder).__name__
            raise ConfigError(f"embedder {name} has no get_config(); Chroma cannot store it")
        self.embedder: ConfigurableEmbedder = embedder
        self.backend = backend if backend is not None else registry_name(embedder)
        self.queries = queries if queries is not None else QueryCache(embedder)

    def __call__(self, input: Documents) -> Embeddings:
        """One float32 vector per document."""
        vectors = self.embedder.embed(list(input))
        return [np.asarray(vector, dtype=np.float32) for vector in vectors]

    def query_vector(self, text: str) -> list[float]:
        """The vector of a query text, from the query cache (an LRU of recent queries)."""
        return self.queries(text)

    @staticmethod
    def name() -> str:
        """Name this function as Chroma stores it with the collection."""
        return EMBEDDING_FUNCTION_NAME

    def get_config(self) -> dict[str, Any]:
        """Describe the embedder: its `EMBEDDERS` name and its own config."""
        return {"backend": self.backend, "config": self.embedder.get_config()}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HivegraphEmbeddingFunction:
        """Rebuild the embedder through `EMBEDDERS` from a stored config."""
        HivegraphEmbeddingFunction.validate_config(config)
        embedder = EMBEDDERS.load(config["backend"]).from_config(config["config"])
        return HivegraphEmbeddingFunction(embedder, backend=config["backend"])

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Check that a stored config has the expected shape.

        Raises:
            ConfigError: a key is missing or has the wrong type.

        """
        if not isinstance(config.get("backend"), str) or not isinstance(config.get("config"), dict):
            raise ConfigError(f"invalid hivegraph embedding-function config: {config!r}")

    def is_legacy(self) -> bool:
        """Never legacy (Chroma's default check would rebuild the embedder to find out)."""
        return False

    def default_space(self) -> Space:
        """Hivegraph vectors are unit length and compared by cosine."""
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        """Only cosine: scores are cosine similarities."""
        return ["cosine"]


register_embedding_function(HivegraphEmbeddingFunction)


def registry_name(embedder: Embedder) -> str:
    """Find the `EMBEDDERS` name whose class is `type(embedder)`.

    Raises:
        ConfigError: no registered backend builds this class.

    """
    names = EMBEDDERS.names()
    for name in dict.fromkeys([embedder.name, *names]):
        if name in names and _load_or_none(name) is type(embedder):
            return name
    raise ConfigError(
        f"embedder {type(embedder).__name__} is not registered in hivegraph.registry.EMBEDDERS; "
        "register it so that a Chroma collection can rebuild it",
        field="embedder.backend",
    )


def _load_or_none(name: str) -> type[Any] | None:
    try:
        return EMBEDDERS.load(name)
    except (ImportError, AttributeError):
        return None
