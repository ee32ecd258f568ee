"""What team nodes need at run time, handed to them through LangGraph's `Runtime`."""

from __future__ import annotations

from dataclasses import dataclass

from hivegraph.agents.base import Agent
from hivegraph.agents.manager import MemoryManager
from hivegraph.memory.episodic import EpisodicMemory
from hivegraph.memory.retrieval import HybridRetriever
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import Scope
from hivegraph.models.base import ChatModel
from hivegraph.models.tokens import TokenCounter


@dataclass(frozen=True)
class TeamContext:
    """Backends and identity of one run; nodes read it from `runtime.context`."""

    model: ChatModel
    store: MemoryStore
    retriever: HybridRetriever
    """Hybrid (vector + keyword) retrieval over `store`, used by `recall`."""
    episodic: EpisodicMemory
    manager: MemoryManager | None
    counter: TokenCounter
    scope: Scope
    """Where the team reads and writes memory (a run id is added to what it writes)."""
    run_id: str
    agents: dict[str, Agent]
