"""`SqliteGraph`: the memory graph in SQLite tables (one file in WAL mode, or in memory).

Every write call is one `BEGIN IMMEDIATE` transaction: it reads the stored
items the call refers to (`plan.referenced`), plans with the shared
`plan_upsert` / `plan_retire`, and writes the plan. Writers in every process are
therefore serialised by SQLite's write lock, and a call is applied whole or not
at all, even when its process is killed mid-write. A busy database is waited
for (`busy_timeout`) and retried a bounded number of times, as the journal does;
any other database error becomes a `MemoryStoreError` naming the file.

Traversals are one recursive query (`WITH RECURSIVE`) bounded by `hops`, which
follows current edges through the partial indexes on their ends. Reads run on a
small pool of read connections, each read in one snapshot, beside the writer;
every call runs in a worker thread, so the event loop never waits on the file.

The tables are prefixed `hg_graph_` so that the graph can share a file with the
journal (`hg_ops`, `hg_versions`, `hg_fts*`, `hg_cursors`, `hg_meta`, ...).
Only column names and the placeholders of a checked list are written into SQL;
every value is a query parameter.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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
from hivegraph.memory.sqlite_wal import BUSY_RETRIES, enter_wal, is_busy
from hivegraph.memory.types import SCOPE_FIELDS, Scope, ensure_scope
from hivegraph.memory.vocabulary import Direction, EdgeType, NodeLabel

R = TypeVar("R")
SCHEMA_VERSION = 1
"""The layout of the `hg_graph_*` tables this module writes."""
SYNCHRONOUS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS hg_graph_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hg_graph_nodes (
    id TEXT PRIMARY KEY, label TEXT NOT NULL, user_id TEXT, agent_id TEXT, team_id TEXT, run_id TEXT,
    text TEXT NOT NULL, properties TEXT NOT NULL, seq INTEGER NOT NULL, retired_seq INTEGER
);
CREATE TABLE IF NOT EXISTS hg_graph_edges (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL,
    user_id TEXT, agent_id TEXT, team_id TEXT, run_id TEXT,
    weight REAL NOT NULL, properties TEXT NOT NULL, seq INTEGER NOT NULL, retired_seq INTEGER
);
CREATE INDEX IF NOT EXISTS hg_graph_edges_out ON hg_graph_edges(source, type) WHERE retired_seq IS NULL;
CREATE INDEX IF NOT EXISTS hg_graph_edges_in ON hg_graph_edges(target, type) WHERE retired_seq IS NULL;
CREATE INDEX IF NOT EXISTS hg_graph_nodes_label ON hg_graph_nodes(label, user_id, id) WHERE retired_seq IS NULL;
CREATE INDEX IF NOT EXISTS hg_graph_entities ON hg_graph_nodes(text) WHERE label = 'Entity' AND retired_seq IS NULL
"""
"""The graph's tables; the partial indexes hold current items only, so queries name `retired_seq IS NULL`."""

NODE_COLUMNS = ("id", "label", *SCOPE_FIELDS, "text", "properties", "seq", "retired_seq")
EDGE_COLUMNS = ("id", "type", "source", "target", *SCOPE_FIELDS, "weight", "properties", "seq", "retired_seq")
_CURRENT = "retired_seq IS NULL"


class SqliteGraph:
    """The memory graph in SQLite; `path=":memory:"` keeps it in this process only."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", busy_timeout_s: float = 10.0) -> None:
        """Open (or create) the graph at `path`.

        Args:
            path: The database file (created with its folder if missing; it may be the journal's), or `":memory:"`.
            synchronous: SQLite's `synchronous` setting (`FULL` survives a power cut).
            busy_timeout_s: How long a write waits for another writer's lock before it is retried.

        Raises:
            ConfigError: `path` is empty or `synchronous` is not one of SQLite's settings.
            BackendUnavailableError: the file cannot be opened as a database.
            JournalSchemaError: the graph tables were written by a newer hivegraph.

        """
        self.path = str(path)
        if not self.path or synchronous.upper() not in SYNCHRONOUS:
            raise ConfigError(f"sqlite graph needs a file or ':memory:' and synchronous in {sorted(SYNCHRONOUS)}")
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        """Held by the one call using the write connection (every call, for an in-memory graph)."""
        self._readers: list[sqlite3.Connection] = []
        """Idle read connections of a file graph: reads run beside each other and beside a write (WAL)."""
        self._readers_lock = threading.Lock()
        self._closed = False
        self._trace: Callable[[str], object] | None = None
        self._db = self._open(synchronous.upper())
        try:
            self._sync(_create_schema, write=True)
        except BaseException:
            self._db.close()
            raise

    @property
    def persistent(self) -> bool:
        """Whether the graph is in a file (and so survives this process)."""
        return self.path != ":memory:"

    async def upsert(self, nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], *, seq: int) -> None:
        """Write `nodes`, then `edges`, as journal entry `seq`, all or nothing (see `GraphStore.upsert`)."""
        try:
            node_ids, edge_ids = referenced(nodes, edges)
        except (AttributeError, TypeError):
            plan_upsert(nodes, edges, seq, known_nodes={}, known_edges={})  # names the malformed field
            raise

        def write(db: sqlite3.Connection) -> None:
            known_nodes = {node.id: node for node in _nodes_by_id(db, node_ids)}
            known_edges = {edge.id: edge for edge in _edges_by_id(db, edge_ids)}
            plan = plan_upsert(nodes, edges, seq, known_nodes=known_nodes, known_edges=known_edges)
            _put(db, "hg_graph_nodes", NODE_COLUMNS, ("text", "properties"), map(_node_row, plan.nodes))
            _put(db, "hg_graph_edges", EDGE_COLUMNS, ("weight", "properties"), map(_edge_row, plan.edges))

        await self._write(write)

    async def retire(
        self, *, node_ids: Sequence[str] = (), edge_ids: Sequence[str] = (), scope: Scope, seq: int
    ) -> Retired:
        """Retire these nodes and edges in `scope`, and every current edge of the nodes (see `GraphStore.retire`)."""
        node_list, edge_list = check_retire(node_ids, edge_ids, scope, seq)

        def write(db: sqlite3.Connection) -> Retired:
            found = [*_edges_by_id(db, edge_list)]
            for end in ("source", "target"):
                sql = f"SELECT {_cols(EDGE_COLUMNS)} FROM hg_graph_edges WHERE {end} IN {_ids('ids')} AND {_CURRENT}"
                found += map(_edge, db.execute(sql, {"ids": json.dumps(node_list)}))
            nodes, edges = plan_retire(
                node_list, edge_list, scope=scope, seq=seq,
                known_nodes={node.id: node for node in _nodes_by_id(db, node_list)},
                known_edges={edge.id: edge for edge in found},
            )  # fmt: skip
            for table, items in (("hg_graph_nodes", nodes), ("hg_graph_edges", edges)):
                db.executemany(f"UPDATE {table} SET retired_seq = ? WHERE id = ?", ((seq, i.id) for i in items))
            return Retired(nodes=[node.id for node in nodes], edges=[edge.id for edge in edges])

        return await self._write(write)

    async def get_nodes(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphNode]:
        """The nodes with these ids in `scope`, in the order asked."""
        wanted, scope = check_ids(ids), ensure_scope(scope)
        found = {node.id: node for node in await self._read(lambda db: _nodes_by_id(db, wanted))}
        return [node for i in wanted if (node := found.get(i)) is not None and visible(node, scope, include_retired)]

    async def get_edges(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphEdge]:
        """The edges with these ids in `scope`, in the order asked."""
        wanted, scope = check_ids(ids), ensure_scope(scope)
        found = {edge.id: edge for edge in await self._read(lambda db: _edges_by_id(db, wanted))}
        return [edge for i in wanted if (edge := found.get(i)) is not None and visible(edge, scope, include_retired)]

    async def nodes_of(self, label: NodeLabel, *, scope: Scope, limit: int | None = None) -> list[GraphNode]:
        """The current nodes of one label in `scope`, by id."""
        label, scope = check_label(label), ensure_scope(scope)
        most = check_limit(limit) if limit is not None else -1
        sql = (f"SELECT {_cols(NODE_COLUMNS)} FROM hg_graph_nodes WHERE label = :label AND {_CURRENT}"
               f"{_in_scope('hg_graph_nodes', scope)} ORDER BY id LIMIT :limit")  # fmt: skip
        args = {"label": label, "limit": most, **_scope_args(scope)}
        return await self._read(lambda db: [_node(row) for row in db.execute(sql, args)])

    async def entities_named(self, names: Sequence[str], *, scope: Scope) -> list[GraphNode]:
        """The current `Entity` nodes in `scope` whose text is one of `names`, by id."""
        wanted, scope = check_ids(names, "names"), ensure_scope(scope)
        sql = (f"SELECT {_cols(NODE_COLUMNS)} FROM hg_graph_nodes WHERE label = 'Entity' AND {_CURRENT}"
               f" AND text IN {_ids('names')}{_in_scope('hg_graph_nodes', scope)} ORDER BY id")  # fmt: skip
        args = {"names": json.dumps(wanted), **_scope_args(scope)}
        return await self._read(lambda db: [_node(row) for row in db.execute(sql, args)])

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
        walk, args = _walk(starts, scope, hops, types, direction)
        label_sql, label_args = _one_of("n.label", "label", wanted)
        sql = (
            f"{walk}, best(id, hops) AS (SELECT id, MIN(hops) FROM walk GROUP BY id)"
            f" SELECT {_cols(NODE_COLUMNS, 'n')}, best.hops FROM best CROSS JOIN hg_graph_nodes n ON n.id = best.id"
            f" WHERE best.hops > 0 AND n.{_CURRENT}{_in_scope('n', scope)}{label_sql} ORDER BY best.hops, n.id"
        )  # CROSS JOIN keeps the walk outermost: a label filter would otherwise read every node of the label
        rows = await self._read(lambda db: db.execute(sql, args | label_args).fetchall())
        return [Neighbour(_node(row[:-1]), int(row[-1])) for row in rows]

    async def subgraph(
        self, ids: Sequence[str], *, scope: Scope, hops: int = 1, edge_types: Sequence[EdgeType] | None = None
    ) -> Subgraph:
        """The visible nodes of `ids`, those within `hops` of them, and every visible edge among them."""
        starts, scope, hops = check_ids(ids), ensure_scope(scope), check_hops(hops, least=0)
        types = check_edge_types(edge_types)
        walk, args = _walk(starts, scope, hops, types, "both")
        node_sql = (
            f"{walk} SELECT {_cols(NODE_COLUMNS, 'n')} FROM hg_graph_nodes n"
            f" WHERE n.id IN (SELECT id FROM walk) AND n.{_CURRENT}{_in_scope('n', scope)} ORDER BY n.id"
        )
        type_sql, type_args = _one_of("type", "type", types)
        edge_sql = (
            f"SELECT {_cols(EDGE_COLUMNS)} FROM hg_graph_edges WHERE source IN {_ids('ids')}"
            f" AND target IN {_ids('ids')} AND {_CURRENT}{_in_scope('hg_graph_edges', scope)}{type_sql} ORDER BY id"
        )

        def read(db: sqlite3.Connection) -> Subgraph:
            nodes = [_node(row) for row in db.execute(node_sql, args)]
            among = {"ids": json.dumps([node.id for node in nodes]), **_scope_args(scope), **type_args}
            return Subgraph(nodes=nodes, edges=[_edge(row) for row in db.execute(edge_sql, among)])

        return await self._read(read)

    async def trajectory(self, task_id: str, *, scope: Scope) -> list[GraphNode]:
        """The messages a task has (`HAS_STEP`), by step then id."""
        task_id, scope = check_id(task_id, "task_id"), ensure_scope(scope)
        sql = (f"SELECT {_cols(NODE_COLUMNS, 'n')} FROM hg_graph_nodes t"
               f" JOIN hg_graph_edges e ON e.source = t.id JOIN hg_graph_nodes n ON n.id = e.target"
               f" WHERE t.id = :task AND t.label = 'Task' AND t.{_CURRENT}{_in_scope('t', scope)}"
               f" AND e.type = 'HAS_STEP' AND e.{_CURRENT}{_in_scope('e', scope)}")  # fmt: skip
        args = {"task": task_id, **_scope_args(scope)}
        steps = await self._read(lambda db: [_node(row) for row in db.execute(sql, args)])
        return sorted(steps, key=lambda node: (step_of(node), node.id))

    async def insights_for(self, task_ids: Sequence[str], *, scope: Scope, limit: int = 10) -> list[RankedInsight]:
        """Insights supported by any of `task_ids`, ranked as `rank_insights` says."""
        tasks, scope, limit = check_ids(task_ids, "task_ids"), ensure_scope(scope), check_limit(limit)
        sql = (f"SELECT e.source, {_cols(NODE_COLUMNS, 'n')} FROM hg_graph_nodes t"
               f" JOIN hg_graph_edges e ON e.source = t.id JOIN hg_graph_nodes n ON n.id = e.target"
               f" WHERE t.id IN {_ids('tasks')} AND t.label = 'Task' AND t.{_CURRENT}"
               f"{_in_scope('t', scope)} AND e.type = 'SUPPORTS' AND e.{_CURRENT}{_in_scope('e', scope)}")  # fmt: skip
        args = {"tasks": json.dumps(tasks), **_scope_args(scope)}
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return rank_insights(((_node(row[1:]), row[0]) for row in rows), tasks, limit)

    async def cursor(self) -> int:
        """The last journal `seq` applied (0 if none)."""
        return await self._read(lambda db: _meta(db, "cursor"))

    async def advance(self, seq: int) -> None:
        """Move the cursor to `seq`, never back."""
        check_seq(seq)
        sql = ("INSERT INTO hg_graph_meta(key, value) VALUES ('cursor', ?)"
               " ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)")  # fmt: skip
        await self._write(lambda db: db.execute(sql, (seq,)))

    async def reset(self) -> None:
        """Forget every node, edge and the cursor."""

        def clear(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM hg_graph_edges")
            db.execute("DELETE FROM hg_graph_nodes")
            db.execute("DELETE FROM hg_graph_meta WHERE key = 'cursor'")

        await self._write(clear)

    async def counts(self) -> GraphCounts:
        """How many nodes and edges the graph holds, across every scope."""

        def count(db: sqlite3.Connection) -> GraphCounts:
            nodes, retired_nodes = db.execute("SELECT COUNT(*), COUNT(retired_seq) FROM hg_graph_nodes").fetchone()
            edges, retired_edges = db.execute("SELECT COUNT(*), COUNT(retired_seq) FROM hg_graph_edges").fetchone()
            return GraphCounts(nodes - retired_nodes, edges - retired_edges, retired_nodes, retired_edges)

        return await self._read(count)

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call `callback` with every SQL statement this graph runs from now on, on any connection (None: stop)."""
        with self._readers_lock:
            self._trace = callback
            for db in (self._db, *self._readers):
                db.set_trace_callback(callback)

    async def aclose(self) -> None:
        """Close the database (a read still running closes its connection when it ends)."""
        with self._readers_lock:
            self._closed = True
            readers, self._readers = self._readers, []
        for db in readers:
            await asyncio.to_thread(db.close)
        await asyncio.to_thread(self._close_writer)

    def _close_writer(self) -> None:
        with self._lock:
            self._db.close()

    def _open(self, synchronous: str) -> sqlite3.Connection:
        """The write connection, in WAL mode.

        Raises:
            BackendUnavailableError: the file or its folder cannot be made, or it is not a database.

        """
        try:
            if self.persistent:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=self._busy_timeout_s)
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailableError(f"sqlite graph {self.path}", str(exc)) from exc
        try:
            enter_wal(db, deadline=time.monotonic() + self._busy_timeout_s)
            db.execute(f"PRAGMA synchronous={synchronous}")  # one of `SYNCHRONOUS`, checked
        except sqlite3.Error as exc:
            db.close()
            raise BackendUnavailableError(f"sqlite graph {self.path}", str(exc)) from exc
        return db

    async def _read(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        return await asyncio.to_thread(self._sync, fn, write=False)

    async def _write(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        return await asyncio.to_thread(self._sync, fn, write=True)

    def _sync(self, fn: Callable[[sqlite3.Connection], R], *, write: bool) -> R:
        """Run `fn` in one transaction (a write: `BEGIN IMMEDIATE`), again after a busy error, up to `BUSY_RETRIES`.

        Raises:
            MemoryStoreError: the database stayed busy, failed, or the graph is closed.

        """
        for attempt in range(BUSY_RETRIES + 1):
            try:
                if self._closed:
                    raise MemoryStoreError(f"sqlite graph {self.path} is closed")
                if not write and self.persistent:
                    return self._read_once(fn)
                with self._lock:
                    return _transaction(self._db, fn, "BEGIN IMMEDIATE" if write else None)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or attempt == BUSY_RETRIES:
                    raise self._error(exc) from exc
                time.sleep(0.05 * 2**attempt)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        raise AssertionError("unreachable")

    def _read_once(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run `fn` in one read transaction (one snapshot) on an idle read connection."""
        with self._readers_lock:
            db = self._readers.pop() if self._readers else None
        if db is None:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=self._busy_timeout_s)
            db.set_trace_callback(self._trace)
        try:
            return _transaction(db, fn, "BEGIN")
        finally:
            with self._readers_lock:
                if self._closed:
                    db.close()
                else:
                    self._readers.append(db)

    def _error(self, exc: sqlite3.Error) -> MemoryStoreError:
        what = "is locked by another writer (retried)" if is_busy(exc) else "failed"
        return MemoryStoreError(f"sqlite graph {self.path} {what}: {exc}")


def _transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], R], begin: str | None) -> R:
    """`fn(db)` inside `begin` ... `COMMIT` (rolled back if it raises); no transaction when `begin` is None."""
    if begin is None:
        return fn(db)
    db.execute(begin)
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite rolls back by itself after some errors
            db.execute("ROLLBACK")
        raise
    return result


def _create_schema(db: sqlite3.Connection) -> None:
    """Create the tables if missing and record their version; refuse tables of a newer layout."""
    for statement in SCHEMA.split(";"):
        db.execute(statement)
    stored = _meta(db, "schema_version")
    if stored > SCHEMA_VERSION:
        raise JournalSchemaError(f"the graph tables are at schema {stored}; this hivegraph reads {SCHEMA_VERSION}")
    if stored == 0:
        db.execute("INSERT INTO hg_graph_meta(key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))


def _meta(db: sqlite3.Connection, key: str) -> int:
    row = db.execute("SELECT value FROM hg_graph_meta WHERE key = ?", (key,)).fetchone()
    return 0 if row is None else int(row[0])


def _walk(
    starts: list[str], scope: Scope, hops: int, types: frozenset[EdgeType] | None, direction: Direction
) -> tuple[str, dict[str, Any]]:
    """A recursive `walk(id, hops)`: the visible starts at 0, then the far end of each visible edge, up to `hops`.

    A node appears once for each number of hops it can be reached in, so the walk stays finite in cycles.
    """
    edges = "hg_graph_edges"
    type_sql, type_args = _one_of(f"{edges}.type", "type", types)
    crossings = (("source", "target", "in"), ("target", "source", "out"))  # (near end, far end, direction skipping it)
    ends = [(near, far) for near, far, away in crossings if direction != away]
    steps = "".join(
        f" UNION SELECT {edges}.{far}, walk.hops + 1 FROM walk JOIN {edges} ON {edges}.{near} = walk.id"
        f" WHERE walk.hops < :hops AND {edges}.{_CURRENT}{_in_scope(edges, scope)}{type_sql}"
        for near, far in ends
    )
    sql = (
        f"WITH RECURSIVE walk(id, hops) AS (SELECT id, 0 FROM hg_graph_nodes WHERE id IN {_ids('starts')}"
        f" AND {_CURRENT}{_in_scope('hg_graph_nodes', scope)}{steps})"
    )
    return sql, {"starts": json.dumps(starts), "hops": hops, **_scope_args(scope), **type_args}


def _in_scope(table: str, scope: Scope) -> str:
    """Conditions that `table`'s row is visible in `scope`: each field the scope sets, equal (`_scope_args`)."""
    return "".join(f" AND {table}.{name} = :scope_{name}" for name in scope.fields())


def _scope_args(scope: Scope) -> dict[str, str]:
    return {f"scope_{name}": value for name, value in scope.fields().items()}


def _one_of(column: str, name: str, values: Iterable[str] | None) -> tuple[str, dict[str, str]]:
    """A condition that `column` is one of `values` (none: always true), and its parameters."""
    if values is None:
        return "", {}
    args = {f"{name}{n}": value for n, value in enumerate(sorted(values))}
    return f" AND {column} IN ({', '.join(':' + key for key in args)})", args


def _ids(param: str) -> str:
    """The ids of the JSON list parameter `param`, one row each (so their number has no limit)."""
    return f"(SELECT value FROM json_each(:{param}))"


def _cols(columns: Sequence[str], table: str | None = None) -> str:
    return ", ".join(f"{table}.{column}" if table else column for column in columns)


def _nodes_by_id(db: sqlite3.Connection, ids: Iterable[str]) -> list[GraphNode]:
    sql = f"SELECT {_cols(NODE_COLUMNS)} FROM hg_graph_nodes WHERE id IN {_ids('ids')}"
    return [_node(row) for row in db.execute(sql, {"ids": json.dumps(list(ids))})]


def _edges_by_id(db: sqlite3.Connection, ids: Iterable[str]) -> list[GraphEdge]:
    sql = f"SELECT {_cols(EDGE_COLUMNS)} FROM hg_graph_edges WHERE id IN {_ids('ids')}"
    return [_edge(row) for row in db.execute(sql, {"ids": json.dumps(list(ids))})]


def _put(
    db: sqlite3.Connection, table: str, columns: Sequence[str], changing: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert `rows`, or on an id already there replace its `changing` columns, `seq` and `retired_seq`."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in (*changing, "seq", "retired_seq"))
    sql = (f"INSERT INTO {table}({_cols(columns)}) VALUES ({', '.join('?' * len(columns))})"
           f" ON CONFLICT(id) DO UPDATE SET {updates}")  # fmt: skip
    db.executemany(sql, rows)


def _node_row(node: GraphNode) -> tuple[Any, ...]:
    scope = (getattr(node.scope, name) for name in SCOPE_FIELDS)
    return (node.id, node.label, *scope, node.text, properties_json(node.properties), node.seq, node.retired_seq)


def _edge_row(edge: GraphEdge) -> tuple[Any, ...]:
    scope = (getattr(edge.scope, name) for name in SCOPE_FIELDS)
    ends = (edge.id, edge.type, edge.source, edge.target)
    return (*ends, *scope, edge.weight, properties_json(edge.properties), edge.seq, edge.retired_seq)


def _node(row: Sequence[Any]) -> GraphNode:
    node_id, label, user, agent, team, run, text, properties, seq, retired_seq = row
    return GraphNode(
        node_id, label, stored_scope(user, agent, team, run), text, json.loads(properties), seq, retired_seq
    )


def _edge(row: Sequence[Any]) -> GraphEdge:
    edge_id, type_, source, target, user, agent, team, run, weight, properties, seq, retired_seq = row
    scope = stored_scope(user, agent, team, run)
    return GraphEdge(edge_id, type_, source, target, scope, weight, json.loads(properties), seq, retired_seq)
