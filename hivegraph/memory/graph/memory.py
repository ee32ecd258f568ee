"""`InMemoryGraph`: the reference graph store, in plain dicts of this process.

It defines what every `GraphStore` does (the suite in
`hivegraph.memory.graph.conformance` runs against it and every backend). Each call
holds one lock from its checks to its last write, so calls never interleave,
whether from tasks of one event loop or from threads; a refused call has
written nothing, because every check runs before the first write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

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
    rank_insights,
    step_of,
    visible,
)
from hivegraph.memory.graph.store import GraphCounts, GraphEdge, GraphNode, Neighbour, RankedInsight, Retired, Subgraph
from hivegraph.memory.types import Scope, ensure_scope
from hivegraph.memory.vocabulary import Direction, EdgeType, NodeLabel


class InMemoryGraph:
    """The reference graph store: correct, simple, and gone with the process."""

    persistent = False

    def __init__(self) -> None:
        """An empty graph with its cursor at 0."""
        self._nodes: dict[str, GraphNode] = {}
        self._edges: dict[str, GraphEdge] = {}
        self._touching: dict[str, set[str]] = {}
        """Node id -> ids of every edge (current or retired) that starts or ends there."""
        self._named: dict[str, set[str]] = {}
        """Entity name -> ids of the `Entity` nodes (current or retired) with that text."""
        self._cursor = 0
        self._lock = threading.Lock()

    async def upsert(self, nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], *, seq: int) -> None:
        """Write `nodes`, then `edges`, as journal entry `seq`, all or nothing (see `GraphStore.upsert`)."""
        with self._lock:
            plan = plan_upsert(nodes, edges, seq, known_nodes=self._nodes, known_edges=self._edges)
            self._nodes.update((node.id, node) for node in plan.nodes)
            for node in plan.nodes:
                if node.label == "Entity":
                    self._named.setdefault(node.text, set()).add(node.id)
            for edge in plan.edges:
                self._edges[edge.id] = edge
                self._touching.setdefault(edge.source, set()).add(edge.id)
                self._touching.setdefault(edge.target, set()).add(edge.id)

    async def retire(
        self, *, node_ids: Sequence[str] = (), edge_ids: Sequence[str] = (), scope: Scope, seq: int
    ) -> Retired:
        """Retire these nodes and edges in `scope`, and every current edge of the nodes (see `GraphStore.retire`)."""
        with self._lock:
            node_list, edge_list = check_retire(node_ids, edge_ids, scope, seq)
            named = {edge_id for node_id in node_list for edge_id in self._touching.get(node_id, ())}
            known_edges = {e: self._edges[e] for e in named.union(edge_list) if e in self._edges}
            nodes, edges = plan_retire(
                node_list, edge_list, scope=scope, seq=seq, known_nodes=self._nodes, known_edges=known_edges
            )
            self._nodes.update((node.id, node) for node in nodes)
            self._edges.update((edge.id, edge) for edge in edges)
            return Retired(nodes=[node.id for node in nodes], edges=[edge.id for edge in edges])

    async def get_nodes(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphNode]:
        """The nodes with these ids in `scope`, in the order asked."""
        wanted, scope = check_ids(ids), ensure_scope(scope)
        with self._lock:
            found = (self._nodes.get(node_id) for node_id in wanted)
            return [node for node in found if node is not None and visible(node, scope, include_retired)]

    async def get_edges(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphEdge]:
        """The edges with these ids in `scope`, in the order asked."""
        wanted, scope = check_ids(ids), ensure_scope(scope)
        with self._lock:
            found = (self._edges.get(edge_id) for edge_id in wanted)
            return [edge for edge in found if edge is not None and visible(edge, scope, include_retired)]

    async def nodes_of(self, label: NodeLabel, *, scope: Scope, limit: int | None = None) -> list[GraphNode]:
        """The current nodes of one label in `scope`, by id."""
        label, scope = check_label(label), ensure_scope(scope)
        most = check_limit(limit) if limit is not None else None
        with self._lock:
            found = [node for node in self._nodes.values() if node.label == label and visible(node, scope)]
        return sorted(found, key=lambda node: node.id)[:most]

    async def entities_named(self, names: Sequence[str], *, scope: Scope) -> list[GraphNode]:
        """The current `Entity` nodes in `scope` whose text is one of `names`, by id."""
        wanted, scope = set(check_ids(names, "names")), ensure_scope(scope)
        with self._lock:
            found = [self._nodes[i] for name in wanted for i in self._named.get(name, ())]
        return sorted((node for node in found if visible(node, scope)), key=lambda node: node.id)

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
        with self._lock:
            reached = self._reach(starts, scope, hops, types, direction)
            found = [
                Neighbour(self._nodes[node_id], depth) for node_id, depth in reached.items()
                if depth > 0 and (wanted is None or self._nodes[node_id].label in wanted)
            ]  # fmt: skip
        return sorted(found, key=lambda n: (n.hops, n.node.id))

    async def subgraph(
        self, ids: Sequence[str], *, scope: Scope, hops: int = 1, edge_types: Sequence[EdgeType] | None = None
    ) -> Subgraph:
        """The visible nodes of `ids`, those within `hops` of them, and every visible edge among them."""
        starts, scope, hops = check_ids(ids), ensure_scope(scope), check_hops(hops, least=0)
        types = check_edge_types(edge_types)
        with self._lock:
            reached = self._reach(starts, scope, hops, types, "both")
            edges = {
                edge.id: edge for node_id in reached for edge in self._edges_at(node_id, scope, types)
                if edge.source in reached and edge.target in reached
            }  # fmt: skip
            nodes = [self._nodes[node_id] for node_id in sorted(reached)]
        return Subgraph(nodes=nodes, edges=[edges[edge_id] for edge_id in sorted(edges)])

    async def trajectory(self, task_id: str, *, scope: Scope) -> list[GraphNode]:
        """The messages a task has (`HAS_STEP`), by step then id."""
        task_id, scope = check_id(task_id, "task_id"), ensure_scope(scope)
        with self._lock:
            task = self._nodes.get(task_id)
            if task is None or task.label != "Task" or not visible(task, scope):
                return []
            steps = [self._nodes[edge.target] for edge in self._edges_at(task_id, scope, {"HAS_STEP"})]
        return sorted(steps, key=lambda node: (step_of(node), node.id))

    async def insights_for(self, task_ids: Sequence[str], *, scope: Scope, limit: int = 10) -> list[RankedInsight]:
        """Insights supported by any of `task_ids`, ranked as `rank_insights` says."""
        tasks, scope, limit = check_ids(task_ids, "task_ids"), ensure_scope(scope), check_limit(limit)
        supported: list[tuple[GraphNode, str]] = []
        with self._lock:
            for task_id in dict.fromkeys(tasks):
                task = self._nodes.get(task_id)
                if task is None or task.label != "Task" or not visible(task, scope):
                    continue
                edges = self._edges_at(task_id, scope, {"SUPPORTS"})
                supported += [(self._nodes[edge.target], task_id) for edge in edges]
        return rank_insights(supported, tasks, limit)

    async def cursor(self) -> int:
        """The last journal `seq` applied (0 if none)."""
        return self._cursor

    async def advance(self, seq: int) -> None:
        """Move the cursor to `seq`, never back."""
        check_seq(seq)
        with self._lock:
            self._cursor = max(self._cursor, seq)

    async def reset(self) -> None:
        """Forget every node, edge and the cursor."""
        with self._lock:
            self._nodes.clear()
            self._edges.clear()
            self._touching.clear()
            self._named.clear()
            self._cursor = 0

    async def counts(self) -> GraphCounts:
        """How many nodes and edges the graph holds, across every scope."""
        with self._lock:
            retired_nodes = sum(1 for node in self._nodes.values() if node.retired)
            retired_edges = sum(1 for edge in self._edges.values() if edge.retired)
            return GraphCounts(
                nodes=len(self._nodes) - retired_nodes, edges=len(self._edges) - retired_edges,
                retired_nodes=retired_nodes, retired_edges=retired_edges,
            )  # fmt: skip

    async def aclose(self) -> None:
        """Nothing to release."""

    def _edges_at(self, node_id: str, scope: Scope, types: frozenset[EdgeType] | set[EdgeType] | None
                  ) -> Iterator[GraphEdge]:  # fmt: skip
        """The visible current edges (of `types`, any when None) that start or end at a node."""
        for edge_id in self._touching.get(node_id, ()):
            edge = self._edges[edge_id]
            if visible(edge, scope) and (types is None or edge.type in types):
                yield edge

    def _reach(
        self, starts: list[str], scope: Scope, hops: int, types: frozenset[EdgeType] | None, direction: Direction
    ) -> dict[str, int]:
        """Every visible node within `hops` of the visible `starts`, with the fewest hops it takes (starts: 0)."""
        reached = {s: 0 for s in starts if (node := self._nodes.get(s)) is not None and visible(node, scope)}
        frontier = list(reached)
        for depth in range(1, hops + 1):
            step: list[str] = []
            for node_id in frontier:
                for edge in self._edges_at(node_id, scope, types):
                    other = _across(edge, node_id, direction)
                    if other is not None and other not in reached:
                        reached[other] = depth
                        step.append(other)
            frontier = step
        return reached


def _across(edge: GraphEdge, node_id: str, direction: Direction) -> str | None:
    """The node at the other end of `edge` from `node_id`, if `direction` lets a traversal cross it that way."""
    if edge.source == node_id and direction != "in":
        return edge.target
    if edge.target == node_id and direction != "out":
        return edge.source
    return None
