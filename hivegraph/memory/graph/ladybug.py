"""`LadybugGraph`: the memory graph in a ladybug file (the maintained fork of the Kùzu embedded graph database).

The schema is fixed: one node table per label and one relationship table per
edge type, joining the labels `EDGE_ENDPOINTS` names; `HgEdgeKey` maps an edge
id to its type and source (ladybug indexes primary keys only, so this is how an
edge is found by id) and `HgGraphMeta` holds the cursor and the layout version.
Scope fields are columns, `properties` one JSON string. The only names written
into a query are these tables, the scope columns and a checked hop count; every
value is a query parameter.

Ladybug lets one process at a time hold a file, and one `Database` object with
one `Connection` is the only use of it that is safe: a second `Database` on the
same file in one process is not refused though unsupported, a read-only one in
another process reads a snapshot frozen when it opened, and a connection whose
`BEGIN` failed crashes the process on its next statement. So this process holds
one database and one connection per file, shared by every `LadybugGraph` on it
(counted, closed with the last); every call takes that file's lock and runs in
a worker thread; a connection whose `BEGIN`, `COMMIT` or `ROLLBACK` failed is
closed and replaced. Another process that opens the file gets
`BackendUnavailableError` at once, and a graph opened before a fork refuses
calls in the child. Use `SqliteGraph` where several processes share a graph.

Every write call is one `BEGIN` ... `COMMIT` transaction: it reads the stored
items the call refers to (`plan.referenced`), plans with the shared
`plan_upsert` / `plan_retire`, and writes the plan; a committed call survives
the process being killed, one cut short leaves nothing. Traversals are one
variable-length `SHORTEST` match per start node.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast, get_args

from hivegraph.errors import BackendUnavailableError, ConfigError, JournalSchemaError, MemoryStoreError
from hivegraph.memory.graph.plan import (
    check_direction,
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
    visible,
)
from hivegraph.memory.graph.store import GraphCounts, GraphEdge, GraphNode, Neighbour, RankedInsight, Retired, Subgraph
from hivegraph.memory.types import SCOPE_FIELDS, Scope, ensure_scope
from hivegraph.memory.vocabulary import EDGE_ENDPOINTS, Direction, EdgeType, NodeLabel

if TYPE_CHECKING:
    import ladybug

R = TypeVar("R")
Rows = list[list[Any]]
SCHEMA_VERSION = 1
"""The layout of the tables this module writes."""
LABELS: tuple[NodeLabel, ...] = get_args(NodeLabel)
TYPES: tuple[EdgeType, ...] = tuple(EDGE_ENDPOINTS)
HELD_ELSEWHERE = (
    "the graph is held by another process (ladybug lets one process at a time open a graph file);"
    " use the sqlite graph backend when several processes share a graph"
)

_SCOPE_COLUMNS = ", ".join(f"{name} STRING" for name in SCOPE_FIELDS)
_ANY_NODE = ":" + ":".join(LABELS)
_NODE = "label(n), n.id, " + ", ".join(
    f"n.{name}" for name in (*SCOPE_FIELDS, "text", "properties", "seq", "retired_seq")
)
_EDGE = "label(e), e.id, a.id, b.id, " + ", ".join(
    f"e.{name}" for name in (*SCOPE_FIELDS, "weight", "properties", "seq", "retired_seq")
)
_SCOPE_SET = ", ".join(f"{name}: r.{name}" for name in SCOPE_FIELDS)
_BY_ID = " UNION ALL ".join(f"UNWIND $ids AS i MATCH (n:{label}) WHERE n.id = i RETURN {_NODE}" for label in LABELS)
"""The nodes of the ids `$ids`: one table at a time, as a lookup over several tables reads every row."""


class LadybugGraph:
    """The memory graph in one ladybug file, held by this process alone."""

    persistent = True

    def __init__(
        self, path: str | Path, *, buffer_pool_mb: int = 256, max_threads: int = 1, checkpoint_mb: int = 16
    ) -> None:
        """Open (or create) the graph in the file `path`.

        A second graph on the same file in this process shares the first one's
        database (and its settings).

        Args:
            path: The database file (created with its folder if missing).
            buffer_pool_mb: The most memory ladybug caches pages in.
            max_threads: The most threads one query runs on.
            checkpoint_mb: The size of the write-ahead log at which a commit folds it into the file.

        Raises:
            ImportError: the `ladybug` extra is not installed.
            ConfigError: `path` is empty, or a setting is below 1.
            BackendUnavailableError: another process holds the file, or it cannot be opened as a graph.
            JournalSchemaError: the file was written by a newer hivegraph.

        """
        if not str(path) or str(path) == ":memory:" or min(buffer_pool_mb, max_threads, checkpoint_mb) < 1:
            raise ConfigError("ladybug graph needs a file path, and buffer_pool_mb, max_threads, checkpoint_mb >= 1")
        self.path = str(path)
        settings = {"buffer_pool_size": buffer_pool_mb << 20, "max_num_threads": max_threads}
        self._handle = _acquire(Path(path), settings | {"checkpoint_threshold": checkpoint_mb << 20})
        self._closed = False

    async def upsert(self, nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], *, seq: int) -> None:
        """Write `nodes`, then `edges`, as journal entry `seq`, all or nothing (see `GraphStore.upsert`)."""
        try:
            node_ids, edge_ids = referenced(nodes, edges)
        except (AttributeError, TypeError):
            plan_upsert(nodes, edges, seq, known_nodes={}, known_edges={})  # names the malformed field
            raise

        def write(db: ladybug.Connection) -> None:
            known_nodes = {node.id: node for node in _nodes_by_id(db, node_ids)}
            known_edges = {edge.id: edge for edge in _edges_by_id(db, edge_ids)}
            plan = plan_upsert(nodes, edges, seq, known_nodes=known_nodes, known_edges=known_edges)
            _put_nodes(db, plan.nodes, known_nodes)
            _put_edges(db, plan.edges, known_edges)

        await self._run(write, write=True)

    async def retire(
        self, *, node_ids: Sequence[str] = (), edge_ids: Sequence[str] = (), scope: Scope, seq: int
    ) -> Retired:
        """Retire these nodes and edges in `scope`, and every current edge of the nodes (see `GraphStore.retire`)."""
        node_list, edge_list = check_retire(node_ids, edge_ids, scope, seq)

        def write(db: ladybug.Connection) -> Retired:
            known_nodes = {node.id: node for node in _nodes_by_id(db, node_list)}
            found = _edges_by_id(db, edge_list)
            for node in known_nodes.values():
                found += _current_edges_of(db, node)
            nodes, edges = plan_retire(
                node_list, edge_list, scope=scope, seq=seq,
                known_nodes=known_nodes, known_edges={edge.id: edge for edge in found},
            )  # fmt: skip
            for label in LABELS:
                ids = [node.id for node in nodes if node.label == label]
                if ids:
                    query = f"UNWIND $ids AS i MATCH (n:{label}) WHERE n.id = i SET n.retired_seq = $seq"
                    _rows(db, query, {"ids": ids, "seq": seq})
            for edge in edges:
                _rows(db, f"{_match_edge(edge)} SET e.retired_seq = $seq", _edge_key(edge) | {"seq": seq})
            return Retired(nodes=[node.id for node in nodes], edges=[edge.id for edge in edges])

        return await self._run(write, write=True)

    async def get_nodes(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphNode]:
        """The nodes with these ids in `scope`, in the order asked."""
        wanted, scope = check_ids(ids), ensure_scope(scope)
        found = {node.id: node for node in await self._run(lambda db: _nodes_by_id(db, wanted))}
        return [node for i in wanted if (node := found.get(i)) is not None and visible(node, scope, include_retired)]

    async def get_edges(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphEdge]:
        """The edges with these ids in `scope`, in the order asked."""
        wanted, scope = check_ids(ids), ensure_scope(scope)
        found = {edge.id: edge for edge in await self._run(lambda db: _edges_by_id(db, wanted))}
        return [edge for i in wanted if (edge := found.get(i)) is not None and visible(edge, scope, include_retired)]

    async def nodes_of(self, label: NodeLabel, *, scope: Scope, limit: int | None = None) -> list[GraphNode]:
        """The current nodes of one label in `scope`, by id."""
        label, scope = check_label(label), ensure_scope(scope)
        args: dict[str, Any] = _scope_args(scope)
        query = f"MATCH (n:{label}) WHERE n.retired_seq IS NULL{_in_scope('n', scope)} RETURN {_NODE} ORDER BY n.id"
        if limit is not None:
            query, args["limit"] = f"{query} LIMIT $limit", check_limit(limit)
        return await self._run(lambda db: [_node(row) for row in _rows(db, query, args)])

    async def entities_named(self, names: Sequence[str], *, scope: Scope) -> list[GraphNode]:
        """The current `Entity` nodes in `scope` whose text is one of `names`, by id."""
        wanted, scope = check_ids(names, "names"), ensure_scope(scope)
        query = (f"MATCH (n:Entity) WHERE n.text IN $names AND n.retired_seq IS NULL{_in_scope('n', scope)}"
                 f" RETURN {_NODE} ORDER BY n.id")  # fmt: skip
        args: dict[str, Any] = {"names": wanted, **_scope_args(scope)}
        return await self._run(lambda db: [_node(row) for row in _rows(db, query, args)])

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
        found = await self._run(lambda db: _walk(db, starts, scope, hops, types, direction))
        return [
            Neighbour(node, n) for node, n in sorted(found.values(), key=lambda item: (item[1], item[0].id))
            if wanted is None or node.label in wanted
        ]  # fmt: skip

    async def subgraph(
        self, ids: Sequence[str], *, scope: Scope, hops: int = 1, edge_types: Sequence[EdgeType] | None = None
    ) -> Subgraph:
        """The visible nodes of `ids`, those within `hops` of them, and every visible edge among them."""
        starts, scope, hops = check_ids(ids), ensure_scope(scope), check_hops(hops, least=0)
        types = check_edge_types(edge_types)

        def read(db: ladybug.Connection) -> Subgraph:
            nodes = {node.id: node for node in _nodes_by_id(db, starts) if visible(node, scope, False)}
            if hops:
                nodes |= {node.id: node for node, _ in _walk(db, starts, scope, hops, types, "both").values()}
            edges = sorted(_edges_among(db, nodes, scope, types), key=lambda edge: edge.id)
            return Subgraph(sorted(nodes.values(), key=lambda node: node.id), edges)

        return await self._run(read)

    async def trajectory(self, task_id: str, *, scope: Scope) -> list[GraphNode]:
        """The messages a task has (`HAS_STEP`), by step then id."""
        task_id, scope = check_id(task_id, "task_id"), ensure_scope(scope)
        steps = await self._run(lambda db: _owned(db, "HAS_STEP", task_id, scope))
        return sorted(steps, key=lambda node: (step_of(node), node.id))

    async def insights_for(self, task_ids: Sequence[str], *, scope: Scope, limit: int = 10) -> list[RankedInsight]:
        """Insights supported by any of `task_ids`, ranked as `rank_insights` says."""
        tasks, scope, limit = check_ids(task_ids, "task_ids"), ensure_scope(scope), check_limit(limit)

        def read(db: ladybug.Connection) -> list[tuple[GraphNode, str]]:
            return [(insight, task) for task in dict.fromkeys(tasks) for insight in _owned(db, "SUPPORTS", task, scope)]

        return rank_insights(await self._run(read), tasks, limit)

    async def cursor(self) -> int:
        """The last journal `seq` applied (0 if none)."""
        return await self._run(lambda db: _meta(db, "cursor"))

    async def advance(self, seq: int) -> None:
        """Move the cursor to `seq`, never back."""
        check_seq(seq)

        def write(db: ladybug.Connection) -> None:
            if seq > _meta(db, "cursor"):
                _set_meta(db, "cursor", seq)

        await self._run(write, write=True)

    async def reset(self) -> None:
        """Forget every node, edge and the cursor."""

        def clear(db: ladybug.Connection) -> None:
            for label in LABELS:
                _rows(db, f"MATCH (n:{label}) DETACH DELETE n")
            _rows(db, "MATCH (k:HgEdgeKey) DELETE k")
            _rows(db, "MATCH (m:HgGraphMeta) WHERE m.key = 'cursor' DELETE m")

        await self._run(clear, write=True)

    async def counts(self) -> GraphCounts:
        """How many nodes and edges the graph holds, across every scope."""

        def count(db: ladybug.Connection) -> GraphCounts:
            ((nodes, retired_nodes),) = _rows(db, f"MATCH (n{_ANY_NODE}) RETURN count(*), count(n.retired_seq)")
            ((edges, retired_edges),) = _rows(
                db, f"MATCH ()-[e{_types(None)}]->() RETURN count(*), count(e.retired_seq)"
            )
            return GraphCounts(nodes - retired_nodes, edges - retired_edges, retired_nodes, retired_edges)

        return await self._run(count)

    async def aclose(self) -> None:
        """Let go of the file; the last graph on it in this process closes the database."""
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(_release, self._handle)

    async def _run(self, fn: Callable[[ladybug.Connection], R], *, write: bool = False) -> R:
        return await asyncio.to_thread(self._sync, fn, write)

    def _sync(self, fn: Callable[[ladybug.Connection], R], write: bool) -> R:
        """Run `fn` under the file's lock, a write in one transaction.

        Raises:
            MemoryStoreError: the database failed, or this graph is closed.

        """
        handle = self._handle
        with handle.lock:
            if self._closed:
                raise MemoryStoreError(f"ladybug graph {self.path} is closed")
            if handle.pid != os.getpid():
                raise MemoryStoreError(f"ladybug graph {self.path} was opened before this process forked; open it here")
            try:
                return handle.transaction(fn) if write else fn(handle.connection)
            except RuntimeError as exc:  # ladybug raises RuntimeError for every database error
                raise MemoryStoreError(f"ladybug graph {self.path} failed: {exc}") from exc


@dataclass
class _Handle:
    """The one database and connection this process holds on one file; use it under `lock`."""

    key: str
    database: ladybug.Database
    connection: ladybug.Connection
    lock: threading.Lock
    refs: int = 1
    pid: int = 0

    def transaction(self, fn: Callable[[ladybug.Connection], R]) -> R:
        """`fn(connection)` between `BEGIN` and `COMMIT`, rolled back if it raises.

        A connection whose `BEGIN`, `COMMIT` or `ROLLBACK` failed is never used again.
        """
        try:
            _rows(self.connection, "BEGIN TRANSACTION")
        except RuntimeError:
            self.reconnect()
            raise
        try:
            result = fn(self.connection)
            _rows(self.connection, "COMMIT")
        except BaseException:
            try:  # a failed statement has rolled the transaction back already, and then this fails
                _rows(self.connection, "ROLLBACK")
            except RuntimeError:
                self.reconnect()
            raise
        return result

    def reconnect(self) -> None:
        """Replace the connection by a new one on the same database."""
        self.connection.close()
        self.connection = _ladybug().Connection(self.database)


_HANDLES: dict[str, _Handle] = {}
"""The file each open handle holds (resolved path), this process's only; ladybug allows one per file and process."""
_HANDLES_LOCK = threading.Lock()


def _ladybug() -> Any:
    """The `ladybug` module, imported on first use.

    Raises:
        ImportError: it is not installed.

    """
    try:
        import ladybug
    except ImportError as exc:
        raise ImportError("LadybugGraph needs the 'ladybug' extra: pip install 'hivegraph[ladybug]'") from exc
    return ladybug


def _acquire(path: Path, settings: Mapping[str, int]) -> _Handle:
    """The handle this process holds on `path`, opened with `settings` (and the schema made) if it holds none.

    Raises:
        BackendUnavailableError: another process holds the file, or it cannot be opened.
        JournalSchemaError: the tables were written by a newer hivegraph.

    """
    key = str(path.resolve())
    with _HANDLES_LOCK:
        handle = _HANDLES.get(key)
        if handle is not None and handle.pid == os.getpid():
            handle.refs += 1
            return handle
        backend = f"ladybug graph {path}"
        lb = _ladybug()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            database = lb.Database(key, **settings)
        except (OSError, RuntimeError) as exc:
            held = "Could not set lock" in str(exc)
            raise BackendUnavailableError(backend, HELD_ELSEWHERE if held else str(exc)) from exc
        handle = _Handle(key, database, lb.Connection(database), threading.Lock(), pid=os.getpid())
        try:
            handle.transaction(_create_schema)
        except BaseException as exc:
            handle.connection.close()
            database.close()
            if isinstance(exc, RuntimeError):
                raise BackendUnavailableError(backend, f"cannot make the graph tables: {exc}") from exc
            raise
        _HANDLES[key] = handle
        return handle


def _release(handle: _Handle) -> None:
    """Drop one user of `handle`; the last one closes the connection and the database (of this process only)."""
    with _HANDLES_LOCK:
        handle.refs -= 1
        if handle.refs > 0 or handle.pid != os.getpid():  # a forked child leaves its parent's database alone
            return
        if _HANDLES.get(handle.key) is handle:
            del _HANDLES[handle.key]
        with handle.lock:
            handle.connection.close()
            handle.database.close()


def _create_schema(db: ladybug.Connection) -> None:
    """Create the tables if missing and record their version; refuse tables of a newer layout."""
    node_columns = f"id STRING, {_SCOPE_COLUMNS}, text STRING, properties STRING, seq INT64, retired_seq INT64"
    for label in LABELS:
        _rows(db, f"CREATE NODE TABLE IF NOT EXISTS {label}({node_columns}, PRIMARY KEY (id))")
    edge_columns = f"id STRING, {_SCOPE_COLUMNS}, weight DOUBLE, properties STRING, seq INT64, retired_seq INT64"
    for type_, (source, target) in EDGE_ENDPOINTS.items():
        _rows(db, f"CREATE REL TABLE IF NOT EXISTS {type_}(FROM {source} TO {target}, {edge_columns})")
    _rows(db, "CREATE NODE TABLE IF NOT EXISTS HgEdgeKey(id STRING, type STRING, source STRING, PRIMARY KEY (id))")
    _rows(db, "CREATE NODE TABLE IF NOT EXISTS HgGraphMeta(key STRING, value INT64, PRIMARY KEY (key))")
    stored = _meta(db, "schema_version")
    if stored > SCHEMA_VERSION:
        raise JournalSchemaError(f"the graph tables are at schema {stored}; this hivegraph reads {SCHEMA_VERSION}")
    if stored == 0:
        _set_meta(db, "schema_version", SCHEMA_VERSION)


def _rows(db: ladybug.Connection, query: str, args: Mapping[str, Any] | None = None) -> Rows:
    """The rows of one statement."""
    result = db.execute(query, dict(args or {}))
    return [cast(list[Any], row) for row in cast("ladybug.QueryResult", result).get_all()]


def _meta(db: ladybug.Connection, key: str) -> int:
    rows = _rows(db, "MATCH (m:HgGraphMeta) WHERE m.key = $key RETURN m.value", {"key": key})
    return int(rows[0][0]) if rows else 0


def _set_meta(db: ladybug.Connection, key: str, value: int) -> None:
    _rows(db, "MERGE (m:HgGraphMeta {key: $key}) SET m.value = $value", {"key": key, "value": value})


def _walk(
    db: ladybug.Connection,
    starts: list[str],
    scope: Scope,
    hops: int,
    types: frozenset[EdgeType] | None,
    direction: Direction,
) -> dict[str, tuple[GraphNode, int]]:
    """The visible nodes within `hops` of the visible `starts` over visible edges, each with its fewest hops."""
    fewest: dict[str, int] = {}
    reached: dict[str, GraphNode] = {}
    for start in _nodes_by_id(db, starts):
        first = _leaving(start.label, types, direction)
        if not first or not visible(start, scope, False):
            continue
        query = _walk_query(start.label, first, scope, hops, types, direction)
        for row in _rows(db, query, {"id": start.id} | _scope_args(scope)):
            if hops == 1:
                node = reached[row[1]] = _node(row)
                fewest[node.id] = 1
            else:
                fewest[row[0]] = min(int(row[1]), fewest.get(row[0], hops))
    for start in starts:
        fewest.pop(start, None)
    if hops > 1:
        reached = {node.id: node for node in _nodes_by_id(db, fewest) if visible(node, scope, False)}
    return {node_id: (node, fewest[node_id]) for node_id, node in reached.items() if node_id in fewest}


def _walk_query(
    label: NodeLabel,
    first: list[EdgeType],
    scope: Scope,
    hops: int,
    types: frozenset[EdgeType] | None,
    direction: Direction,
) -> str:
    """The walk from one node `$id` of `label`: one hop returns the visible nodes, more hops `(id, fewest hops)`.

    The start is matched in its own label's table (a pattern over every node table costs several times more), and
    the nodes of a longer walk are read after it (returned from such a pattern, they cost several times more too).
    """
    left, right = {"out": ("-", "->"), "in": ("<-", "-"), "both": ("-", "-")}[direction]
    start = f"MATCH (a:{label}){left}[e"
    where = f"]{right}(n) WHERE a.id = $id AND a.retired_seq IS NULL{_in_scope('a', scope)}"
    if hops == 1:
        current = f"e.retired_seq IS NULL{_in_scope('e', scope)} AND n.retired_seq IS NULL{_in_scope('n', scope)}"
        return f"{start}:{'|'.join(first)}{where} AND {current} RETURN {_NODE}"
    path = f"{_types(types)}* SHORTEST 1..{hops} (r, m | WHERE r.retired_seq IS NULL{_in_scope('r', scope)})"
    return f"{start}{path}{where} RETURN n.id, length(e)"  # `hops` is checked: 2 to MAX_HOPS


def _edges_among(
    db: ladybug.Connection, nodes: Mapping[str, GraphNode], scope: Scope, types: frozenset[EdgeType] | None
) -> list[GraphEdge]:
    """The visible edges (of `types`, or any) from one of `nodes` to another."""
    found: list[GraphEdge] = []
    for node in nodes.values():
        leaving = _leaving(node.label, types, "out")
        if leaving:
            query = (f"MATCH (a:{node.label})-[e:{'|'.join(leaving)}]->(b) WHERE a.id = $id"
                     f" AND e.retired_seq IS NULL{_in_scope('e', scope)} RETURN {_EDGE}")  # fmt: skip
            found += (edge for edge in map(_edge, _rows(db, query, {"id": node.id} | _scope_args(scope))))
    return [edge for edge in found if edge.target in nodes]


def _leaving(label: NodeLabel, types: frozenset[EdgeType] | None, direction: Direction) -> list[EdgeType]:
    """The edge types (of `types`, or any) a node of `label` can have in `direction`, sorted."""
    sides = {"out": (0,), "in": (1,), "both": (0, 1)}[direction]
    candidates: list[EdgeType] = sorted(types if types is not None else TYPES)
    return [type_ for type_ in candidates if any(EDGE_ENDPOINTS[type_][side] == label for side in sides)]


def _owned(db: ladybug.Connection, type_: EdgeType, source: str, scope: Scope) -> list[GraphNode]:
    """The nodes a current task `source` in `scope` reaches by one current `type_` edge in `scope`."""
    query = (f"MATCH (a:Task)-[e:{type_}]->(n) WHERE a.id = $id AND a.retired_seq IS NULL{_in_scope('a', scope)}"
             f" AND e.retired_seq IS NULL{_in_scope('e', scope)} RETURN {_NODE}")  # fmt: skip
    return [_node(row) for row in _rows(db, query, {"id": source} | _scope_args(scope))]


def _current_edges_of(db: ladybug.Connection, node: GraphNode) -> list[GraphEdge]:
    """The current edges leaving or entering `node`, in any scope."""
    found: list[GraphEdge] = []
    for near, ends in (("a", f"(a:{node.label})-[e]->(b{_ANY_NODE})"), ("b", f"(a{_ANY_NODE})-[e]->(b:{node.label})")):
        query = f"MATCH {ends} WHERE {near}.id = $id AND e.retired_seq IS NULL RETURN {_EDGE}"
        found += map(_edge, _rows(db, query, {"id": node.id}))
    return found


def _nodes_by_id(db: ladybug.Connection, ids: Iterable[str]) -> list[GraphNode]:
    """The nodes with these ids, of any label (each label's table by its primary key, in one statement)."""
    wanted = list(ids)
    if not wanted:
        return []
    return [_node(row) for row in _rows(db, _BY_ID, {"ids": wanted})]


def _edges_by_id(db: ladybug.Connection, ids: Iterable[str]) -> list[GraphEdge]:
    """The edges with these ids: their keys by primary key, then each from its source node."""
    wanted = list(ids)
    if not wanted:
        return []
    keys = _rows(
        db, "UNWIND $ids AS i MATCH (k:HgEdgeKey) WHERE k.id = i RETURN k.id, k.type, k.source", {"ids": wanted}
    )
    found: list[GraphEdge] = []
    for edge_id, type_, source in keys:
        key = _EdgeKey(edge_id, cast(EdgeType, type_), source)
        found += map(_edge, _rows(db, f"{_match_edge(key)} RETURN {_EDGE}", _edge_key(key)))
    return found


@dataclass(frozen=True, slots=True)
class _EdgeKey:
    id: str
    type: EdgeType
    source: str


def _match_edge(edge: GraphEdge | _EdgeKey) -> str:
    """A match of the one edge `edge` names (parameters: `_edge_key`), through its source's primary key."""
    source_label = EDGE_ENDPOINTS[edge.type][0]
    return f"MATCH (a:{source_label})-[e:{edge.type}]->(b) WHERE a.id = $source AND e.id = $edge_id"


def _edge_key(edge: GraphEdge | _EdgeKey) -> dict[str, Any]:
    return {"source": edge.source, "edge_id": edge.id}


def _put_nodes(db: ladybug.Connection, nodes: Sequence[GraphNode], known: Mapping[str, GraphNode]) -> None:
    """Create the new nodes and overwrite the stored ones (their text, properties and seqs)."""
    for label in LABELS:
        of_label = [node for node in nodes if node.label == label]
        new = [_node_row(node) for node in of_label if node.id not in known]
        if new:
            _rows(db, f"UNWIND $rows AS r CREATE (n:{label} {{id: r.id, {_SCOPE_SET}, text: r.text,"
                      " properties: r.properties, seq: r.seq})", {"rows": new})  # fmt: skip
        old = [_node_row(node) for node in of_label if node.id in known]
        if old:
            _rows(db, f"UNWIND $rows AS r MATCH (n:{label}) WHERE n.id = r.id SET n.text = r.text,"
                      " n.properties = r.properties, n.seq = r.seq, n.retired_seq = NULL", {"rows": old})  # fmt: skip


def _put_edges(db: ladybug.Connection, edges: Sequence[GraphEdge], known: Mapping[str, GraphEdge]) -> None:
    """Create the new edges with their keys, and overwrite the stored ones (weight, properties and seqs).

    Raises:
        MemoryStoreError: an end of a new edge was not found (the plan checked it, so the graph is damaged).

    """
    for type_, (source, target) in EDGE_ENDPOINTS.items():
        new = [_edge_row(edge) for edge in edges if edge.type == type_ and edge.id not in known]
        if not new:
            continue
        query = (f"UNWIND $rows AS r MATCH (a:{source}) WHERE a.id = r.source MATCH (b:{target}) WHERE b.id = r.target"
                 f" CREATE (a)-[e:{type_} {{id: r.id, {_SCOPE_SET}, weight: r.weight, properties: r.properties,"
                 " seq: r.seq}]->(b) RETURN count(e)")  # fmt: skip
        ((made,),) = _rows(db, query, {"rows": new})
        if made != len(new):
            raise MemoryStoreError(f"ladybug graph: {len(new) - made} new {type_} edges found no end node")
        keys = [{"id": row["id"], "type": type_, "source": row["source"]} for row in new]
        _rows(db, "UNWIND $rows AS r CREATE (k:HgEdgeKey {id: r.id, type: r.type, source: r.source})", {"rows": keys})
    for edge in (edge for edge in edges if edge.id in known):
        changed = {"weight": edge.weight, "properties": properties_json(edge.properties), "seq": edge.seq}
        query = f"{_match_edge(edge)} SET e.weight = $weight, e.properties = $properties, e.seq = $seq"
        _rows(db, f"{query}, e.retired_seq = NULL", _edge_key(edge) | changed)


def _types(types: frozenset[EdgeType] | None) -> str:
    """The relationship tables a pattern follows: `types` (checked names), or every one."""
    return ":" + "|".join(sorted(types) if types is not None else TYPES)


def _in_scope(var: str, scope: Scope) -> str:
    """Conditions that `var` is visible in `scope`: each field the scope sets, equal (`_scope_args`)."""
    return "".join(f" AND {var}.{name} = $scope_{name}" for name in scope.fields())


def _scope_args(scope: Scope) -> dict[str, Any]:
    return {f"scope_{name}": value for name, value in scope.fields().items()}


def _node_row(node: GraphNode) -> dict[str, Any]:
    scope = {name: getattr(node.scope, name) for name in SCOPE_FIELDS}
    return {"id": node.id, **scope, "text": node.text, "properties": properties_json(node.properties), "seq": node.seq}


def _edge_row(edge: GraphEdge) -> dict[str, Any]:
    scope = {name: getattr(edge.scope, name) for name in SCOPE_FIELDS}
    ends = {"id": edge.id, "source": edge.source, "target": edge.target}
    return {**ends, **scope, "weight": edge.weight, "properties": properties_json(edge.properties), "seq": edge.seq}


def _node(row: Sequence[Any]) -> GraphNode:
    label, node_id, user, agent, team, run, text, properties, seq, retired_seq = row
    return GraphNode(
        node_id, label, stored_scope(user, agent, team, run), text, json.loads(properties), seq, retired_seq
    )


def _edge(row: Sequence[Any]) -> GraphEdge:
    type_, edge_id, source, target, user, agent, team, run, weight, properties, seq, retired_seq = row
    scope = stored_scope(user, agent, team, run)
    return GraphEdge(edge_id, type_, source, target, scope, weight, json.loads(properties), seq, retired_seq)
