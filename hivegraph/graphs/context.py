"""What team nodes need at run time, handed to them through LangGraph's `Runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hivegraph.agents.base import Agent
from hivegraph.agents.manager import MemoryManager
from hivegraph.agents.reflector import Reflector
from hivegraph.memory.facade import Memory
from hivegraph.memory.gmemory import Summarize
from hivegraph.memory.types import Scope
from hivegraph.models.base import ChatModel


@dataclass(frozen=True)
class TeamContext:
    """The model, the memory and the identity of one run; nodes read it from `runtime.context`."""

    model: ChatModel
    memory: Memory
    """Journal, projections, retriever and memory kinds (one object)."""
    manager: MemoryManager | None
    scope: Scope
    """Where the team reads and writes memory (a run id is added to what it writes)."""
    run_id: str
    agents: dict[str, Agent]
    gmemory: bool = False
    """Whether the team recalls from and records into G-Memory (the memory must project a graph)."""
    reflector: Reflector | None = None
    """Draws insights after a task whose outcome is known (None: outcomes and rewards only)."""
    facts_from: Literal["conversation", "user"] = "conversation"
    """What the memory manager extracts facts from: the whole run, or only the user's task."""
    summarize: Summarize | None = None
    """Writes trajectories for recall instead of the rule-based condensation (capable models)."""
