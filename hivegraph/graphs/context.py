"""What team nodes need at run time, handed to them through LangGraph's `Runtime`."""

from __future__ import annotations

from dataclasses import dataclass

from hivegraph.agents.base import Agent
from hivegraph.agents.manager import MemoryManager
from hivegraph.memory.facade import Memory
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
