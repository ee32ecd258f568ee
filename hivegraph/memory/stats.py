"""What a memory holds, counted (`hivegraph memory stats`).

Records are counted from the journal (current versions by kind and by scope, and
every version); the graph by node label and edge type inside the scope asked for.
Only a read of every scope also shows what is not scoped: the journal's newest
sequence number and unreadable entries, and each index's cursor and size, as found
on disk (nothing is caught up first, so an index that is behind shows it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from hivegraph.memory.graph.store import GraphStore
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import Scope
from hivegraph.memory.vocabulary import NodeLabel

NODE_LABELS: tuple[NodeLabel, ...] = ("Task", "Message", "Insight", "Memory", "Entity")


async def memory_stats(store: MemoryStore, graph: GraphStore | None, *, scope: Scope) -> dict[str, Any]:
    """Counts of records, versions, graph nodes and edges in `scope` (and the indexes, for every scope)."""
    journal = store.journal
    current = await journal.records(scope=scope)
    versions = await journal.records(scope=scope, all_versions=True)
    by_scope: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for record in current:
        by_scope[str(record.scope)][record.kind] += 1
    stats: dict[str, Any] = {
        "scope": scope.fields(),
        "records": {
            "current": len(current),
            "versions": len(versions),
            "closed_versions": sum(1 for v in versions if not v.is_current),
            "by_kind": _sorted(Counter(r.kind for r in current)),
            "by_scope": {name: _sorted(kinds) for name, kinds in sorted(by_scope.items())},
        },
        "journal": {"backend": journal.name, "last_seq": await journal.last_seq()},
    }
    if not scope.fields():
        stats["journal"]["unreadable"] = len(await journal.unreadable())
        stats["indexes"] = {p.name: await _index(store, p.name) for p in store.projections}
    if graph is not None:
        stats["graph"] = await graph_stats(graph, scope=scope)
    return stats


async def _index(store: MemoryStore, name: str) -> dict[str, Any]:
    projection = next(p for p in store.projections if p.name == name)
    held, current = await projection.counts()
    shown: dict[str, Any] = {"persistent": projection.persistent, "items": held, "current": current}
    if projection.persistent:
        cursor = await store.journal.cursor(name)
        shown |= {"cursor": cursor, "behind": await store.journal.last_seq() - cursor}
    return shown


async def graph_stats(graph: GraphStore, *, scope: Scope) -> dict[str, Any]:
    """Current nodes by label and edges by type that `scope` sees (and the whole graph's counts, for every scope)."""
    nodes = {label: await graph.nodes_of(label, scope=scope) for label in NODE_LABELS}
    ids = [node.id for found in nodes.values() for node in found]
    edges = (await graph.subgraph(ids, scope=scope, hops=0)).edges if ids else []
    shown: dict[str, Any] = {
        "persistent": graph.persistent,
        "nodes": {label: len(found) for label, found in nodes.items() if found},
        "edges": _sorted(Counter(edge.type for edge in edges)),
    }
    if not scope.fields():
        counts = await graph.counts()
        shown["totals"] = {"nodes": counts.nodes, "edges": counts.edges, "retired_nodes": counts.retired_nodes,
                           "retired_edges": counts.retired_edges}  # fmt: skip
    return shown


def _sorted(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items()))
