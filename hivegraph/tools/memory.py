"""LangChain tools over a `Memory`: search, remember and forget, bound to one scope."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from uuid import UUID

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from hivegraph.memory.facade import Memory
from hivegraph.memory.types import DeleteOp, Scope, Source


class SearchArgs(BaseModel):
    """Arguments of `search_memory`."""

    query: str = Field(max_length=500, description="what to look for")
    k: int = Field(default=5, ge=1, le=20, description="how many memories to return")


class RememberArgs(BaseModel):
    """Arguments of `remember`."""

    text: str = Field(max_length=2000, description="one self-contained fact to keep")


class ForgetArgs(BaseModel):
    """Arguments of `forget`."""

    memory_id: str = Field(description="id of the memory to forget, as returned by search_memory")


def memory_tools(memory: Memory, *, scope: Scope, actor: str = "agent", run_id: str | None = None) -> list[BaseTool]:
    """Tools that let an agent search, add to and forget its memories in `scope` (and nowhere else)."""
    source = Source(run_id=run_id, agent=actor)

    async def search_memory(query: str, k: int = 5) -> str:
        found = await memory.recall(query, scope=scope, k=k)
        return json.dumps([{"id": str(h.record_id), "text": h.text, "score": round(h.score, 3)} for h in found.hits])

    async def remember(text: str) -> str:
        record = await memory.add(text, scope=scope, actor=actor, source=source)
        return json.dumps({"id": str(record.id), "text": record.text})

    async def forget(memory_id: str) -> str:
        try:
            record_id = UUID(memory_id)
        except ValueError:
            return json.dumps({"error": f"{memory_id!r} is not a memory id"})
        result = await memory.apply([DeleteOp(record_id=record_id)], scope=scope, actor=actor, source=source)
        if result.refused:
            return json.dumps({"error": result.refused[0].reason})
        return json.dumps({"forgotten": memory_id})

    return as_tools(search_memory, remember, forget)


def as_tools(
    search_memory: Callable[[str, int], Awaitable[str]],
    remember: Callable[[str], Awaitable[str]],
    forget: Callable[[str], Awaitable[str]],
) -> list[BaseTool]:
    """The three memory tools, named and described for the model, around these coroutines."""
    return [
        StructuredTool.from_function(
            coroutine=search_memory, name="search_memory", args_schema=SearchArgs,
            description="Search your long-term memory; returns memories with ids and scores.",
        ),
        StructuredTool.from_function(
            coroutine=remember, name="remember", args_schema=RememberArgs,
            description="Store one fact in your long-term memory.",
        ),
        StructuredTool.from_function(
            coroutine=forget, name="forget", args_schema=ForgetArgs,
            description="Forget a memory by id (it stays in the history, no longer current).",
        ),
    ]  # fmt: skip
