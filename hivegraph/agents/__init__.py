"""Agents: team members and the memory manager."""

from hivegraph.agents.base import Agent, ContextBlock, MemoryPolicy, Turn
from hivegraph.agents.manager import ManagerResult, MemoryManager

__all__ = ["Agent", "ContextBlock", "ManagerResult", "MemoryManager", "MemoryPolicy", "Turn"]
