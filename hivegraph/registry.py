"""Backend registries: built-ins registered in code, plugins through entry points.

Each interface has one `Registry`. A backend is named by `module:attribute`
and imported only when chosen, so a missing optional dependency fails only for
the user who picked that backend.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from hivegraph.config import HivegraphSettings
from hivegraph.errors import ConfigError

T = TypeVar("T")


@dataclass
class Registry(Generic[T]):
    """Named backends for one interface, chosen from configuration."""

    kind: str
    """What the backends are, for messages ("vector store")."""
    setting: str
    """The setting that names the backend ("vector_store.backend")."""
    group: str
    """Entry-point group through which plugins add backends."""
    builtins: dict[str, str]
    _extra: dict[str, str | type[T]] = field(default_factory=dict[str, "str | type[T]"])

    def names(self) -> list[str]:
        """Every backend name that can be chosen."""
        return sorted(self._paths())

    def register(self, name: str, target: str | type[T]) -> None:
        """Add (or replace) a backend by `module:attribute` path or class."""
        self._extra[name] = target

    def unregister(self, name: str) -> None:
        """Remove a backend added with `register`."""
        self._extra.pop(name, None)

    @contextmanager
    def registered(self, name: str, target: str | type[T]) -> Generator[None]:
        """Register a backend for the duration of a `with` block (tests use this)."""
        previous = self._extra.get(name)
        self.register(name, target)
        try:
            yield
        finally:
            if previous is None:
                self.unregister(name)
            else:
                self._extra[name] = previous

    def check(self, name: str) -> None:
        """Raise `ConfigError` unless `name` is a known backend."""
        if name not in self._paths():
            raise ConfigError(
                f"{self.setting}: unknown {self.kind} {name!r}; available: {', '.join(self.names())}",
                field=self.setting,
            )

    def load(self, name: str) -> type[T]:
        """Import and return the backend class called `name`.

        Raises:
            ConfigError: `name` is not registered.
            ImportError: the backend's optional dependency is not installed.

        """
        self.check(name)
        target = self._paths()[name]
        if not isinstance(target, str):
            return target
        module_name, _, attr = target.partition(":")
        return getattr(import_module(module_name), attr)

    def _paths(self) -> Mapping[str, str | type[T]]:
        plugins: dict[str, str | type[T]] = {ep.name: ep.value for ep in entry_points(group=self.group)}
        return {**self.builtins, **plugins, **self._extra}


CHAT_MODELS: Registry[Any] = Registry(
    kind="chat model provider",
    setting="model.provider",
    group="hivegraph.models",
    builtins={
        "openai_compat": "hivegraph.models.openai_compat:OpenAICompatModel",
        "vllm": "hivegraph.models.openai_compat:OpenAICompatModel",
    },
)
EMBEDDERS: Registry[Any] = Registry(
    kind="embedder",
    setting="embedder.backend",
    group="hivegraph.embedders",
    builtins={
        "minilm": "hivegraph.models.minilm:MiniLMEmbedder",
        "openai": "hivegraph.models.embeddings:OpenAICompatEmbedder",
        "hash": "hivegraph.models.testing:HashEmbedder",
    },
)
VECTOR_STORES: Registry[Any] = Registry(
    kind="vector store",
    setting="vector_store.backend",
    group="hivegraph.vector_stores",
    builtins={
        "chroma": "hivegraph.memory.stores.chroma:ChromaSpace",
        "inmemory": "hivegraph.memory.stores.inmemory:InMemorySpace",
    },
)
"""`VectorSpace` classes, each with `from_settings(settings)`."""
JOURNALS: Registry[Any] = Registry(
    kind="journal",
    setting="journal.backend",
    group="hivegraph.journals",
    builtins={
        "sqlite": "hivegraph.memory.journal_sqlite:SqliteJournal",
        "postgres": "hivegraph.memory.journal_postgres:PostgresJournal",
        "inmemory": "hivegraph.memory.journal_memory:InMemoryJournal",
    },
)
PROJECTIONS: Registry[Any] = Registry(
    kind="projection",
    setting="memory.projections",
    group="hivegraph.projections",
    builtins={"graph": "hivegraph.memory.graph.projection:GraphProjection"},
)
"""Further projections of the journal (a graph, say); each class has `from_settings(settings)`."""
GRAPH_STORES: Registry[Any] = Registry(
    kind="graph store",
    setting="graph_store.backend",
    group="hivegraph.graph_stores",
    builtins={
        "sqlite": "hivegraph.memory.graph.factories:sqlite_graph",
        "inmemory": "hivegraph.memory.graph.factories:inmemory_graph",
        "ladybug": "hivegraph.memory.graph.factories:ladybug_graph",
        "neo4j": "hivegraph.memory.graph.factories:neo4j_graph",
    },
)
"""Functions `(settings) -> GraphStore`."""

CHECKPOINTERS: Registry[Any] = Registry(
    kind="checkpointer",
    setting="checkpointer.backend",
    group="hivegraph.checkpointers",
    builtins={
        "sqlite": "hivegraph.graphs.checkpoint:sqlite_checkpointer",
        "memory": "hivegraph.graphs.checkpoint:memory_checkpointer",
        "postgres": "hivegraph.graphs.checkpoint:postgres_checkpointer",
    },
)


def check_backends(settings: HivegraphSettings) -> None:
    """Raise `ConfigError` if any configured backend name is unknown."""
    CHAT_MODELS.check(settings.model.provider)
    EMBEDDERS.check(settings.embedder.backend)
    VECTOR_STORES.check(settings.vector_store.backend)
    JOURNALS.check(settings.journal.backend)
    GRAPH_STORES.check(settings.graph_store.backend)
    for name in settings.memory.projections:
        PROJECTIONS.check(name)
    CHECKPOINTERS.check(settings.checkpointer.backend)
