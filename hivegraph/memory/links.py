"""Links: the memory graph's edges, kept in the journal as records of kind `link`.

A `LinkOp` journals a record whose text is the canonical `"<RELATION> <source> <target>"`
(so the one link between two records by one relation is found by its text hash, as an
ADD finds a duplicate) and whose metadata names both ends, the relation and the weight.
Linking the same pair again is a NOOP, or an UPDATE of the link when the weight or
metadata changed; `UnlinkOp` closes it. Being records, links have versions, history,
`as_of` and undo like any memory, and the graph projection derives its edges from them:
an edge is there while its link is open and both its ends are current.

Records become graph nodes by kind (`NODE_LABELS_BY_KIND`): a G-Memory `query` is a
`Task`, an `interaction` message a `Message`, an `insight` an `Insight`.
"""

from __future__ import annotations

from uuid import UUID

from hivegraph.memory.types import MemoryKind, MemoryRecord, Scalar
from hivegraph.memory.vocabulary import EDGE_ENDPOINTS, EdgeType, NodeLabel

LINK: MemoryKind = "link"
NODE_LABELS_BY_KIND: dict[MemoryKind, NodeLabel] = {"query": "Task", "interaction": "Message", "insight": "Insight"}
"""The record kinds that are nodes of the memory graph, and their labels."""
KINDS_BY_LABEL: dict[NodeLabel, MemoryKind] = {label: kind for kind, label in NODE_LABELS_BY_KIND.items()}
SOURCE, TARGET, RELATION, WEIGHT = "source", "target", "relation", "weight"
"""The metadata keys every link record has (a link's own metadata never overrides them)."""


def link_text(relation: EdgeType, source: UUID, target: UUID) -> str:
    """The canonical text of the link `relation` from `source` to `target`."""
    return f"{relation} {source} {target}"


def link_metadata(
    relation: EdgeType, source: UUID, target: UUID, weight: float, extra: dict[str, Scalar]
) -> dict[str, Scalar]:
    """A link record's metadata: `extra`, then its ends, relation and weight."""
    return {**extra, SOURCE: str(source), TARGET: str(target), RELATION: relation, WEIGHT: float(weight)}


def endpoint_problem(relation: EdgeType, end: str, record: MemoryRecord) -> str | None:
    """Why `record` cannot be the `end` (`source` or `target`) of a `relation` link, or None if it can."""
    want = EDGE_ENDPOINTS[relation][0 if end == SOURCE else 1]
    label = NODE_LABELS_BY_KIND.get(record.kind)
    if label == want:
        return None
    return f"a {relation} link's {end} must be a {KINDS_BY_LABEL[want]} record, not a {record.kind} record"


def link_ends(record: MemoryRecord) -> tuple[str, str, EdgeType, float] | None:
    """A link record's (source id, target id, relation, weight), or None if it is not a well-formed link."""
    meta = record.metadata
    source, target, relation, weight = (meta.get(k) for k in (SOURCE, TARGET, RELATION, WEIGHT))
    if record.kind != LINK or not isinstance(source, str) or not isinstance(target, str):
        return None
    if relation not in EDGE_ENDPOINTS or isinstance(weight, bool) or not isinstance(weight, int | float):
        return None
    return source, target, relation, float(weight)
