"""hivegraph: multi-agent teams on LangGraph with pluggable long-term memory.

The names below are imported lazily, so `import hivegraph` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "hivegraph.agents.base",
    "MemoryPolicy": "hivegraph.agents.base",
    "MemoryManager": "hivegraph.agents.manager",
    "HivegraphSettings": "hivegraph.config",
    "load_settings": "hivegraph.config",
    "Memory": "hivegraph.memory.facade",
    "MemoryHit": "hivegraph.memory.hits",
    "MemoryStore": "hivegraph.memory.store",
    "MemoryRecord": "hivegraph.memory.types",
    "Scope": "hivegraph.memory.types",
    "open_hivegraph": "hivegraph.app",
    "open_memory": "hivegraph.memory.facade",
}

if TYPE_CHECKING:
    from hivegraph.agents.base import Agent, MemoryPolicy
    from hivegraph.agents.manager import MemoryManager
    from hivegraph.app import open_hivegraph
    from hivegraph.config import HivegraphSettings, load_settings
    from hivegraph.memory.facade import Memory, open_memory
    from hivegraph.memory.hits import MemoryHit
    from hivegraph.memory.store import MemoryStore
    from hivegraph.memory.types import MemoryRecord, Scope

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "Agent", "MemoryPolicy", "MemoryManager", "HivegraphSettings", "load_settings", "Memory", "MemoryHit",
    "MemoryStore", "MemoryRecord", "Scope", "open_hivegraph", "open_memory", "__version__",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hivegraph' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
