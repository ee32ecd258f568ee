"""The graph stores `graph_store.backend` names, each built from settings (`hivegraph.registry.GRAPH_STORES`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hivegraph.memory.graph.memory import InMemoryGraph
from hivegraph.memory.graph.sqlite import SqliteGraph

if TYPE_CHECKING:
    from hivegraph.config import HivegraphSettings
    from hivegraph.memory.graph.store import GraphStore


def sqlite_graph(settings: HivegraphSettings) -> GraphStore:
    """The graph in SQLite tables: `graph_store.sqlite.path`, by default the SQLite journal's own file.

    With another journal backend the default is `<data_dir>/graph.sqlite`.
    """
    own = settings.graph_store.sqlite.path
    if own is None and settings.journal.backend == "sqlite":
        own = settings.resolve(settings.journal.sqlite.path, "journal.sqlite")
    return SqliteGraph(settings.resolve(own, "graph.sqlite"), synchronous=settings.graph_store.sqlite.synchronous)


def inmemory_graph(settings: HivegraphSettings) -> GraphStore:
    """The reference graph, in this process only."""
    del settings
    return InMemoryGraph()


def ladybug_graph(settings: HivegraphSettings) -> GraphStore:
    """The graph in a ladybug file (`graph_store.ladybug.path`, default `<data_dir>/graph.lbug`), one process only."""
    from hivegraph.memory.graph.ladybug import LadybugGraph

    return LadybugGraph(settings.resolve(settings.graph_store.ladybug.path, "graph.lbug"))


def neo4j_graph(settings: HivegraphSettings) -> GraphStore:
    """The graph on a Neo4j (or other Bolt) server, through the official driver."""
    from hivegraph.memory.graph.neo4j import Neo4jGraph

    neo4j = settings.graph_store.neo4j
    return Neo4jGraph(
        neo4j.uri, user=neo4j.user, password=neo4j.password.get_secret_value(), database=neo4j.database,
        timeout_s=neo4j.timeout_s,
    )  # fmt: skip
