"""`GraphProjection`: the memory graph as a projection of the journal.

Records of the G-Memory kinds are nodes (`hivegraph.memory.links.NODE_LABELS_BY_KIND`:
a `query` is a `Task`, an `interaction` a `Message`, an `insight` an `Insight`),
carrying their text, their metadata and the version and hash they were projected
from; link records are edges. An edge is in the graph while its link is open and
both its ends are current: deleting a record retires its node and, with it, its
edges (the graph store's rule); reopening the record (undo of the delete) brings
back the edges whose links are still open.

With an entity extractor (`graph_store.entities`, on by default) episodic and
semantic records are projected too, as the entity graph graph-aware retrieval
walks (`hivegraph.memory.graph.mentions`, `hivegraph.memory.graph.source`): a
`Memory` node per record, `MENTIONS` edges to the `Entity` nodes of its scope.
Entities are derived, not journaled: `verify` compares the `Memory` nodes, and an
entity no current record mentions stays in the graph, unreached.

Entries are applied as one group stamped with the group's last journal sequence:
first what the group closed is retired, then what it left open is written. The
graph store passes over anything already written or retired at that sequence or
later, so replaying entries (a crash before the cursor moved) changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from hivegraph.memory.entities import EntityExtractor, WordEntities
from hivegraph.memory.graph.mentions import ENTITY_KINDS, entity_items
from hivegraph.memory.graph.source import GraphRetrievalSettings, GraphSource
from hivegraph.memory.graph.store import GraphEdge, GraphNode, GraphStore
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal import Journal, JournalEntry
from hivegraph.memory.links import (
    KINDS_BY_LABEL,
    LINK,
    NODE_LABELS_BY_KIND,
    RELATION,
    SOURCE,
    TARGET,
    WEIGHT,
    link_ends,
)
from hivegraph.memory.projection import Projection, final_versions, version_fingerprint
from hivegraph.memory.sources import RetrievalSource, SearchQuery
from hivegraph.memory.types import MemoryKind, MemoryRecord, Scalar, Scope
from hivegraph.memory.validation import MAX_METADATA_KEYS
from hivegraph.memory.vocabulary import MAX_NODE_TEXT_CHARS, OUTCOME, OUTCOMES, SCORE, STEP, NodeLabel

if TYPE_CHECKING:
    from hivegraph.config import HivegraphSettings

VERSION, HASH = "record_version", "record_hash"
"""Properties every projected node and edge carries: the journal version it shows, and that version's text hash."""
EVERYWHERE = Scope()
_LINK_KEYS = frozenset({SOURCE, TARGET, RELATION, WEIGHT})


class GraphProjection(Projection):
    """Keeps a `GraphStore` in step with the journal; with entities, it is also the `graph` retrieval source."""

    kinds: Sequence[MemoryKind] | None = (*NODE_LABELS_BY_KIND, LINK)
    projected = True
    """As a retrieval source, it reads the graph (caught up before it is searched)."""

    def __init__(
        self,
        graph: GraphStore,
        *,
        name: str = "graph",
        entities: EntityExtractor | None = None,
        retrieval: GraphRetrievalSettings | None = None,
    ) -> None:
        """Project into `graph` (its cursor is this projection's mark); `entities` turns the entity graph on."""
        self.graph = graph
        self.name = name
        self.entities = entities
        if entities is not None:
            self.kinds = (*NODE_LABELS_BY_KIND, *ENTITY_KINDS, LINK)
        self.source = GraphSource(graph, entities or WordEntities(), settings=retrieval)
        self._journal: Journal | None = None

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> GraphProjection:
        """The projection into the configured graph store (`graph_store.*`), walked as `retrieval.graph_*` says."""
        from hivegraph.registry import GRAPH_STORES

        graph: GraphStore = GRAPH_STORES.load(settings.graph_store.backend)(settings)
        walk = GraphRetrievalSettings(
            dense_seeds=settings.retrieval.graph_dense_seeds, dense_share=settings.retrieval.graph_dense_share
        )
        return cls(graph, entities=WordEntities() if settings.graph_store.entities else None, retrieval=walk)

    def seed_from(self, source: RetrievalSource) -> None:
        """Let the walk also start from `source`'s best records (`GraphRetrievalSettings.dense_seeds` of them)."""
        self.source.dense = source

    async def search(self, query: SearchQuery, *, k: int) -> list[MemoryHit]:
        """The records Personalized PageRank from the query's entities ranks best (none without the entity graph)."""
        return await self.source.search(query, k=k) if self.entities is not None else []

    def attach(self, journal: Journal) -> None:
        """Read links from `journal` when a reopened record needs its edges back."""
        self._journal = journal

    @property
    def persistent(self) -> bool:
        """Whether the graph store keeps what it holds across processes."""
        return self.graph.persistent

    async def project(self, entries: Sequence[JournalEntry]) -> None:
        """Apply the final state of every record the entries touch, stamped with the last entry's sequence."""
        if entries:
            await self._apply(_latest(final_versions(entries)), seq=entries[-1].seq)

    async def repair(self, write: Sequence[MemoryRecord], remove: Sequence[str], *, seq: int = 0) -> None:
        """Write `write` (current versions) and retire the nodes and edges of the version ids `remove`."""
        seq = max(seq, await self.graph.cursor(), 1)
        written = {str(version.id) for version in write}
        gone = sorted({version_id.rsplit(":", 1)[0] for version_id in remove} - written)
        if gone:
            await self.graph.retire(node_ids=gone, edge_ids=gone, scope=EVERYWHERE, seq=seq)
        await self._apply(_latest(write), seq=seq)

    async def _apply(self, latest: dict[str, MemoryRecord], *, seq: int) -> None:
        closed = [record_id for record_id, record in latest.items() if not record.is_current]
        if closed:
            await self.graph.retire(node_ids=closed, edge_ids=closed, scope=EVERYWHERE, seq=seq)
        opened = [record for record in latest.values() if record.is_current]
        nodes = [to_node(record) for record in opened if record.kind in NODE_LABELS_BY_KIND]
        mentioned = await self._entity_items(opened, seq=seq)
        links = {str(record.id): record for record in opened if record.kind == LINK}
        reopened = await self._reopened(nodes)
        if reopened:
            links |= {str(link.id): link for link in await self._links_of(reopened) if str(link.id) not in latest}
        ends = {end for link in links.values() if (found := link_ends(link)) is not None for end in found[:2]}
        current = {node.id for node in nodes} | {
            node.id for node in await self.graph.get_nodes(sorted(ends), scope=EVERYWHERE)
        }
        edges = [edge for link in links.values() if (edge := to_edge(link)) is not None
                 and edge.source in current and edge.target in current]  # fmt: skip
        nodes.extend(mentioned[0])
        edges.extend(mentioned[1])
        if nodes or edges:
            await self.graph.upsert(nodes, edges, seq=seq)

    async def _entity_items(
        self, opened: Sequence[MemoryRecord], *, seq: int
    ) -> tuple[list[GraphNode], list[GraphEdge]]:
        """The entity graph's items of the current `opened` versions; the `MENTIONS` an update no longer has retire."""
        if self.entities is None:
            return [], []
        records = [record for record in opened if record.kind in ENTITY_KINDS]
        nodes, edges = entity_items(records, self.entities)
        updated = [str(record.id) for record in records if record.version > 1]
        if updated:
            held = await self.graph.subgraph(updated, scope=EVERYWHERE, hops=1, edge_types=["MENTIONS"])
            kept = {edge.id for edge in edges}
            stale = [edge.id for edge in held.edges if edge.id not in kept]
            if stale:
                await self.graph.retire(edge_ids=stale, scope=EVERYWHERE, seq=seq)
        return nodes, edges

    async def _reopened(self, nodes: Sequence[GraphNode]) -> set[str]:
        """The ids of `nodes` the graph holds as retired (a delete undone): their open links come back."""
        held = await self.graph.get_nodes([node.id for node in nodes], scope=EVERYWHERE, include_retired=True)
        return {node.id for node in held if node.retired}

    async def _links_of(self, node_ids: set[str]) -> list[MemoryRecord]:
        """The open links that touch any of `node_ids` (rare: read from every link in the journal)."""
        if self._journal is None:
            return []
        links = await self._journal.records(scope=EVERYWHERE, kinds=[LINK])
        return [link for link in links if (ends := link_ends(link)) is not None and not node_ids.isdisjoint(ends[:2])]

    async def reset(self) -> None:
        """Forget every node, edge and the mark."""
        await self.graph.reset()

    async def applied(self) -> int | None:
        """The graph store's own cursor."""
        return await self.graph.cursor()

    async def mark_applied(self, seq: int) -> None:
        """Move the graph store's cursor to `seq`."""
        await self.graph.advance(seq)

    def fingerprint(self, version: MemoryRecord) -> str | None:
        """A current node or link version: its hash (whether a link shows also depends on its ends; see `expected`)."""
        if not version.is_current or version.kind not in (self.kinds or ()):
            return None
        return version_fingerprint(version.hash, True)

    def expected(self, versions: Sequence[MemoryRecord]) -> dict[str, str]:
        """The current node versions, and the current links whose ends are both current nodes."""
        nodes = {str(v.id) for v in versions if v.is_current and v.kind in (self.kinds or ()) and v.kind != LINK}
        held: dict[str, str] = {}
        for version in versions:
            fingerprint = self.fingerprint(version)
            ends = link_ends(version) if version.kind == LINK else None
            if fingerprint is not None and (version.kind != LINK or (ends is not None and nodes.issuperset(ends[:2]))):
                held[version.version_id] = fingerprint
        return held

    async def fingerprints(self) -> dict[str, str]:
        """Every current node and edge, by the version it shows."""
        labels: list[NodeLabel] = [*KINDS_BY_LABEL, *(["Memory"] if self.entities is not None else [])]
        nodes = [node for label in sorted(labels) for node in await self.graph.nodes_of(label, scope=EVERYWHERE)]
        found = await self.graph.subgraph([node.id for node in nodes], scope=EVERYWHERE, hops=0) if nodes else None
        items: list[GraphNode | GraphEdge] = [*nodes, *(found.edges if found is not None else ())]
        return {f"{item.id}:{item.properties.get(VERSION)}": version_fingerprint(item.properties.get(HASH), True)
                for item in items}  # fmt: skip

    async def counts(self) -> tuple[int, int]:
        """Current nodes and edges, twice (the graph keeps one version of each record; `verify` compares in full).

        With the entity graph, only the items that show a journal version count (entities are derived).
        """
        if self.entities is not None:
            held = len(await self.fingerprints())
            return held, held
        counts = await self.graph.counts()
        return counts.nodes + counts.edges, counts.nodes + counts.edges

    async def aclose(self) -> None:
        """Close the graph store."""
        await self.graph.aclose()


def _latest(versions: Sequence[MemoryRecord]) -> dict[str, MemoryRecord]:
    """The newest version of each record among `versions` (a later state of the same version wins)."""
    latest: dict[str, MemoryRecord] = {}
    for version in versions:
        held = latest.get(str(version.id))
        if held is None or version.version >= held.version:
            latest[str(version.id)] = version
    return latest


def to_node(record: MemoryRecord) -> GraphNode:
    """The node a current record of a graph kind becomes (its label's required properties always present)."""
    label = NODE_LABELS_BY_KIND[record.kind]
    properties = _properties(record, {k: v for k, v in record.metadata.items() if k not in (VERSION, HASH)})
    if label == "Message":
        step = properties.get(STEP)
        properties[STEP] = step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else 0
    elif label == "Insight":
        score = properties.get(SCORE)
        numeric = isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score)
        properties[SCORE] = score if numeric else 0.0
    elif properties.get(OUTCOME) not in OUTCOMES:
        properties.pop(OUTCOME, None)
    return GraphNode(str(record.id), label, record.scope, record.text[:MAX_NODE_TEXT_CHARS], properties)


def to_edge(link: MemoryRecord) -> GraphEdge | None:
    """The edge a current link record becomes (None for a malformed link)."""
    ends = link_ends(link)
    if ends is None:
        return None
    source, target, relation, weight = ends
    extra = {k: v for k, v in link.metadata.items() if k not in _LINK_KEYS and k not in (VERSION, HASH)}
    return GraphEdge(str(link.id), relation, source, target, link.scope, weight, _properties(link, extra))


def _properties(record: MemoryRecord, metadata: dict[str, Scalar]) -> dict[str, Any]:
    """`metadata` (as many keys as fit beside the version and hash), then the version and hash."""
    kept = dict(sorted(metadata.items())[: MAX_METADATA_KEYS - 3])
    return cast(dict[str, Any], {**kept, VERSION: record.version, HASH: record.hash})
