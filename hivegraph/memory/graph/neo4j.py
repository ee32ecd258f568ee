"""`Neo4jGraph`: the memory graph on a Neo4j server, or any Bolt server that speaks Cypher, via the official driver.

Each node carries two labels: `HgNode` (its `id` is unique there) and its
schema label (`Task`, `Message`, `Insight`); each edge is a relationship of its
schema type with an `id` unique per type. Scope fields are plain properties (a
field left unset is no property), and a node's or edge's `properties` are kept
as one JSON string, since a Neo4j property cannot hold a map. The cursor lives
in one `HgMeta` node, beside the layout version. Element ids are never used.

Every write call is one transaction that first updates the meta node, so
writers in every process are serialised (Neo4j locks the node; a server with
optimistic concurrency, such as ArcadeDB, fails all but one and the driver
retries the others), then reads the items the call refers to, plans with the
shared `plan_upsert` / `plan_retire`, and writes the plan. Writes of one
`Neo4jGraph` also queue in this process, so they do not collide at all. Reads
run in one read transaction each (read-committed, not one snapshot, on Neo4j).
Traversals go one hop per query, from the ids reached so far, so that their
cost follows the nodes reached rather than the paths between them.

Constraints and indexes are created on first use (`IF NOT EXISTS`). Every id,
text, property and scope value is a query parameter; the only names written
into a query are schema labels and types, checked again where they are
formatted, and the fixed scope field names (pyright checks that every query is
a `LiteralString`). No similarity is computed here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, LiteralString, TypeVar, cast
from urllib.parse import urlsplit

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction, AsyncSession
from neo4j.exceptions import ClientError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired
from neo4j.graph import Node, Relationship

from hivegraph.errors import BackendUnavailableError, ConfigError, JournalSchemaError, MemoryStoreError
from hivegraph.memory.graph.plan import (
    check_direction,
    check_edge_type,
    check_edge_types,
    check_hops,
    check_id,
    check_ids,
    check_label,
    check_labels,
    check_limit,
    check_retire,
    check_seq,
    plan_retire,
    plan_upsert,
    properties_json,
    rank_insights,
    referenced,
    step_of,
    stored_scope,
)
from hivegraph.memory.graph.store import GraphCounts, GraphEdge, GraphNode, Neighbour, RankedInsight, Retired, Subgraph
from hivegraph.memory.types import SCOPE_FIELDS, Scope, ensure_scope
from hivegraph.memory.vocabulary import EDGE_ENDPOINTS, NODE_LABELS, Direction, EdgeType, NodeLabel

R = TypeVar("R")
Tx = AsyncManagedTransaction
SCHEMA_VERSION = 1
"""The layout of the nodes, relationships and meta node this module writes."""
SCHEMES = frozenset({"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"})
META_KEY = "graph"
"""The `key` of the one `HgMeta` node that holds the cursor."""
SCOPE_KEYS = cast(tuple[LiteralString, ...], SCOPE_FIELDS)
"""The scope property names (a constant of hivegraph, never input)."""
EDGE_TYPE_LIST: tuple[EdgeType, ...] = tuple(sorted(EDGE_ENDPOINTS))
_NODE_KEYS: tuple[LiteralString, ...] = ("id", "text", "properties_json", "seq", *SCOPE_KEYS)
_EDGE_KEYS: tuple[LiteralString, ...] = ("id", "weight", "properties_json", "seq", *SCOPE_KEYS)
_NODE_MAP = "{" + ", ".join(f"{key}: row.{key}" for key in _NODE_KEYS) + "}"
"""The properties of a new node, from its row (a null value stores no property)."""
_EDGE_MAP = "{" + ", ".join(f"{key}: row.{key}" for key in _EDGE_KEYS) + "}"
_NODE_SET = "n.text = row.text, n.properties_json = row.properties_json, n.seq = row.seq, n.retired_seq = null"
"""What a later write changes in a stored node (its label and scope never change)."""
_EDGE_SET = "r.weight = row.weight, r.properties_json = row.properties_json, r.seq = row.seq, r.retired_seq = null"
_EDGE_ROW = "RETURN r, startNode(r).id AS source, endNode(r).id AS target"
_TOUCHING = f"MATCH (n:HgNode)-[r]-(:HgNode) WHERE n.id IN $ids AND r.retired_seq IS NULL {_EDGE_ROW}"
_HOP: dict[Direction, tuple[LiteralString, LiteralString]] = {
    "out": ("->", ""),
    "in": ("-", " AND endNode(r) = a"),  # not `(a)<-[r]-(b)`: about 20 times slower on ArcadeDB
    "both": ("-", ""),
}
"""How one hop leaves a node of the frontier `a`: the arrow, and any condition on the edge."""
_LOCK = (
    "MERGE (m:HgMeta {key: $key}) ON CREATE SET m.cursor = 0, m.schema_version = $version"
    " SET m.writes = coalesce(m.writes, 0) + 1 RETURN m.schema_version"
)
"""Opens every write: updating the meta node serialises writers (and recreates it if it was deleted)."""


def schema_statements() -> list[LiteralString]:
    """The constraints and range indexes the graph needs, each created only if missing."""
    statements: list[LiteralString] = [
        "CREATE CONSTRAINT hg_node_id IF NOT EXISTS FOR (n:HgNode) REQUIRE n.id IS UNIQUE",
        "CREATE CONSTRAINT hg_meta_key IF NOT EXISTS FOR (m:HgMeta) REQUIRE m.key IS UNIQUE",
    ]
    statements.extend(
        f"CREATE CONSTRAINT hg_edge_id_{t.lower()} IF NOT EXISTS FOR ()-[r:{t}]-() REQUIRE r.id IS UNIQUE"
        for t in EDGE_TYPE_LIST
    )
    statements.extend(f"CREATE INDEX hg_node_{name} IF NOT EXISTS FOR (n:HgNode) ON (n.{name})" for name in SCOPE_KEYS)
    statements.append("CREATE INDEX hg_entity_text IF NOT EXISTS FOR (n:Entity) ON (n.text)")
    return statements


class Neo4jGraph:
    """The memory graph on a Bolt server (Neo4j 5.7 or later, or ArcadeDB's Bolt plugin), kept on the server.

    Every call raises `BackendUnavailableError` (naming the URI) when the server
    cannot be reached within `timeout_s`, and `MemoryStoreError` when it refuses
    or fails a query, beside the input errors every `GraphStore` raises.
    """

    def __init__(
        self, uri: str, *, user: str, password: str, database: str | None = None, timeout_s: float = 10.0
    ) -> None:
        """Prepare a driver for `uri`; nothing is sent before the first call.

        Args:
            uri: The server, as `bolt://host:port` or `neo4j://host:port` (`+s` / `+ssc` for TLS).
            user: The user to authenticate as.
            password: Their password.
            database: The database to use (None: the server's default).
            timeout_s: How long to wait for a connection and for a free pooled one, and how long a
                transaction is retried after transient failures (such as a concurrent writer).

        Raises:
            ConfigError: the URI is not a Bolt URI or holds credentials, or `timeout_s` is not positive.

        """
        parts = urlsplit(uri)
        if parts.scheme not in SCHEMES or not timeout_s > 0:
            raise ConfigError(f"neo4j graph needs a URI with a scheme in {sorted(SCHEMES)} and timeout_s > 0")
        if "@" in parts.netloc:
            raise ConfigError("neo4j graph: give the credentials as user= and password=, not in the URI")
        self.uri, self.database = uri, database
        self._name = f"neo4j graph {self.uri}" + (f" (database {database})" if database else "")
        try:
            self._driver: AsyncDriver = AsyncGraphDatabase.driver(  # pyright: ignore[reportUnknownMemberType] - **config is unannotated
                uri, auth=(user, password), connection_timeout=timeout_s, connection_acquisition_timeout=timeout_s,
                max_transaction_retry_time=timeout_s, warn_notification_severity="OFF", telemetry_disabled=True,
            )  # fmt: skip
        except (DriverError, ValueError) as exc:
            raise ConfigError(f"{self._name}: {exc}") from exc
        self._write_lock = asyncio.Lock()
        """Queues this graph's writes, which would otherwise all contend for the meta node."""
        self._schema_lock = asyncio.Lock()
        self._schema_ready = False
        self._closed = False

    @property
    def persistent(self) -> bool:
        """Always: the graph lives on the server."""
        return True

    async def upsert(self, nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], *, seq: int) -> None:
        """Write `nodes`, then `edges`, as journal entry `seq`, all or nothing (see `GraphStore.upsert`)."""
        try:
            node_ids, edge_ids = referenced(nodes, edges)
        except (AttributeError, TypeError):
            plan_upsert(nodes, edges, seq, known_nodes={}, known_edges={})  # names the malformed field
            raise

        async def write(tx: Tx) -> None:
            known_nodes = {node.id: node for node in await _nodes_by_id(tx, node_ids)}
            known_edges = {edge.id: edge for edge in await _edges_by_id(tx, edge_ids)}
            plan = plan_upsert(nodes, edges, seq, known_nodes=known_nodes, known_edges=known_edges)
            await _write_nodes(tx, plan.nodes, known_nodes)
            await _write_edges(tx, plan.edges, known_edges)

        await self._write(write)

    async def retire(
        self, *, node_ids: Sequence[str] = (), edge_ids: Sequence[str] = (), scope: Scope, seq: int
    ) -> Retired:
        """Retire these nodes and edges in `scope`, and every current edge of the nodes (see `GraphStore.retire`)."""
        node_list, edge_list = check_retire(node_ids, edge_ids, scope, seq)

        async def write(tx: Tx) -> Retired:
            touching = [_edge(*row) for row in await _values(tx, _TOUCHING, ids=node_list)]
            nodes, edges = plan_retire(
                node_list, edge_list, scope=scope, seq=seq,
                known_nodes={node.id: node for node in await _nodes_by_id(tx, node_list)},
                known_edges={edge.id: edge for edge in [*await _edges_by_id(tx, edge_list), *touching]},
            )  # fmt: skip
            query = "MATCH (n:HgNode) WHERE n.id IN $ids SET n.retired_seq = $seq"
            await _run(tx, query, ids=[node.id for node in nodes], seq=seq)
            for type_, group in _grouped(edges, lambda edge: check_edge_type(edge.type)).items():
                query = f"MATCH ()-[r:{type_}]->() WHERE r.id IN $ids SET r.retired_seq = $seq"
                await _run(tx, query, ids=[edge.id for edge in group], seq=seq)
            return Retired(nodes=[node.id for node in nodes], edges=[edge.id for edge in edges])

        return await self._write(write)

    async def get_nodes(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphNode]:
        """The nodes with these ids in `scope`, in the order asked."""
        wanted, scope = check_ids(ids), ensure_scope(scope)
        found = {node.id: node for node in await self._read(lambda tx: _nodes_by_id(tx, wanted, scope))}
        return [node for i in wanted if (node := found.get(i)) is not None and (include_retired or not node.retired)]

    async def get_edges(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphEdge]:
        """The edges with these ids in `scope`, in the order asked."""
        wanted, scope = check_ids(ids), ensure_scope(scope)
        found = {edge.id: edge for edge in await self._read(lambda tx: _edges_by_id(tx, wanted, scope))}
        return [edge for i in wanted if (edge := found.get(i)) is not None and (include_retired or not edge.retired)]

    async def nodes_of(self, label: NodeLabel, *, scope: Scope, limit: int | None = None) -> list[GraphNode]:
        """The current nodes of one label in `scope`, by id."""
        label, scope = check_label(label), ensure_scope(scope)
        most = {"limit": check_limit(limit)} if limit is not None else {}
        query = (f"MATCH (n:HgNode:{label}) WHERE n.retired_seq IS NULL{_in_scope('n', scope)}"
                 f" RETURN n ORDER BY n.id{' LIMIT $limit' if most else ''}")  # fmt: skip
        rows = await self._read(lambda tx: _values(tx, query, **most, **_scope_args(scope)))
        return sorted((_node(row[0]) for row in rows), key=lambda node: node.id)

    async def entities_named(self, names: Sequence[str], *, scope: Scope) -> list[GraphNode]:
        """The current `Entity` nodes in `scope` whose text is one of `names`, by id."""
        wanted, scope = check_ids(names, "names"), ensure_scope(scope)
        query = (f"MATCH (n:HgNode:Entity) WHERE n.text IN $names AND n.retired_seq IS NULL{_in_scope('n', scope)}"
                 " RETURN n ORDER BY n.id")  # fmt: skip
        rows = await self._read(lambda tx: _values(tx, query, names=wanted, **_scope_args(scope)))
        return sorted((_node(row[0]) for row in rows), key=lambda node: node.id)

    async def neighbours(
        self,
        ids: Sequence[str],
        *,
        scope: Scope,
        hops: int = 1,
        edge_types: Sequence[EdgeType] | None = None,
        labels: Sequence[NodeLabel] | None = None,
        direction: Direction = "both",
    ) -> list[Neighbour]:
        """The nodes within `hops` of `ids`, by (hops, id); the starts themselves never (see `GraphStore`)."""
        starts, scope, hops = check_ids(ids), ensure_scope(scope), check_hops(hops)
        types, wanted, direction = check_edge_types(edge_types), check_labels(labels), check_direction(direction)
        reached = await self._read(lambda tx: _reach(tx, starts, scope, hops, types, direction))
        found = [
            Neighbour(node, depth) for node, depth in reached.values()
            if depth > 0 and (wanted is None or node.label in wanted)
        ]  # fmt: skip
        return sorted(found, key=lambda n: (n.hops, n.node.id))

    async def subgraph(
        self, ids: Sequence[str], *, scope: Scope, hops: int = 1, edge_types: Sequence[EdgeType] | None = None
    ) -> Subgraph:
        """The visible nodes of `ids`, those within `hops` of them, and every visible edge among them."""
        starts, scope, hops = check_ids(ids), ensure_scope(scope), check_hops(hops, least=0)
        types = check_edge_types(edge_types)
        query = (f"MATCH (a:HgNode)-[r{_types(types)}]->(b:HgNode) WHERE a.id IN $ids AND b.id IN $ids"
                 f" AND r.retired_seq IS NULL{_in_scope('r', scope)} RETURN r, a.id, b.id")  # fmt: skip

        async def read(tx: Tx) -> Subgraph:
            reached = await _reach(tx, starts, scope, hops, types, "both")
            edges = [_edge(*row) for row in await _values(tx, query, ids=list(reached), **_scope_args(scope))]
            nodes = sorted((node for node, _ in reached.values()), key=lambda node: node.id)
            return Subgraph(nodes=nodes, edges=sorted(edges, key=lambda edge: edge.id))

        return await self._read(read)

    async def trajectory(self, task_id: str, *, scope: Scope) -> list[GraphNode]:
        """The messages a task has (`HAS_STEP`), by step then id."""
        task_id, scope = check_id(task_id, "task_id"), ensure_scope(scope)
        query = (f"MATCH (t:HgNode:Task {{id: $task}})-[r:HAS_STEP]->(m:HgNode:Message)"
                 f" WHERE t.retired_seq IS NULL{_in_scope('t', scope)}"
                 f" AND r.retired_seq IS NULL{_in_scope('r', scope)}"
                 f" AND m.retired_seq IS NULL{_in_scope('m', scope)} RETURN m")  # fmt: skip
        rows = await self._read(lambda tx: _values(tx, query, task=task_id, **_scope_args(scope)))
        return sorted((_node(row[0]) for row in rows), key=lambda node: (step_of(node), node.id))

    async def insights_for(self, task_ids: Sequence[str], *, scope: Scope, limit: int = 10) -> list[RankedInsight]:
        """Insights supported by any of `task_ids`, ranked as `rank_insights` says."""
        tasks, scope, limit = check_ids(task_ids, "task_ids"), ensure_scope(scope), check_limit(limit)
        query = (f"MATCH (t:HgNode:Task)-[r:SUPPORTS]->(i:HgNode:Insight)"
                 f" WHERE t.id IN $tasks AND t.retired_seq IS NULL{_in_scope('t', scope)}"
                 f" AND r.retired_seq IS NULL{_in_scope('r', scope)}"
                 f" AND i.retired_seq IS NULL{_in_scope('i', scope)} RETURN t.id, i")  # fmt: skip
        rows = await self._read(lambda tx: _values(tx, query, tasks=tasks, **_scope_args(scope)))
        return rank_insights(((_node(value), task_id) for task_id, value in rows), tasks, limit)

    async def cursor(self) -> int:
        """The last journal `seq` applied (0 if none)."""
        rows = await self._read(lambda tx: _values(tx, "MATCH (m:HgMeta {key: $key}) RETURN m.cursor", key=META_KEY))
        return int(rows[0][0] or 0) if rows else 0

    async def advance(self, seq: int) -> None:
        """Move the cursor to `seq`, never back."""
        check_seq(seq)
        query = "MATCH (m:HgMeta {key: $key}) SET m.cursor = CASE WHEN m.cursor < $seq THEN $seq ELSE m.cursor END"
        await self._write(lambda tx: _run(tx, query, key=META_KEY, seq=seq))

    async def reset(self) -> None:
        """Forget every node, edge and the cursor, in one transaction."""

        async def clear(tx: Tx) -> None:
            await _run(tx, "MATCH (n:HgNode) DETACH DELETE n")
            await _run(tx, "MATCH (m:HgMeta {key: $key}) SET m.cursor = 0", key=META_KEY)

        await self._write(clear)

    async def counts(self) -> GraphCounts:
        """How many nodes and edges the graph holds, across every scope."""

        async def count(tx: Tx) -> GraphCounts:
            [[nodes, retired_nodes]] = await _values(tx, "MATCH (n:HgNode) RETURN count(n), count(n.retired_seq)")
            query = "MATCH (:HgNode)-[r]->(:HgNode) RETURN count(r), count(r.retired_seq)"
            [[edges, retired_edges]] = await _values(tx, query)
            return GraphCounts(nodes - retired_nodes, edges - retired_edges, retired_nodes, retired_edges)

        return await self._read(count)

    async def ensure_schema(self) -> None:
        """Create the constraints, indexes and meta node if missing (done by the first call; safe to repeat).

        Raises:
            BackendUnavailableError: the server cannot be reached.
            JournalSchemaError: the graph was written by a newer hivegraph.
            MemoryStoreError: the server refused a statement.

        """
        async with self._schema_lock:
            await self._session(self._create_schema)
            self._schema_ready = True

    async def _ready(self) -> None:
        """Create the schema once, before the first call (calls arriving meanwhile wait for it)."""
        if self._schema_ready:
            return
        async with self._schema_lock:
            if not self._schema_ready:
                await self._session(self._create_schema)
                self._schema_ready = True

    async def aclose(self) -> None:
        """Close the driver and its connections; later calls raise `MemoryStoreError`."""
        self._closed = True
        await self._driver.close()

    async def _create_schema(self, session: AsyncSession) -> None:
        for statement in schema_statements():
            try:
                await (await session.run(statement)).consume()
            except ClientError as exc:  # another process created it between the check and the creation
                if not (exc.code or "").endswith("AlreadyExists"):
                    raise
        rows = await session.execute_write(_values, _LOCK, key=META_KEY, version=SCHEMA_VERSION)
        stored = int(rows[0][0] or 0)
        if stored > SCHEMA_VERSION:
            raise JournalSchemaError(f"{self._name} holds graph schema {stored}; this hivegraph reads {SCHEMA_VERSION}")

    async def _read(self, work: Callable[[Tx], Awaitable[R]]) -> R:
        await self._ready()
        return await self._session(lambda session: session.execute_read(work))

    async def _write(self, work: Callable[[Tx], Awaitable[R]]) -> R:
        """Run `work` in one write transaction that opens by taking the meta node."""

        async def locked(tx: Tx) -> R:
            await _run(tx, _LOCK, key=META_KEY, version=SCHEMA_VERSION)
            return await work(tx)

        await self._ready()
        async with self._write_lock:
            return await self._session(lambda session: session.execute_write(locked))

    async def _session(self, call: Callable[[AsyncSession], Awaitable[R]]) -> R:
        """`call` on a new session, with the driver's errors turned into ours.

        Raises:
            BackendUnavailableError: the server cannot be reached (after `timeout_s` of retries).
            MemoryStoreError: the server refused or failed the work, or the graph is closed.

        """
        if self._closed:
            raise MemoryStoreError(f"{self._name} is closed")
        try:
            async with self._driver.session(database=self.database) as session:  # pyright: ignore[reportUnknownMemberType]
                return await call(session)
        except (ServiceUnavailable, SessionExpired) as exc:
            raise BackendUnavailableError(self._name, f"cannot reach the server: {exc}") from exc
        except (Neo4jError, DriverError) as exc:
            raise MemoryStoreError(f"{self._name} failed: {exc}") from exc


async def _values(tx: Tx, query: LiteralString, **params: Any) -> list[list[Any]]:
    return await (await tx.run(query, params)).values()


async def _run(tx: Tx, query: LiteralString, **params: Any) -> None:
    await (await tx.run(query, params)).consume()


async def _nodes_by_id(tx: Tx, ids: Iterable[str], scope: Scope | None = None) -> list[GraphNode]:
    """The stored nodes with these ids (retired ones too), those in `scope` only unless it is None."""
    where = _in_scope("n", scope) if scope else ""
    rows = await _values(
        tx, f"MATCH (n:HgNode) WHERE n.id IN $ids{where} RETURN n", ids=list(ids), **_scope_args(scope)
    )
    return [_node(row[0]) for row in rows]


async def _edges_by_id(tx: Tx, ids: Iterable[str], scope: Scope | None = None) -> list[GraphEdge]:
    """The stored edges with these ids, of every type (ids are global), those in `scope` only unless it is None."""
    where = _in_scope("r", scope) if scope else ""
    query = " UNION ALL ".join(
        f"MATCH ()-[r:{type_}]->() WHERE r.id IN $ids{where} {_EDGE_ROW}" for type_ in EDGE_TYPE_LIST
    )
    return [_edge(*row) for row in await _values(tx, query, ids=list(ids), **_scope_args(scope))]


async def _reach(
    tx: Tx, starts: list[str], scope: Scope, hops: int, types: frozenset[EdgeType] | None, direction: Direction
) -> dict[str, tuple[GraphNode, int]]:
    """Every visible node within `hops` of the visible `starts`, with the fewest hops it takes (starts: 0)."""
    args = _scope_args(scope)
    first = f"MATCH (n:HgNode) WHERE n.id IN $ids AND n.retired_seq IS NULL{_in_scope('n', scope)} RETURN n"
    reached = {(node := _node(row[0])).id: (node, 0) for row in await _values(tx, first, ids=starts, **args)}
    arrow, entering = _HOP[direction]
    step = (f"MATCH (a:HgNode)-[r{_types(types)}]{arrow}(b:HgNode) WHERE a.id IN $frontier{entering}"
            " AND NOT b.id IN $seen"
            f" AND r.retired_seq IS NULL{_in_scope('r', scope)} AND b.retired_seq IS NULL{_in_scope('b', scope)}"
            " RETURN DISTINCT b")  # fmt: skip
    frontier: list[str] = list(reached)
    for depth in range(1, hops + 1):
        if not frontier:
            break
        rows = await _values(tx, step, frontier=frontier, seen=list(reached), **args)
        frontier = []
        for node in (_node(row[0]) for row in rows):
            reached[node.id] = (node, depth)
            frontier.append(node.id)
    return reached


async def _write_nodes(tx: Tx, nodes: list[GraphNode], known: Mapping[str, GraphNode]) -> None:
    """Create the planned nodes that are new, and update those already stored."""
    for label, group in _grouped((n for n in nodes if n.id not in known), lambda n: check_label(n.label)).items():
        query = f"UNWIND $rows AS row CREATE (n:HgNode:{label} {_NODE_MAP})"
        await _run(tx, query, rows=[_node_row(node) for node in group])
    if again := {node.id: _node_row(node) for node in nodes if node.id in known}:
        query = f"MATCH (n:HgNode) WHERE n.id IN $ids WITH n, $rows[n.id] AS row SET {_NODE_SET}"
        await _run(tx, query, ids=list(again), rows=again)


async def _write_edges(tx: Tx, edges: list[GraphEdge], known: Mapping[str, GraphEdge]) -> None:
    """Create the planned edges that are new, between their stored ends, and update those already stored."""
    for type_, group in _grouped(edges, lambda edge: check_edge_type(edge.type)).items():
        if new := [_edge_row(edge) for edge in group if edge.id not in known]:
            query = ("UNWIND $rows AS row MATCH (a:HgNode {id: row.source}) MATCH (b:HgNode {id: row.target})"
                     f" CREATE (a)-[r:{type_} {_EDGE_MAP}]->(b)")  # fmt: skip
            await _run(tx, query, rows=new)
        if again := {edge.id: _edge_row(edge) for edge in group if edge.id in known}:
            query = f"MATCH ()-[r:{type_}]->() WHERE r.id IN $ids WITH r, $rows[r.id] AS row SET {_EDGE_SET}"
            await _run(tx, query, ids=list(again), rows=again)


def _types(types: frozenset[EdgeType] | None) -> LiteralString:
    """A relationship type filter (`:A|B`) for checked `types`, or none for any."""
    return ":" + "|".join(check_edge_type(t) for t in sorted(types)) if types is not None else ""


def _in_scope(var: LiteralString, scope: Scope | None) -> LiteralString:
    """Conditions that `var` is visible in `scope`: each field the scope sets, equal (`_scope_args`)."""
    if scope is None:
        return ""
    return "".join(f" AND {var}.{name} = $scope_{name}" for name in SCOPE_KEYS if getattr(scope, name) is not None)


def _scope_args(scope: Scope | None) -> dict[str, str]:
    return {f"scope_{name}": value for name, value in scope.fields().items()} if scope else {}


def _grouped(items: Iterable[R], key: Callable[[R], LiteralString]) -> dict[LiteralString, list[R]]:
    groups: dict[LiteralString, list[R]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _node_row(node: GraphNode) -> dict[str, Any]:
    scope = {name: getattr(node.scope, name) for name in SCOPE_KEYS}
    return {
        "id": node.id,
        "text": node.text,
        "properties_json": properties_json(node.properties),
        "seq": node.seq,
    } | scope


def _edge_row(edge: GraphEdge) -> dict[str, Any]:
    scope = {name: getattr(edge.scope, name) for name in SCOPE_KEYS}
    fields = {"weight": edge.weight, "properties_json": properties_json(edge.properties), "seq": edge.seq}
    return {"id": edge.id, "source": edge.source, "target": edge.target} | fields | scope


def _node(value: object) -> GraphNode:
    if not isinstance(value, Node) or len(labels := value.labels & NODE_LABELS) != 1:
        raise MemoryStoreError(f"the server returned {value!r} where a graph node was expected")
    scope = stored_scope(*(value.get(name) for name in SCOPE_KEYS))
    label = cast(NodeLabel, next(iter(labels)))
    properties = json.loads(value["properties_json"])
    return GraphNode(value["id"], label, scope, value["text"], properties, value["seq"], value.get("retired_seq"))


def _edge(value: object, source: str, target: str) -> GraphEdge:
    if not isinstance(value, Relationship) or value.type not in EDGE_ENDPOINTS:
        raise MemoryStoreError(f"the server returned {value!r} where a graph edge was expected")
    scope = stored_scope(*(value.get(name) for name in SCOPE_KEYS))
    properties = json.loads(value["properties_json"])
    return GraphEdge(
        value["id"],
        value.type,
        source,
        target,
        scope,
        value["weight"],
        properties,
        value["seq"],
        value.get("retired_seq"),
    )
