"""The memory graph: G-Memory's interaction, query and insight tiers, as a projection of the journal."""

from hivegraph.memory.graph.memory import InMemoryGraph
from hivegraph.memory.graph.sqlite import SqliteGraph
from hivegraph.memory.graph.store import (
    GraphCounts,
    GraphEdge,
    GraphNode,
    GraphStore,
    Neighbour,
    RankedInsight,
    Retired,
    Subgraph,
)
from hivegraph.memory.vocabulary import EDGE_ENDPOINTS, MAX_HOPS, Direction, EdgeType, NodeLabel, Outcome

__all__ = [
    "EDGE_ENDPOINTS",
    "MAX_HOPS",
    "Direction",
    "EdgeType",
    "GraphCounts",
    "GraphEdge",
    "GraphNode",
    "GraphStore",
    "InMemoryGraph",
    "Neighbour",
    "NodeLabel",
    "Outcome",
    "RankedInsight",
    "Retired",
    "SqliteGraph",
    "Subgraph",
]
