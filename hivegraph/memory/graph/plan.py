"""What a `GraphStore` call does, decided once for every backend.

A backend reads the items a call refers to (`referenced`), including retired
ones, hands them to `plan_upsert` or `plan_retire`, and writes the result in
one transaction; every check that can refuse the call runs before anything is
written. The argument checks of the reads are here too, so every backend
refuses the same input with the same error.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from hivegraph.errors import DanglingEdgeError, InvalidInputError, ScopeViolationError
from hivegraph.memory.graph.store import GraphEdge, GraphNode, RankedInsight
from hivegraph.memory.types import Scope, ensure_scope
from hivegraph.memory.validation import check_metadata, check_scalar, check_text
from hivegraph.memory.vocabulary import (
    EDGE_ENDPOINTS,
    EDGE_TYPES,
    MAX_HOPS,
    MAX_ID_CHARS,
    MAX_NODE_TEXT_CHARS,
    NODE_LABELS,
    OUTCOME,
    OUTCOMES,
    SCORE,
    STEP,
    Direction,
    EdgeType,
    NodeLabel,
)


@dataclass
class UpsertPlan:
    """The items an upsert writes, stamped with its `seq` (those already at or past it are left out)."""

    nodes: list[GraphNode] = field(default_factory=list[GraphNode])
    edges: list[GraphEdge] = field(default_factory=list[GraphEdge])


def check_seq(seq: object, what: str = "seq") -> int:
    """`seq` if it is a journal sequence number (an integer >= 1).

    Raises:
        InvalidInputError: anything else.

    """
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise InvalidInputError(what, f"must be an integer >= 1, not {seq!r}")
    return seq


def check_id(value: object, field: str) -> str:
    """`value` as an id: a non-blank string of at most `MAX_ID_CHARS` characters.

    Raises:
        InvalidInputError: anything else.

    """
    return check_text(value, field, max_chars=MAX_ID_CHARS)


def check_ids(ids: object, field: str = "ids") -> list[str]:
    """`ids` as a list of ids, each once, in order.

    Raises:
        InvalidInputError: a bare string (not a list of them), not a sequence, or a bad id.

    """
    if isinstance(ids, str) or not isinstance(ids, Sequence | frozenset | set):
        raise InvalidInputError(field, f"must be a list of ids, not {type(ids).__name__}")
    items = cast(Iterable[object], ids)
    return list(dict.fromkeys(check_id(item, f"{field}[{n}]") for n, item in enumerate(items)))


def check_hops(hops: object, *, least: int = 1) -> int:
    """`hops` if it is an integer from `least` to `MAX_HOPS`.

    Raises:
        InvalidInputError: anything else.

    """
    if isinstance(hops, bool) or not isinstance(hops, int) or not least <= hops <= MAX_HOPS:
        raise InvalidInputError("hops", f"must be an integer from {least} to {MAX_HOPS}, not {hops!r}")
    return hops


def check_limit(limit: object) -> int:
    """`limit` if it is an integer >= 1.

    Raises:
        InvalidInputError: anything else.

    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError("limit", f"must be an integer >= 1, not {limit!r}")
    return limit


def check_direction(direction: object) -> Direction:
    """`direction` if it is `out`, `in` or `both`.

    Raises:
        InvalidInputError: anything else.

    """
    if direction not in ("out", "in", "both"):
        raise InvalidInputError("direction", f"must be 'out', 'in' or 'both', not {direction!r}")
    return direction


def check_label(label: object, field: str = "label") -> NodeLabel:
    """`label` if it is one of `NODE_LABELS`.

    Raises:
        InvalidInputError: anything else.

    """
    if not isinstance(label, str) or label not in NODE_LABELS:
        raise InvalidInputError(field, f"unknown node label {label!r}; labels: {sorted(NODE_LABELS)}")
    return cast(NodeLabel, label)


def check_edge_type(type_: object, field: str = "type") -> EdgeType:
    """`type_` if it is one of `EDGE_TYPES`.

    Raises:
        InvalidInputError: anything else.

    """
    if not isinstance(type_, str) or type_ not in EDGE_TYPES:
        raise InvalidInputError(field, f"unknown edge type {type_!r}; types: {sorted(EDGE_TYPES)}")
    return cast(EdgeType, type_)


def check_labels(labels: object, field: str = "labels") -> frozenset[NodeLabel] | None:
    """`labels` as a set of labels, or None for any.

    Raises:
        InvalidInputError: a bare string, or an unknown label.

    """
    if labels is None:
        return None
    if isinstance(labels, str) or not isinstance(labels, Iterable):
        raise InvalidInputError(field, f"must be a list of labels, not {type(labels).__name__}")
    return frozenset(check_label(item, f"{field}[{n}]") for n, item in enumerate(cast(Iterable[object], labels)))


def check_edge_types(types: object, field: str = "edge_types") -> frozenset[EdgeType] | None:
    """`types` as a set of edge types, or None for any.

    Raises:
        InvalidInputError: a bare string, or an unknown type.

    """
    if types is None:
        return None
    if isinstance(types, str) or not isinstance(types, Iterable):
        raise InvalidInputError(field, f"must be a list of edge types, not {type(types).__name__}")
    return frozenset(check_edge_type(item, f"{field}[{n}]") for n, item in enumerate(cast(Iterable[object], types)))


def check_node(node: object, field: str) -> GraphNode:
    """`node` if it is a well-formed `GraphNode`, with its properties checked for its label.

    Raises:
        InvalidInputError: naming the field that is wrong.

    """
    if not isinstance(node, GraphNode):
        raise InvalidInputError(field, f"must be a GraphNode, not {type(node).__name__}")
    check_id(node.id, f"{field}.id")
    label = check_label(node.label, f"{field}.label")
    _check_scope(node.scope, f"{field}.scope")
    check_text(node.text, f"{field}.text", max_chars=MAX_NODE_TEXT_CHARS, allow_empty=True)
    properties = check_metadata(node.properties, f"{field}.properties")
    where = f"{field}.properties"
    if label == "Message":
        step = properties.get(STEP)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidInputError(f"{where}.{STEP}", f"a Message needs an integer step >= 0, not {step!r}")
    elif label == "Insight":
        score = properties.get(SCORE)
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise InvalidInputError(f"{where}.{SCORE}", f"an Insight needs a numeric score, not {score!r}")
    elif OUTCOME in properties and properties[OUTCOME] not in OUTCOMES:
        raise InvalidInputError(f"{where}.{OUTCOME}", f"must be one of {sorted(OUTCOMES)}")
    return node


def check_edge(edge: object, field: str) -> GraphEdge:
    """`edge` if it is a well-formed `GraphEdge` (its ends are checked against the graph in `plan_upsert`).

    Raises:
        InvalidInputError: naming the field that is wrong.

    """
    if not isinstance(edge, GraphEdge):
        raise InvalidInputError(field, f"must be a GraphEdge, not {type(edge).__name__}")
    check_id(edge.id, f"{field}.id")
    check_edge_type(edge.type, f"{field}.type")
    check_id(edge.source, f"{field}.source")
    check_id(edge.target, f"{field}.target")
    if edge.source == edge.target:
        raise InvalidInputError(f"{field}.target", f"edge {edge.id!r} joins node {edge.source!r} to itself")
    _check_scope(edge.scope, f"{field}.scope")
    weight = cast(object, edge.weight)
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise InvalidInputError(f"{field}.weight", f"must be a number, not {type(weight).__name__}")
    check_scalar(float(weight), f"{field}.weight")
    check_metadata(edge.properties, f"{field}.properties")
    return edge


def step_of(message: GraphNode) -> int:
    """A message's step (checked to be an integer when it was written)."""
    return int(message.properties[STEP])


def score_of(insight: GraphNode) -> float:
    """An insight's score (checked to be a number when it was written)."""
    return float(insight.properties[SCORE])


def rank_insights(supported: Iterable[tuple[GraphNode, str]], tasks: Sequence[str], limit: int) -> list[RankedInsight]:
    """The `limit` best insights from (insight, supporting task) pairs, ranked as `GraphStore.insights_for` says.

    Most distinct supporting tasks first, then highest score, then the earliest
    supporting task in `tasks` (the caller's order, most relevant first), then id.
    """
    position = {task: n for n, task in reversed(list(enumerate(tasks)))}
    found: dict[str, tuple[GraphNode, set[str]]] = {}
    for insight, task in supported:
        found.setdefault(insight.id, (insight, set()))[1].add(task)
    ranked = [RankedInsight(insight, len(by), min(position[t] for t in by)) for insight, by in found.values()]
    ranked.sort(key=lambda r: (-r.support, -score_of(r.insight), r.first, r.insight.id))
    return ranked[:limit]


def referenced(nodes: Sequence[GraphNode], edges: Sequence[GraphEdge]) -> tuple[set[str], set[str]]:
    """The node ids (written or joined) and edge ids an upsert refers to: what a backend reads before planning."""
    node_ids = {node.id for node in nodes} | {end for edge in edges for end in (edge.source, edge.target)}
    return node_ids, {edge.id for edge in edges}


def plan_upsert(
    nodes: Sequence[GraphNode],
    edges: Sequence[GraphEdge],
    seq: int,
    *,
    known_nodes: Mapping[str, GraphNode],
    known_edges: Mapping[str, GraphEdge],
) -> UpsertPlan:
    """What `upsert(nodes, edges, seq=seq)` writes, given the stored items it refers to (retired ones included).

    Raises:
        InvalidInputError: a malformed item, an id twice, a changed label, type or end, or a wrong pair of labels.
        ScopeViolationError: an id already belongs to another scope.
        DanglingEdgeError: an end is not a current node the edge's scope contains.

    """
    check_seq(seq)
    plan = UpsertPlan()
    written: dict[str, GraphNode] = {}
    for n, node in enumerate(_checked_nodes(nodes)):
        prior = known_nodes.get(node.id)
        if prior is not None and _unchanged_node(prior, node, n, seq):
            continue
        written[node.id] = replace(node, properties=dict(node.properties), seq=seq, retired_seq=None)
        plan.nodes.append(written[node.id])
    for n, edge in enumerate(_checked_edges(edges)):
        prior = known_edges.get(edge.id)
        if prior is not None and _unchanged_edge(prior, edge, n, seq):
            continue
        _check_ends(edge, n, lambda node_id: written.get(node_id) or known_nodes.get(node_id))
        stamped = {"weight": float(edge.weight), "properties": dict(edge.properties), "seq": seq, "retired_seq": None}
        plan.edges.append(replace(edge, **stamped))
    return plan


def plan_retire(
    node_ids: Sequence[str],
    edge_ids: Sequence[str],
    *,
    scope: Scope,
    seq: int,
    known_nodes: Mapping[str, GraphNode],
    known_edges: Mapping[str, GraphEdge],
) -> tuple[list[GraphNode], list[GraphEdge]]:
    """The nodes and edges `retire` closes, stamped with `seq`.

    `known_edges` holds the edges named by `edge_ids` and every current edge
    touching a node of `node_ids`; the second group is retired with its node.
    """
    found = (known_nodes.get(node_id) for node_id in node_ids)
    nodes = [replace(node, retired_seq=seq) for node in found if node is not None and _retirable(node, scope, seq)]
    gone = {node.id for node in nodes}
    named = set(edge_ids)
    edges = [
        replace(edge, retired_seq=seq) for edge in known_edges.values()
        if edge.retired_seq is None
        and (edge.source in gone or edge.target in gone or (edge.id in named and _retirable(edge, scope, seq)))
    ]  # fmt: skip
    return nodes, sorted(edges, key=lambda edge: edge.id)


def check_retire(node_ids: object, edge_ids: object, scope: object, seq: object) -> tuple[list[str], list[str]]:
    """The ids of a `retire` call, checked.

    Raises:
        InvalidInputError: a bad id, scope or seq.

    """
    check_seq(seq)
    _check_scope(scope, "scope")
    return check_ids(node_ids, "node_ids"), check_ids(edge_ids, "edge_ids")


def _check_scope(scope: object, field: str) -> Scope:
    try:
        return ensure_scope(scope)
    except InvalidInputError as exc:
        raise InvalidInputError(field, str(exc).partition(": ")[2]) from None


def _checked_nodes(nodes: object) -> list[GraphNode]:
    checked = [check_node(item, f"nodes[{n}]") for n, item in enumerate(_items(nodes, "nodes"))]
    _no_repeats([node.id for node in checked], "nodes")
    return checked


def _checked_edges(edges: object) -> list[GraphEdge]:
    checked = [check_edge(item, f"edges[{n}]") for n, item in enumerate(_items(edges, "edges"))]
    _no_repeats([edge.id for edge in checked], "edges")
    return checked


def _items(value: object, field: str) -> Sequence[object]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidInputError(field, f"must be a list, not {type(value).__name__}")
    return cast(Sequence[object], value)


def _no_repeats(ids: list[str], field: str) -> None:
    seen: set[str] = set()
    for n, item_id in enumerate(ids):
        if item_id in seen:
            raise InvalidInputError(f"{field}[{n}].id", f"{item_id!r} appears twice in one upsert")
        seen.add(item_id)


def _touched(item: GraphNode | GraphEdge) -> int:
    """The latest `seq` that wrote or retired the item."""
    return max(item.seq, item.retired_seq or 0)


def _unchanged_node(prior: GraphNode, node: GraphNode, n: int, seq: int) -> bool:
    """Whether the stored node is at or past `seq` (so the write is passed over); refuses a change of identity."""
    _same_identity(prior.scope, node.scope, node.id, "node")
    if prior.label != node.label:
        raise InvalidInputError(f"nodes[{n}].label", f"node {node.id!r} is a {prior.label}; labels never change")
    return _touched(prior) >= seq


def _unchanged_edge(prior: GraphEdge, edge: GraphEdge, n: int, seq: int) -> bool:
    """Whether the stored edge is at or past `seq`; refuses a change of type or ends."""
    _same_identity(prior.scope, edge.scope, edge.id, "edge")
    if (prior.type, prior.source, prior.target) != (edge.type, edge.source, edge.target):
        raise InvalidInputError(
            f"edges[{n}]", f"edge {edge.id!r} is {prior.type} {prior.source}->{prior.target}; it never changes"
        )
    return _touched(prior) >= seq


def _same_identity(stored: Scope, given: Scope, item_id: str, what: str) -> None:
    if stored != given:
        raise ScopeViolationError(item_id, f"this {what} id is taken outside scope {given}; choose another id")


def _retirable(item: GraphNode | GraphEdge, scope: Scope, seq: int) -> bool:
    """Whether a retire at `seq` in `scope` closes the item: current, visible, and not written after `seq`."""
    return item.retired_seq is None and item.seq <= seq and scope.contains(item.scope)


def _check_ends(edge: GraphEdge, n: int, node_at: Callable[[str], GraphNode | None]) -> None:
    want = EDGE_ENDPOINTS[edge.type]
    for end, label in zip((edge.source, edge.target), want, strict=True):
        node = node_at(end)
        if node is None or node.retired_seq is not None or not edge.scope.contains(node.scope):
            raise DanglingEdgeError(edge.id, end, edge.scope)
        if node.label != label:
            raise InvalidInputError(
                f"edges[{n}]", f"a {edge.type} edge joins a {want[0]} to a {want[1]}; {end!r} is a {node.label}"
            )


@functools.lru_cache(maxsize=4096)
def stored_scope(user_id: str | None, agent_id: str | None, team_id: str | None, run_id: str | None) -> Scope:
    """A scope read back from a backend (scopes are frozen, so one object serves every item that has it)."""
    return Scope(user_id=user_id, agent_id=agent_id, team_id=team_id, run_id=run_id)


def properties_json(properties: Mapping[str, object]) -> str:
    """Properties as backends store them: one compact JSON object."""
    return json.dumps(dict(properties), ensure_ascii=False, separators=(",", ":"))


def visible(item: GraphNode | GraphEdge, scope: Scope, include_retired: bool = False) -> bool:
    """Whether a read in `scope` sees `item` (a retired one only with `include_retired`)."""
    return (include_retired or item.retired_seq is None) and scope.contains(item.scope)
