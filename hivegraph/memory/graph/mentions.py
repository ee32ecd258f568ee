"""The entity graph's items: a record as a `Memory` node, its entities as `Entity` nodes, `MENTIONS` between them.

Episodic and semantic records become `Memory` nodes (id: the record id; no
text, since the journal holds it; properties: the version and hash they show,
the record's kind and its event time). Each entity a record mentions
(`hivegraph.memory.entities`) is an `Entity` node of the record's scope, whose
id is derived from that scope and the entity's name, so every record of one
scope that mentions "paris" meets the same node and no two scopes share one.
A `MENTIONS` edge (id: the record and the entity) joins the two.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from hivegraph.memory.entities import EntityExtractor, given_entities
from hivegraph.memory.graph.store import GraphEdge, GraphNode
from hivegraph.memory.journal_codec import event_columns
from hivegraph.memory.types import MemoryKind, MemoryRecord, Scalar, Scope

ENTITY_KINDS: tuple[MemoryKind, ...] = ("episodic", "semantic")
"""The record kinds the entity graph holds."""
VERSION, HASH, KIND, OCCURRED_US = "record_version", "record_hash", "record_kind", "occurred_us"
"""Properties of a `Memory` node."""
MAX_ENTITIES = 64
"""The most entities one record is linked to (the first found)."""


def entity_id(scope: Scope, name: str) -> str:
    """The id of the `Entity` node named `name` in `scope` (the same inputs always give the same id)."""
    key = json.dumps([sorted(scope.fields().items()), name], ensure_ascii=False)
    return "entity:" + hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def mention_id(record_id: str, entity: str) -> str:
    """The id of the `MENTIONS` edge from a record's node to an entity node."""
    return f"mentions:{record_id}:{entity.removeprefix('entity:')}"


def memory_node(record: MemoryRecord) -> GraphNode:
    """The `Memory` node of a current episodic or semantic version."""
    properties: dict[str, Scalar] = {VERSION: record.version, HASH: record.hash, KIND: record.kind}
    occurred = event_columns(record.metadata).occurred_us
    if occurred is not None:
        properties[OCCURRED_US] = occurred
    return GraphNode(str(record.id), "Memory", record.scope, "", properties)


def mentions(record: MemoryRecord, extract: EntityExtractor) -> tuple[list[GraphNode], list[GraphEdge]]:
    """The `Entity` nodes a record mentions (found in its text, or named in its metadata) and its `MENTIONS` edges."""
    names = list(dict.fromkeys([*given_entities(record.metadata), *extract(record.text)]))[:MAX_ENTITIES]
    record_id = str(record.id)
    nodes = [GraphNode(entity_id(record.scope, name), "Entity", record.scope, name) for name in names]
    edges = [GraphEdge(mention_id(record_id, n.id), "MENTIONS", record_id, n.id, record.scope) for n in nodes]
    return nodes, edges


def entity_items(records: Sequence[MemoryRecord], extract: EntityExtractor) -> tuple[list[GraphNode], list[GraphEdge]]:
    """The `Memory` nodes, `Entity` nodes (each once) and `MENTIONS` edges of current versions."""
    nodes: dict[str, GraphNode] = {}
    edges: list[GraphEdge] = []
    for record in records:
        nodes[str(record.id)] = memory_node(record)
        found, joined = mentions(record, extract)
        nodes.update((node.id, node) for node in found)
        edges.extend(joined)
    return list(nodes.values()), edges
