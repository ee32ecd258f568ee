"""The `GraphStore` protocol: the memory graph's domain operations, scoped in every call.

The graph is a projection of the memory journal: every write carries the `seq`
of the journal entry it comes from, and applying an entry again (or an older
one) leaves the graph as it is. Nothing is erased: retiring closes a node or
edge (it keeps its data and the `seq` that retired it) and reads stop seeing it.

Visibility follows the journal's scopes: a read in scope `S` sees a node or edge
whose scope has every field `S` sets, with the same value (`Scope.contains`).
Ids are global: one id names one node (or edge) in one scope, for good.

Invariants every backend keeps (checked by `hivegraph.memory.graph.conformance`):
    - an edge's ends are current nodes its own scope contains, of the labels
      its type joins (`EDGE_ENDPOINTS`); a node's label and scope, and an
      edge's type, ends and scope, never change;
    - no current edge touches a retired node (retiring a node retires its edges);
    - at one `seq`, retirement wins over a write, whichever is applied first.

The reference is `hivegraph.memory.graph.memory.InMemoryGraph`; the checks that decide
what a call does are shared by every backend (`hivegraph.memory.graph.plan`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hivegraph.memory.types import Scope
from hivegraph.memory.validation import Scalar
from hivegraph.memory.vocabulary import Direction, EdgeType, NodeLabel


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One node: what it is, whose it is, and the journal entry that last wrote it."""

    id: str
    label: NodeLabel
    scope: Scope
    text: str = ""
    properties: Mapping[str, Scalar] = field(default_factory=dict[str, Scalar])
    """Flat finite scalars; some keys are required or typed per label (`schema.STEP`, `SCORE`, `OUTCOME`)."""
    seq: int = 0
    """The journal entry that last wrote it (set by the store; ignored on input)."""
    retired_seq: int | None = None
    """The journal entry that retired it; None while current (set by the store; ignored on input)."""

    @property
    def retired(self) -> bool:
        """Whether the node is closed (kept, but invisible to ordinary reads)."""
        return self.retired_seq is not None


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """One directed edge between two nodes of the scope it is in."""

    id: str
    type: EdgeType
    source: str
    target: str
    scope: Scope
    weight: float = 1.0
    """A finite number: the similarity of a `SIMILAR` edge, 1.0 where nothing is measured."""
    properties: Mapping[str, Scalar] = field(default_factory=dict[str, Scalar])
    seq: int = 0
    """The journal entry that last wrote it (set by the store; ignored on input)."""
    retired_seq: int | None = None
    """The journal entry that retired it, or retired one of its ends; None while current."""

    @property
    def retired(self) -> bool:
        """Whether the edge is closed."""
        return self.retired_seq is not None


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A node reached by a traversal, and the fewest hops it took."""

    node: GraphNode
    hops: int


@dataclass(frozen=True, slots=True)
class Subgraph:
    """Nodes, and every visible edge between two of them, each sorted by id."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]


@dataclass(frozen=True, slots=True)
class RankedInsight:
    """An insight, how many of the asked tasks support it, and the position of the first of them among those asked."""

    insight: GraphNode
    support: int
    first: int = 0


@dataclass(frozen=True, slots=True)
class Retired:
    """The ids a `retire` call closed: those it was given and the edges that went with the nodes."""

    nodes: list[str] = field(default_factory=list[str])
    edges: list[str] = field(default_factory=list[str])


@dataclass(frozen=True, slots=True)
class GraphCounts:
    """How many nodes and edges the graph holds, current and retired (every scope)."""

    nodes: int
    edges: int
    retired_nodes: int
    retired_edges: int


@runtime_checkable
class GraphStore(Protocol):
    """The memory graph's domain operations (see the module docstring for the rules)."""

    @property
    def persistent(self) -> bool:
        """Whether what was written survives a new process."""
        ...

    async def upsert(self, nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], *, seq: int) -> None:
        """Write `nodes`, then `edges`, as journal entry `seq`, all or nothing.

        An item last written or retired at `seq` or later is left as it is; a
        retired one written at a later `seq` is current again (its edges stay
        retired). An edge may join nodes written in the same call.

        Raises:
            InvalidInputError: a malformed item (the field is named), an id twice, a changed label, type or end.
            ScopeViolationError: an id already belongs to another scope.
            DanglingEdgeError: an end is not a current node the edge's scope contains.

        """
        ...

    async def retire(
        self, *, node_ids: Sequence[str] = (), edge_ids: Sequence[str] = (), scope: Scope, seq: int
    ) -> Retired:
        """Retire the current nodes and edges with these ids in `scope`, and every current edge of those nodes.

        Ids that are unknown, already retired, outside `scope`, or written after
        `seq` are passed over. Returns what was retired.
        """
        ...

    async def get_nodes(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphNode]:
        """The nodes with these ids in `scope`, in the order asked (unknown ones left out)."""
        ...

    async def get_edges(self, ids: Sequence[str], *, scope: Scope, include_retired: bool = False) -> list[GraphEdge]:
        """The edges with these ids in `scope`, in the order asked (unknown ones left out)."""
        ...

    async def nodes_of(self, label: NodeLabel, *, scope: Scope, limit: int | None = None) -> list[GraphNode]:
        """The current nodes of one label in `scope`, by id."""
        ...

    async def entities_named(self, names: Sequence[str], *, scope: Scope) -> list[GraphNode]:
        """The current `Entity` nodes in `scope` whose text is one of `names`, by id (one per scope holding it)."""
        ...

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
        """The nodes within `hops` of `ids` over visible edges, by (hops, id); the starts themselves never.

        Only edges of `edge_types` are followed (any when None); `labels` filters
        the nodes returned, not the nodes passed through.
        """
        ...

    async def subgraph(
        self, ids: Sequence[str], *, scope: Scope, hops: int = 1, edge_types: Sequence[EdgeType] | None = None
    ) -> Subgraph:
        """The visible nodes of `ids`, those within `hops` of them (0: none), and every visible edge among them."""
        ...

    async def trajectory(self, task_id: str, *, scope: Scope) -> list[GraphNode]:
        """The messages a task has (`HAS_STEP`), by step then id; empty for an unknown task."""
        ...

    async def insights_for(self, task_ids: Sequence[str], *, scope: Scope, limit: int = 10) -> list[RankedInsight]:
        """Insights supported by any of `task_ids`, best first.

        Most supporting tasks first, then highest score, then the earliest supporting
        task in `task_ids` (callers list the most relevant task first), then id.
        """
        ...

    async def cursor(self) -> int:
        """The last journal `seq` the graph has applied everything up to (0 if none)."""
        ...

    async def advance(self, seq: int) -> None:
        """Record that everything up to `seq` is applied (a lower `seq` than the cursor changes nothing)."""
        ...

    async def reset(self) -> None:
        """Forget every node, edge and the cursor."""
        ...

    async def counts(self) -> GraphCounts:
        """How many nodes and edges the graph holds, across every scope."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources."""
        ...
