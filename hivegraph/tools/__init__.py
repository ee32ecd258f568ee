"""LangChain tools: memory search, remember and forget."""

from hivegraph.tools.memory import memory_tools

__all__ = ["memory_tools"]
