"""Checkpointers, chosen by `checkpointer.backend`, so team runs can be resumed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from hivegraph.config import HivegraphSettings


@asynccontextmanager
async def sqlite_checkpointer(settings: HivegraphSettings) -> AsyncGenerator[BaseCheckpointSaver[str], None]:
    """Checkpoints in a SQLite file (`checkpointer.path`, default `<data_dir>/checkpoints.sqlite`)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = settings.resolve(settings.checkpointer.path, "checkpoints.sqlite")
    path.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        yield saver


@asynccontextmanager
async def memory_checkpointer(settings: HivegraphSettings) -> AsyncGenerator[BaseCheckpointSaver[str], None]:
    """Checkpoints kept in this process only."""
    del settings
    yield InMemorySaver()
