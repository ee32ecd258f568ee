"""The memory graph as one self-contained HTML page (`hivegraph memory graph --out PAGE.html`).

The page draws what a scope sees of the graph, read through the `GraphStore`
protocol only (so every backend gives the same page): the G-Memory tiers in bands
(insights with their scores above, tasks and their `SIMILAR` links in the middle,
each task's messages with `HAS_STEP`, `NEXT` and `ANSWERS` below; `SUPPORTS` and
`CONTRADICTS` from tasks up to insights) and the entity graph beside them
(`Memory` nodes and the `Entity` nodes they `MENTIONS`).

Everything is inline: the data as JSON, the style, the force layout (d3-force and
the three d3 modules it needs, ISC licence, vendored in `assets/` by
`scripts/vendor_js.sh`) and the drawing code, which makes one SVG element per node
and edge. A Content-Security-Policy forbids every fetch, so the page works offline
and cannot leak what it shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from hivegraph.memory.graph.store import GraphCounts, GraphEdge, GraphNode, GraphStore
from hivegraph.memory.types import Scope
from hivegraph.memory.vocabulary import NodeLabel

LABEL_ORDER: tuple[NodeLabel, ...] = ("Task", "Insight", "Message", "Memory", "Entity")
"""The order nodes are taken in when the limit cuts: the query and insight tiers first."""
LIBRARIES = ("d3-dispatch.min.js", "d3-quadtree.min.js", "d3-timer.min.js", "d3-force.min.js")
"""The vendored scripts, dependencies first."""
DEFAULT_LIMIT = 300
_MARKER = re.compile(r"/\*HG_([A-Z]+)\*/")


@dataclass(frozen=True)
class GraphView:
    """What the page shows: some of the nodes a scope sees, and every visible edge among them."""

    scope: Scope
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    totals: dict[str, int] = field(default_factory=dict[str, int])
    """How many current nodes of each label the scope sees (before the limit)."""
    limit: int = DEFAULT_LIMIT
    counts: GraphCounts | None = None
    """The whole graph's counts, every scope (only when the view is of every scope)."""

    @property
    def truncated(self) -> bool:
        """Whether the limit left nodes out."""
        return len(self.nodes) < sum(self.totals.values())


async def graph_view(
    graph: GraphStore,
    *,
    scope: Scope,
    limit: int = DEFAULT_LIMIT,
    focus: Sequence[str] = (),
    hops: int = 1,
) -> GraphView:
    """The nodes `scope` sees, at most `limit` (by `LABEL_ORDER`, then id), or those within `hops` of `focus`.

    Around `focus`, the nearest are kept first (fewest hops, then id).
    """
    totals: dict[str, int] = {}
    chosen: list[str] = []
    for label in LABEL_ORDER:
        found = await graph.nodes_of(label, scope=scope)
        totals[label] = len(found)
        if not focus:
            chosen += [node.id for node in found[: max(limit - len(chosen), 0)]]
    if focus:
        starts = [node.id for node in await graph.get_nodes(focus, scope=scope)]
        near = await graph.neighbours(starts, scope=scope, hops=hops) if starts and hops > 0 else []
        chosen = (starts + [n.node.id for n in near])[:limit]
    shown = await graph.subgraph(chosen, scope=scope, hops=0) if chosen else None
    counts = await graph.counts() if not scope.fields() else None
    return GraphView(
        scope=scope, nodes=shown.nodes if shown else [], edges=shown.edges if shown else [], totals=totals,
        limit=limit, counts=counts,
    )  # fmt: skip


def _asset(name: str) -> str:
    return (files("hivegraph.memory.graph") / "assets" / name).read_text(encoding="utf-8")


def _page_data(view: GraphView, *, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "scope": view.scope.fields(),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "limit": view.limit,
        "truncated": view.truncated,
        "totals": view.totals,
        "counts": asdict(view.counts) if view.counts is not None else None,
        "nodes": [
            {"id": n.id, "label": n.label, "text": n.text, "scope": n.scope.fields(), "properties": dict(n.properties)}
            for n in view.nodes
        ],
        "edges": [_edge_data(e) for e in view.edges],
    }


def _edge_data(edge: GraphEdge) -> dict[str, Any]:
    return {"id": edge.id, "type": edge.type, "source": edge.source, "target": edge.target, "weight": edge.weight,
            "properties": dict(edge.properties)}  # fmt: skip


def _script_json(value: object) -> str:
    """JSON that is safe inside a `<script>` element (no `</script>`, no `<!--`)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_page(view: GraphView, *, title: str = "hivegraph memory graph") -> str:
    """The HTML page for `view`: one file, no external resource."""
    parts = {
        "STYLE": _asset("page.css"),
        "LIBRARIES": "\n".join(_asset(name) for name in LIBRARIES),
        "SCRIPT": _asset("page.js"),
        "TITLE": _html_text(title),
        "DATA": _script_json(_page_data(view, title=title)),
    }
    # one pass: nothing inserted (a memory's text, say) is searched for markers again
    return _MARKER.sub(lambda found: parts[found.group(1)], _asset("page.html"))


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
