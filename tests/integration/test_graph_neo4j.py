"""`Neo4jGraph` on a real Bolt server (ArcadeDB; and the user's Neo4j when `NEO4J_URI` is set): the graph
conformance suite, Cypher injection, scope isolation, two writers, the schema, and unreachable servers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, LiteralString

import pytest
from neo4j import AsyncGraphDatabase
from neo4j.exceptions import ConstraintError

from hivegraph.errors import (
    BackendUnavailableError,
    ConfigError,
    InvalidInputError,
    JournalSchemaError,
    MemoryStoreError,
)
from hivegraph.memory.graph import GraphCounts, GraphEdge, GraphNode, GraphStore
from hivegraph.memory.graph.conformance import GRAPH_CHECKS, edge, graph_checks, insight, message, task
from hivegraph.memory.graph.neo4j import SCHEMA_VERSION, Neo4jGraph, schema_statements
from hivegraph.memory.types import Scope
from hivegraph.memory.validation import Scalar
from tests.fixtures.bolt_server import BoltDatabase

pytestmark = pytest.mark.integration

ADA = Scope(user_id="ada")
PASSWORD = "hunter2-bolt"
NASTY = [
    "x'}) DETACH DELETE n //",
    'x"}) MATCH (m) DETACH DELETE m RETURN 1 //',
    "`HgNode`) DETACH DELETE n; //",
    "{id: 'other'} ${param} $ids $scope_user_id",
    "\\'\\\"\\\\ \n\t\r -- /* */ ; DROP DATABASE neo4j",
    "ü ✓ 🎉 \u2028 \x00 end",
]
"""Strings that would break, or change, a query that pasted them in."""
UNREACHABLE_WITHIN_S = 10.0
"""`timeout_s=1` and the driver's bounded retries: an unreachable server is reported well within this."""


async def cypher(target: BoltDatabase, query: LiteralString, **params: Any) -> list[dict[str, Any]]:
    """Run one query on the test's database with a driver of our own, as another client would."""
    driver = AsyncGraphDatabase.driver(target.uri, auth=(target.user, target.password))  # pyright: ignore[reportUnknownMemberType]
    try:
        async with driver.session(database=target.database) as session:  # pyright: ignore[reportUnknownMemberType]
            return await (await session.run(query, params)).data()
    finally:
        await driver.close()


# Where ArcadeDB differs from Neo4j, the backend writes Cypher that suits both, and the suite checks the results:
#   - `(a)<-[r]-(b) WHERE a.id IN $ids` took 210 ms on ArcadeDB over 5,000 nodes (it seems to start from `b`),
#     `(a)-[r]-(b) WHERE ... AND endNode(r) = a` 12 ms: an incoming hop is written the second way
#     (neighbours_follow_types_directions_and_labels checks it);
#   - it uses a relationship index only with anonymous ends, so edges are found by id as `()-[r:T]->()` with
#     `startNode(r).id` and `endNode(r).id`, and updated through `WHERE r.id IN $ids` rather than per UNWIND row;
#   - `CREATE (n {...})` is many times faster there than `MERGE` then `SET n += row`: new items are created,
#     stored ones updated (the idempotency checks cover both paths);
#   - element ids look like `#1:0`; the backend never reads them, only its own `id` property.
@pytest.mark.parametrize("name", graph_checks(persistent=True))
async def test_the_conformance_suite_passes_on_a_bolt_server(name: str, bolt_database: BoltDatabase) -> None:
    async def open_graph() -> GraphStore:
        return bolt_database.open()

    await GRAPH_CHECKS[name](open_graph)


async def test_injection_through_ids_text_properties_and_scopes_is_stored_as_data(bolt_database: BoltDatabase) -> None:
    graph = bolt_database.open()
    try:
        await graph.upsert([task("bystander"), task("b2")], [edge("SIMILAR", "bystander", "b2")], seq=1)
        for n, nasty in enumerate(NASTY):
            scope = Scope(user_id=nasty, agent_id=f"{nasty}-agent")
            properties: dict[str, Scalar] = {nasty[:100]: nasty, "`key`": "{a: $b}", "$param": n, "{}": 0.5}
            start, end = GraphNode(nasty, "Task", scope, nasty, properties), task(f"{nasty}+end", scope=scope)
            link = GraphEdge(f"{nasty}-edge", "SIMILAR", nasty, end.id, scope, 0.25, {"why": nasty})
            await graph.upsert([start, end], [link], seq=n + 2)

            (got,) = await graph.get_nodes([nasty], scope=scope)
            assert got == GraphNode(nasty, "Task", scope, nasty, properties, seq=n + 2)
            assert await graph.get_edges([link.id], scope=scope) == [replace(link, seq=n + 2)]
            assert [x.node.id for x in await graph.neighbours([nasty], scope=scope)] == [end.id]
            assert [x.id for x in await graph.nodes_of("Task", scope=scope)] == sorted([nasty, end.id])
            assert await graph.get_nodes([nasty], scope=ADA) == [], "another scope never sees it"

        assert await graph.counts() == GraphCounts(2 + 2 * len(NASTY), 1 + len(NASTY), 0, 0), "nothing else happened"
        retired = await graph.retire(node_ids=NASTY, scope=Scope(), seq=100)
        assert sorted(retired.nodes) == sorted(NASTY)
        assert [x.node.id for x in await graph.neighbours(["bystander"], scope=ADA)] == ["b2"]
    finally:
        await graph.aclose()


async def test_labels_and_types_outside_the_schema_never_reach_a_query(bolt_database: BoltDatabase) -> None:
    graph = bolt_database.open()
    try:
        label: Any = "Task) DETACH DELETE n //"
        with pytest.raises(InvalidInputError, match="unknown node label"):
            await graph.upsert([GraphNode("x", label, ADA)], [], seq=1)
        with pytest.raises(InvalidInputError, match="unknown node label"):
            await graph.nodes_of(label, scope=ADA)
        type_: Any = "SIMILAR]-() DETACH DELETE r //"
        with pytest.raises(InvalidInputError, match="unknown edge type"):
            await graph.neighbours(["x"], scope=ADA, edge_types=[type_])
    finally:
        await graph.aclose()


async def test_properties_are_one_json_string_and_scopes_are_plain_properties(bolt_database: BoltDatabase) -> None:
    graph = bolt_database.open()
    try:
        scope = Scope(user_id="ada", team_id="red")
        await graph.upsert([message("m", 3, scope=scope)], [], seq=1)
    finally:
        await graph.aclose()
    [row] = await cypher(bolt_database, "MATCH (n:HgNode {id: 'm'}) RETURN n AS n, labels(n) AS labels")
    assert sorted(row["labels"]) == ["HgNode", "Message"]
    assert row["n"]["properties_json"] == '{"step":3,"agent":"planner"}'
    assert (row["n"]["user_id"], row["n"]["team_id"], "agent_id" in row["n"]) == ("ada", "red", False)


async def test_a_read_never_crosses_scopes_even_for_near_miss_values(bolt_database: BoltDatabase) -> None:
    graph = bolt_database.open()
    near = ["Ada", "ada ", " ada", "ada\x00", "ad", "adam", "ada' OR 'a'='a", "ada\\"]
    try:
        for n, value in enumerate(["ada", *near]):
            scope = Scope(user_id=value)
            nodes = [task(f"t{n}", scope=scope), message(f"m{n}", 0, scope=scope), insight(f"i{n}", 1, scope=scope)]
            edges = [edge("HAS_STEP", f"t{n}", f"m{n}", scope=scope), edge("SUPPORTS", f"t{n}", f"i{n}", scope=scope)]
            await graph.upsert(nodes, edges, seq=n + 1)
        everyone = [f"{kind}{n}" for n in range(len(near) + 1) for kind in "tmi"]
        assert [x.id for x in await graph.get_nodes(everyone, scope=ADA)] == ["t0", "m0", "i0"]
        assert [x.id for x in await graph.nodes_of("Task", scope=ADA)] == ["t0"]
        assert [x.node.id for x in await graph.neighbours(everyone, scope=ADA)] == []
        assert [x.id for x in (await graph.subgraph(everyone, scope=ADA, hops=2)).nodes] == ["i0", "m0", "t0"]
        assert [x.id for x in await graph.trajectory("t1", scope=ADA)] == []
        assert [r.insight.id for r in await graph.insights_for([f"t{n}" for n in range(9)], scope=ADA)] == ["i0"]
        narrower = Scope(user_id="ada", agent_id="planner")
        assert await graph.get_nodes(["t0"], scope=narrower) == [], "a scope with more fields sees less"
        assert len(await graph.get_nodes(everyone, scope=Scope())) == len(everyone), "the global scope sees all"
    finally:
        await graph.aclose()


async def test_two_graph_handles_writing_at_once_lose_nothing(bolt_database: BoltDatabase) -> None:
    """Two handles stand for two processes: each queues its own writes, so they only contend with each other.

    ArcadeDB has optimistic concurrency: where Neo4j makes the second writer wait on the meta node's lock,
    ArcadeDB fails it at commit with a transient `DeadlockDetected`, and the driver runs it again.
    """
    first, second = bolt_database.open(timeout_s=60), bolt_database.open(timeout_s=60)
    try:
        await first.upsert([task("hub")], [], seq=1)

        async def write(graph: Neo4jGraph, name: str, n: int) -> None:
            node_id = f"{name}{n}"
            await graph.upsert([task(node_id)], [edge("SIMILAR", "hub", node_id)], seq=2 + n)

        await asyncio.gather(
            *(write(graph, name, n) for n in range(6) for graph, name in ((first, "a"), (second, "b")))
        )
        assert len(await second.neighbours(["hub"], scope=ADA)) == 12
        assert await first.counts() == GraphCounts(13, 12, 0, 0)
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_schema_is_created_once_and_again_without_error(bolt_database: BoltDatabase) -> None:
    graph, other = bolt_database.open(), bolt_database.open()
    try:
        await graph.ensure_schema()
        await graph.ensure_schema()
        await other.upsert([task("a")], [], seq=1)  # creates it again on first use, from another handle
        await other.ensure_schema()
    finally:
        await graph.aclose()
        await other.aclose()
    names = {row["name"] for row in await cypher(bolt_database, "SHOW CONSTRAINTS YIELD name RETURN name")}
    wanted = {statement.split()[2] for statement in schema_statements() if "CONSTRAINT" in statement}
    assert wanted <= names
    with pytest.raises(ConstraintError):  # the server, not only the planner, keeps ids unique
        await cypher(bolt_database, "CREATE (n:HgNode:Insight {id: 'a'})")


async def test_a_graph_written_by_a_newer_hivegraph_is_refused(bolt_database: BoltDatabase) -> None:
    graph = bolt_database.open()
    await graph.advance(1)
    await graph.aclose()
    await cypher(bolt_database, "MATCH (m:HgMeta {key: 'graph'}) SET m.schema_version = $v", v=SCHEMA_VERSION + 1)
    graph = bolt_database.open()
    try:
        with pytest.raises(JournalSchemaError, match=f"schema {SCHEMA_VERSION + 1}"):
            await graph.cursor()
    finally:
        await graph.aclose()
        await cypher(bolt_database, "MATCH (m:HgMeta {key: 'graph'}) SET m.schema_version = $v", v=SCHEMA_VERSION)


async def test_server_errors_become_memory_store_errors(bolt_database: BoltDatabase) -> None:
    wrong = Neo4jGraph(bolt_database.uri, user=bolt_database.user, password="not-the-password", timeout_s=2)
    try:
        with pytest.raises(MemoryStoreError, match="failed") as info:
            await wrong.cursor()
        assert not isinstance(info.value, BackendUnavailableError)
    finally:
        await wrong.aclose()
    graph = bolt_database.open()
    await graph.aclose()
    with pytest.raises(MemoryStoreError, match="closed"):
        await graph.counts()


@pytest.mark.parametrize("port_fixture", ["closed_port", "silent_port"])
async def test_an_unreachable_server_is_reported_quickly_naming_the_uri(
    request: pytest.FixtureRequest, port_fixture: str
) -> None:
    port: int = request.getfixturevalue(port_fixture)
    uri = f"bolt://127.0.0.1:{port}"
    graph = Neo4jGraph(uri, user="neo4j", password=PASSWORD, timeout_s=1)
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailableError) as info:
            async with asyncio.timeout(UNREACHABLE_WITHIN_S * 3):  # a hang fails the test instead of waiting
                await graph.upsert([task("a")], [], seq=1)
    finally:
        await graph.aclose()
    assert time.monotonic() - started < UNREACHABLE_WITHIN_S
    assert uri in info.value.backend
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize("uri", ["http://127.0.0.1:7474", "127.0.0.1:7687", "", f"bolt://neo4j:{PASSWORD}@127.0.0.1"])
def test_a_uri_that_is_not_bolt_or_holds_credentials_is_a_config_error(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        Neo4jGraph(uri, user="neo4j", password=PASSWORD)
    assert PASSWORD not in str(info.value)
