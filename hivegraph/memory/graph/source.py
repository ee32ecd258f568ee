"""The `graph` retrieval source: Personalized PageRank over the entity graph, from the query's entities.

As HippoRAG does: the query's entities (found by the same extractor as the
records', `hivegraph.memory.entities`) are looked up among the `Entity` nodes
the query's scope sees; the subgraph of `MENTIONS` edges around them is read
(the records that mention a seed and, with 2 hops, the other entities of
the best of those records, so the cost is bounded by what the seeds
mention, not by the size of the graph); PageRank is run on it in
Python, restarting at the seeds, each seed weighted by its specificity (one
over the number of records that mention it), and a walk from a record to its
entities prefers the specific ones the same way. The `Memory` nodes are
ranked by the PageRank mass they gather; the source returns the best current
versions of the asked kinds and time range. No similarity is computed in the
graph store, and every read is scoped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hivegraph.memory.entities import EntityExtractor
from hivegraph.memory.graph.mentions import KIND, OCCURRED_US, VERSION
from hivegraph.memory.graph.store import GraphNode, GraphStore, Subgraph
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.sources import RetrievalSource, SearchQuery

GRAPH = "graph"


@dataclass(frozen=True)
class GraphRetrievalSettings:
    """How the graph source walks (HippoRAG's damping)."""

    hops: int = 2
    """How far the walk's subgraph grows from the seeds (1 to 3; see `GraphSource._walk`).

    On LoCoMo's dev conversations (MiniLM, fused with vector and keyword) 3 hops
    brought in more noise than evidence; 2 re-ranks the records that mention a seed.
    """
    expand: int = 50
    """How many of the best records (hop 2) or entities (hop 3) a hop grows from."""
    damping: float = 0.5
    """The chance a walk goes on at each step rather than restarting at a seed."""
    iterations: int = 30
    tolerance: float = 1e-6
    """PageRank stops when no score moves by more than this."""
    max_seeds: int = 32
    """The most query entities used as seeds (the most specific first)."""
    dense_seeds: int = 0
    """How many of the `dense` source's best records also seed the walk (0: entities only), as HippoRAG 2 does.

    The configured default (`retrieval.graph_dense_seeds`) is 10, with `dense_share` 0.5, from LoCoMo dev.
    """
    dense_share: float = 0.5
    """The share of the restart mass on those records (the rest on the query's entities)."""


class GraphSource:
    """Ranks the records of the entity graph by Personalized PageRank from the query's entities."""

    name = GRAPH
    projected = True

    def __init__(
        self, graph: GraphStore, extract: EntityExtractor, *, settings: GraphRetrievalSettings | None = None
    ) -> None:
        """Walk `graph`, finding the query's entities with `extract`."""
        self.graph = graph
        self.extract = extract
        self.settings = settings or GraphRetrievalSettings()
        self.dense: RetrievalSource | None = None
        """A source whose best records seed the walk beside the entities (`settings.dense_seeds` of them)."""

    async def search(self, query: SearchQuery, *, k: int) -> list[MemoryHit]:
        """The `k` records of the query's scope, kinds and time range that gather the most PageRank, best first."""
        if k < 1:
            return []
        names = self.extract(query.text)
        seeds = await self.graph.entities_named(names, scope=query.scope) if names else []
        records: dict[str, float] = {}
        if self.dense is not None and self.settings.dense_seeds > 0:
            hits = await self.dense.search(query, k=self.settings.dense_seeds)
            records = {hit.id.split(":")[0]: max(hit.score, 0.0) for hit in hits}
        if not seeds and not records:
            return []
        around = await self._walk([seed.id for seed in seeds], records, query)
        scores = personalized_pagerank(around, [seed.id for seed in seeds], self.settings, records)
        memories = {node.id: node for node in around.nodes if node.label == "Memory" and _wanted(node, query)}
        ranked = sorted((i for i in scores if i in memories), key=lambda i: (-scores[i], i))[:k]
        return [MemoryHit(id=f"{i}:{memories[i].properties.get(VERSION)}", score=scores[i]) for i in ranked]

    async def _walk(self, seeds: list[str], records: dict[str, float], query: SearchQuery) -> Subgraph:
        """The subgraph PageRank runs on, grown one bounded step per hop from the seeds.

        Hop 1: the records that mention a seed, and the entities of the seed
        records. Hop 2: the entities of the best `expand` records (after a walk
        on what is read so far), and the records that mention the best entities
        of the seed records. Hop 3: the records that mention the best `expand`
        of those entities.
        """
        grown = await self.graph.subgraph([*seeds, *records], scope=query.scope, hops=1, edge_types=["MENTIONS"])
        for hop in range(2, self.settings.hops + 1):
            scores = personalized_pagerank(grown, seeds, self.settings, records)
            held = {edge.target for edge in grown.edges}
            memories = [n.id for n in grown.nodes if n.label == "Memory"]
            entities = [n.id for n in grown.nodes if n.label == "Entity" and n.id not in seeds and n.id in held]
            best: list[str] = []
            if hop == 2:
                best += sorted(memories, key=lambda i: (-scores.get(i, 0.0), i))[: self.settings.expand]
            if hop == 3 or (hop == 2 and records):
                best += sorted(entities, key=lambda i: (-scores.get(i, 0.0), i))[: self.settings.expand]
            if not best:
                break
            further = await self.graph.subgraph(best, scope=query.scope, hops=1, edge_types=["MENTIONS"])
            grown = _merged(grown, further)
        return grown


def personalized_pagerank(
    subgraph: Subgraph,
    seeds: list[str],
    settings: GraphRetrievalSettings,
    records: dict[str, float] | None = None,
) -> dict[str, float]:
    """PageRank on `subgraph` (edges taken both ways) restarting at `seeds`, weighted by their specificity.

    A node's walk goes to its neighbours in proportion to their specificity
    (one over their degree in the subgraph): from a record, a rare entity is
    likelier than a common one; from an entity, every record that mentions it
    is as likely. Every node of the subgraph has an edge (it was reached by one),
    so no mass is stranded. `records` (record node id to a non-negative score)
    restart the walk too, with `settings.dense_share` of the mass in proportion
    to their scores.
    """
    index = {node.id: n for n, node in enumerate(subgraph.nodes)}
    ends = np.array([(index[e.source], index[e.target]) for e in subgraph.edges], dtype=np.int64).reshape(-1, 2)
    source, target = np.concatenate([ends[:, 0], ends[:, 1]]), np.concatenate([ends[:, 1], ends[:, 0]])
    degree = np.bincount(source, minlength=len(index)).astype(np.float64)
    specific = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    chosen = sorted((s for s in seeds if s in index and specific[index[s]] > 0),
                    key=lambda s: (-specific[index[s]], s))[: settings.max_seeds]  # fmt: skip
    restart = np.zeros(len(index))
    if chosen:
        restart[[index[s] for s in chosen]] = specific[[index[s] for s in chosen]]
        restart /= restart.sum()
    dense = {i: w for i, w in (records or {}).items() if i in index and w > 0}
    if dense:
        mass = np.zeros(len(index))
        mass[[index[i] for i in dense]] = list(dense.values())
        part = settings.dense_share if chosen else 1.0
        restart = (1 - part) * restart + part * mass / mass.sum()
    if not restart.any():
        return {}
    outgoing = np.bincount(source, weights=specific[target], minlength=len(index))
    share = specific[target] / outgoing[source]
    scores = restart.copy()
    for _ in range(settings.iterations):
        spread = (1 - settings.damping) * restart + settings.damping * np.bincount(
            target, weights=scores[source] * share, minlength=len(index)
        )
        moved = float(np.abs(spread - scores).max())
        scores = spread
        if moved <= settings.tolerance:
            break
    return {node.id: float(scores[n]) for n, node in enumerate(subgraph.nodes) if scores[n] > 0}


def _merged(first: Subgraph, second: Subgraph) -> Subgraph:
    nodes = {node.id: node for node in [*first.nodes, *second.nodes]}
    edges = {edge.id: edge for edge in [*first.edges, *second.edges]}
    return Subgraph(nodes=[nodes[i] for i in sorted(nodes)], edges=[edges[i] for i in sorted(edges)])


def _wanted(node: GraphNode, query: SearchQuery) -> bool:
    """Whether a `Memory` node is of the query's kinds and inside its time range."""
    if query.kinds and node.properties.get(KIND) not in query.kinds:
        return False
    if query.since_us is None and query.until_us is None:
        return True
    when = node.properties.get(OCCURRED_US)
    if not isinstance(when, int) or isinstance(when, bool):
        return False
    return (query.since_us is None or when >= query.since_us) and (query.until_us is None or when <= query.until_us)
