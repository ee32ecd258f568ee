"""The fixed vocabulary of the memory graph: node labels, edge types, and what each may carry.

Labels and relationship types are the only names a graph backend ever writes
into a query (Cypher cannot take them as parameters), so they come from this
closed set and nothing else; ids, text, properties and scopes always travel as
query parameters.

The G-Memory tiers map onto it:
    - interaction graph: `Message` nodes of one task, joined by `ANSWERS`
      (the source replies to the target) and `NEXT` (the next step); the task
      owns its messages through `HAS_STEP`;
    - query graph: `Task` nodes joined by `SIMILAR` (weight: the similarity),
      each with its `outcome`;
    - insight graph: `Insight` nodes with a `score`, and `SUPPORTS` or
      `CONTRADICTS` edges from the tasks that bear them out or refute them.

The entity graph (graph-aware retrieval, as HippoRAG does) sits beside them:
`Memory` nodes (episodic and semantic records) with `MENTIONS` edges to the
`Entity` nodes (a normalised name, one per scope) they mention.
"""

from __future__ import annotations

from typing import Literal, get_args

NodeLabel = Literal["Task", "Message", "Insight", "Memory", "Entity"]
"""What a node is."""
EdgeType = Literal["ANSWERS", "NEXT", "HAS_STEP", "SIMILAR", "SUPPORTS", "CONTRADICTS", "MENTIONS"]
"""What an edge says (always directed, source to target)."""
Direction = Literal["out", "in", "both"]
"""Which edges a traversal follows from a node: leaving it, entering it, or either."""
Outcome = Literal["success", "failure"]
"""How a task ended."""

NODE_LABELS: frozenset[str] = frozenset(get_args(NodeLabel))
EDGE_TYPES: frozenset[str] = frozenset(get_args(EdgeType))
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))

EDGE_ENDPOINTS: dict[EdgeType, tuple[NodeLabel, NodeLabel]] = {
    "ANSWERS": ("Message", "Message"),
    "NEXT": ("Message", "Message"),
    "HAS_STEP": ("Task", "Message"),
    "SIMILAR": ("Task", "Task"),
    "SUPPORTS": ("Task", "Insight"),
    "CONTRADICTS": ("Task", "Insight"),
    "MENTIONS": ("Memory", "Entity"),
}
"""The (source label, target label) each edge type joins; no other pair is accepted."""

STEP = "step"
"""Property of a `Message`: its position in the task's trajectory (an integer >= 0, required)."""
SCORE = "score"
"""Property of an `Insight`: how well it has held up (a finite number, required)."""
OUTCOME = "outcome"
"""Property of a `Task`: `success` or `failure` (absent while unknown)."""

MAX_ID_CHARS = 256
MAX_NODE_TEXT_CHARS = 32_000
MAX_HOPS = 4
"""The deepest traversal a read may ask for (variable-length paths grow fast)."""
