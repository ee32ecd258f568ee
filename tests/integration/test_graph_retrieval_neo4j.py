"""Graph-aware retrieval on a real Bolt server (ArcadeDB; and the user's Neo4j when `NEO4J_URI` is set):
the entity graph projected into `Neo4jGraph` and the `graph` source read from it, scoped."""

from __future__ import annotations

import pytest

from hivegraph.memory.journal_memory import InMemoryJournal
from tests.fixtures.bolt_server import BoltDatabase
from tests.unit.test_graph_retrieval import check_kinds_times_and_versions, check_multi_hop_and_scopes, open_memory

pytestmark = pytest.mark.integration


async def test_multi_hop_and_scopes_on_a_bolt_server(bolt_database: BoltDatabase) -> None:
    memory = await open_memory(bolt_database.open(), InMemoryJournal()).open()
    try:
        await check_multi_hop_and_scopes(memory)
    finally:
        await memory.aclose()


async def test_kinds_times_and_versions_on_a_bolt_server(bolt_database: BoltDatabase) -> None:
    memory = await open_memory(bolt_database.open(), InMemoryJournal()).open()
    try:
        await check_kinds_times_and_versions(memory)
        assert (await memory.verify()).clean
    finally:
        await memory.aclose()
