"""Swap by configuration: the research example on the `embedded` profile, then on `server`, changing only the YAML.

Both runs answer the same three questions with the same scripted model
(tests/unit/test_examples.py). The `server` YAML names the services this test
session started: Chroma (`chroma run`), ArcadeDB over Bolt for the Neo4j
graph store (or the user's Neo4j when `NEO4J_URI` is set), and PostgreSQL for
the journal and the checkpointer. The rows must be equal, the memory must be on
the servers, and the server run must leave its data folder empty.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import chromadb
import psycopg
import pytest
import yaml
from chromadb.config import Settings

from hivegraph.memory.graph.neo4j import Neo4jGraph
from hivegraph.memory.stores.chroma import close_client
from hivegraph.memory.types import Scope
from hivegraph.models.testing import FunctionModel
from tests.fixtures.bolt_server import BoltDatabase
from tests.fixtures.chroma_server import ChromaServer, chroma_client
from tests.unit.test_examples import hotpot_rows, load, researcher

pytestmark = pytest.mark.integration

EMBEDDER: dict[str, Any] = {"embedder": {"backend": "hash"}}
"""The one section the two YAML files share: everything else is the profile and its backends."""
EMBEDDED: dict[str, Any] = {"profile": "embedded", **EMBEDDER}


@pytest.fixture
def prefix(chroma_server: ChromaServer) -> Iterator[str]:
    """A Chroma collection prefix of this test's own; its collections are dropped after."""
    prefix = f"swap{uuid.uuid4().hex[:12]}"
    yield prefix
    client = chroma_client(chroma_server)
    try:
        for collection in client.list_collections():
            if collection.name.startswith(prefix):
                client.delete_collection(collection.name)
    finally:
        close_client(client)


def server_yaml(chroma: ChromaServer, prefix: str, bolt: BoltDatabase, dsn: str) -> dict[str, Any]:
    """`profile: server` with the addresses and logins of the services this session started."""
    neo4j: dict[str, Any] = {"uri": bolt.uri, "user": bolt.user, "password": bolt.password}
    if bolt.database is not None:
        neo4j["database"] = bolt.database
    return {
        "profile": "server",
        **EMBEDDER,
        "vector_store": {"chroma": {"host": chroma.host, "port": chroma.port, "collection_prefix": prefix}},
        "graph_store": {"neo4j": neo4j},
        "journal": {"postgres": {"dsn": dsn}},
        "checkpointer": {"postgres": {"dsn": dsn}},
    }


async def run_example(config: dict[str, Any], folder: Path, data: Path) -> list[dict[str, Any]]:
    """The research example on `data` with the scripted model, configured by `config` written as YAML."""
    folder.mkdir()
    path = folder / "hivegraph.yaml"
    path.write_text(yaml.safe_dump(config))
    research = load("research_team")
    argv = ["--config", str(path), "--data", str(data), "--questions", "3", "--data-dir", str(folder / "stores")]
    rows: list[dict[str, Any]] = await research.main(argv, model=FunctionModel(researcher))
    return rows


RECORDS_BY_TEAM = "SELECT team_id, count(*) FROM hg_versions GROUP BY team_id"
"""Record versions in a journal by team scope (the same tables in SQLite and PostgreSQL)."""


def embedded_records(stores: Path) -> dict[str, int]:
    """Record versions by team in the SQLite journals of both conditions."""
    counts: dict[str, int] = {}
    for condition in ("memory-off", "memory-on"):
        with closing(sqlite3.connect(stores / condition / "journal.sqlite")) as conn:
            counts.update(conn.execute(RECORDS_BY_TEAM).fetchall())
    return counts


def postgres_records(dsn: str) -> tuple[dict[str, int], int]:
    """Record versions by team in the PostgreSQL journal, and the checkpoints beside them."""
    with psycopg.connect(dsn) as conn:
        records = {team: n for team, n in conn.execute(RECORDS_BY_TEAM).fetchall()}
        checkpoints = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
    assert checkpoints is not None
    return records, checkpoints[0]


def embedded_vectors(stores: Path) -> int:
    """Vectors in the embedded Chroma databases of both conditions."""
    total = 0
    for condition in ("memory-off", "memory-on"):
        client = chromadb.PersistentClient(path=str(stores / condition / "chroma"), settings=Settings(
            anonymized_telemetry=False))  # fmt: skip
        try:
            total += sum(c.count() for c in client.list_collections())
        finally:
            close_client(client)
    return total


def server_vectors(chroma: ChromaServer, prefix: str) -> int:
    """Vectors in this test's collections on the Chroma server."""
    client = chroma_client(chroma)
    try:
        return sum(c.count() for c in client.list_collections() if c.name.startswith(prefix))
    finally:
        close_client(client)


async def task_nodes(bolt: BoltDatabase, scope: Scope) -> int:
    """G-Memory `Task` nodes in `scope` on the Bolt server."""
    graph: Neo4jGraph = bolt.open()
    try:
        return len(await graph.nodes_of("Task", scope=scope))
    finally:
        await graph.aclose()


async def test_the_research_example_swaps_from_embedded_to_server_by_its_yaml_alone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chroma_server: ChromaServer,
    prefix: str,
    bolt_database: BoltDatabase,
    postgres_dsn: str,
) -> None:
    for var in [v for v in os.environ if v.startswith("HIVEGRAPH_")]:
        monkeypatch.delenv(var)  # the YAML alone configures each run
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "hotpot.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in hotpot_rows()) + "\n")

    server_config = server_yaml(chroma_server, prefix, bolt_database, postgres_dsn)
    changed = {key for key in EMBEDDED.keys() | server_config.keys() if EMBEDDED.get(key) != server_config.get(key)}
    assert changed == {"profile", "vector_store", "graph_store", "journal", "checkpointer"}

    embedded = await run_example(EMBEDDED, tmp_path / "embedded", data)
    server = await run_example(server_config, tmp_path / "server", data)

    assert server == embedded
    assert [r["memory"] for r in server] == ["off", "on"] and server[1]["recalled"] > 0
    assert not (tmp_path / "server" / "stores").exists(), "the server run wrote nothing to an embedded data folder"
    # The same memory, kept apart by condition, went to the servers instead of the two embedded folders.
    stores = tmp_path / "embedded" / "stores"
    research = load("research_team")
    off, on = (research.condition_scope(memory=m).team_id for m in (False, True))
    records, checkpoints = postgres_records(postgres_dsn)
    assert records == embedded_records(stores) and records[off] > 0 and records[on] > records[off]
    assert checkpoints > 0
    assert server_vectors(chroma_server, prefix) == embedded_vectors(stores) > 0
    assert await task_nodes(bolt_database, research.condition_scope(memory=True)) == 3  # G-Memory: one per question
    assert await task_nodes(bolt_database, research.condition_scope(memory=False)) == 0
