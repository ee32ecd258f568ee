"""Checkpointers, chosen by `checkpointer.backend`, so team runs can be resumed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from hivegraph.config import HivegraphSettings, PostgresSettings
from hivegraph.errors import BackendUnavailableError
from hivegraph.postgres import connection_kwargs, first_line, postgres_address

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.rows import DictRow
    from psycopg_pool import AsyncConnectionPool


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


@asynccontextmanager
async def postgres_checkpointer(settings: HivegraphSettings) -> AsyncGenerator[BaseCheckpointSaver[str], None]:
    """Checkpoints in PostgreSQL (`checkpointer.postgres`), through a connection pool.

    The checkpoint tables are created (or migrated) once, when the pool opens.

    Raises:
        BackendUnavailableError: the server cannot be reached within `connect_timeout_s`, or the
            tables cannot be created.
        ConfigError: `checkpointer.postgres.dsn` is not a valid connection string.

    """
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with postgres_pool(settings.checkpointer.postgres, field="checkpointer.postgres.dsn") as pool:
        saver = AsyncPostgresSaver(pool)
        try:
            await saver.setup()
        except psycopg.Error as exc:
            where = postgres_address(settings.checkpointer.postgres, field="checkpointer.postgres.dsn")
            raise BackendUnavailableError("postgres", f"{where}: cannot create the checkpoint tables: {exc}") from exc
        yield saver


@asynccontextmanager
async def postgres_pool(
    postgres: PostgresSettings, *, field: str
) -> AsyncGenerator[AsyncConnectionPool[AsyncConnection[DictRow]], None]:
    """An open connection pool to the server of `postgres`, closed on exit.

    Connections are in autocommit mode, return rows as dicts and never prepare statements, as
    `langgraph-checkpoint-postgres` requires. A first connection is made directly, so that an
    unreachable server fails at once with the reason libpq gives; then the pool opens and waits
    for its `pool_min` connections. Both together take at most `connect_timeout_s`.

    Args:
        postgres: The server and pool settings.
        field: The setting that holds the DSN, for messages.

    Raises:
        BackendUnavailableError: the server cannot be reached within `connect_timeout_s`.
        ConfigError: the DSN is not a valid connection string.

    """
    from psycopg import AsyncConnection
    from psycopg.rows import DictRow
    from psycopg_pool import AsyncConnectionPool, PoolTimeout

    where = postgres_address(postgres, field=field)
    conninfo, kwargs = postgres.dsn.get_secret_value(), connection_kwargs(postgres)
    deadline = time.monotonic() + postgres.connect_timeout_s
    await _probe(conninfo, kwargs, where=where, timeout_s=postgres.connect_timeout_s)
    pool = AsyncConnectionPool(
        conninfo,
        connection_class=AsyncConnection[DictRow],
        kwargs=kwargs,
        min_size=postgres.pool_min,
        max_size=postgres.pool_max,
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=max(0.0, deadline - time.monotonic()))
    except PoolTimeout as exc:
        await pool.close()
        raise BackendUnavailableError(
            "postgres", f"no connection to {where} within {postgres.connect_timeout_s:g} s"
        ) from exc
    try:
        yield pool
    finally:
        await pool.close()


async def _probe(conninfo: str, kwargs: dict[str, Any], *, where: str, timeout_s: float) -> None:
    """Open and close one connection, so that a failure says why (libpq's `connect_timeout` is whole seconds, >= 2)."""
    from psycopg import AsyncConnection, OperationalError

    try:
        async with asyncio.timeout(timeout_s):
            await (await AsyncConnection.connect(conninfo, **kwargs)).close()
    except TimeoutError as exc:
        raise BackendUnavailableError("postgres", f"no answer from {where} within {timeout_s:g} s") from exc
    except OperationalError as exc:
        raise BackendUnavailableError("postgres", f"cannot connect to {where}: {first_line(exc)}") from exc
