"""The `postgres` checkpointer against a real PostgreSQL server (tests/fixtures/postgres_server.py)."""

from __future__ import annotations

import operator
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from psycopg import sql

from hivegraph.config import HivegraphSettings
from hivegraph.errors import BackendUnavailableError, ConfigError
from hivegraph.graphs.checkpoint import postgres_checkpointer
from hivegraph.registry import CHECKPOINTERS
from tests.fixtures.postgres_server import PostgresServer

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT_S = 1.0  # under libpq's 2 s floor: the bound is hivegraph's own
SLACK_S = 3.0


class Counter(TypedDict):
    count: int
    visited: Annotated[list[str], operator.add]


def first(state: Counter) -> dict[str, Any]:
    return {"count": state["count"] + 1, "visited": ["first"]}


def second(state: Counter) -> dict[str, Any]:
    return {"count": state["count"] + 10, "visited": ["second"]}


def counter_graph(checkpointer: BaseCheckpointSaver[str]) -> CompiledStateGraph[Counter, None, Counter, Counter]:
    """START -> first -> second -> END, stopping before `second` so a run can be resumed."""
    builder = StateGraph(Counter)
    builder.add_node("first", first)  # pyright: ignore[reportUnknownMemberType]
    builder.add_node("second", second)  # pyright: ignore[reportUnknownMemberType]
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    # langgraph leaves `Command`'s type parameter unknown in `compile` and `ainvoke`.
    return builder.compile(checkpointer=checkpointer, interrupt_before=["second"])  # pyright: ignore[reportUnknownMemberType]


def postgres_settings(dsn: str, **postgres: Any) -> HivegraphSettings:
    return HivegraphSettings(checkpointer={"backend": "postgres", "postgres": {"dsn": dsn, **postgres}})  # pyright: ignore[reportArgumentType]


async def test_a_run_is_resumed_through_a_new_pool(postgres_dsn: str) -> None:
    settings = postgres_settings(postgres_dsn, pool_min=1, pool_max=2)
    config: RunnableConfig = {"configurable": {"thread_id": "thread-1"}}
    async with CHECKPOINTERS.load(settings.checkpointer.backend)(settings) as saver:
        interrupted = await counter_graph(saver).ainvoke({"count": 0, "visited": []}, config)  # pyright: ignore[reportUnknownMemberType]
    assert interrupted["count"] == 1 and interrupted["visited"] == ["first"]

    async with postgres_checkpointer(settings) as saver:  # a new saver over a new pool: nothing in memory
        graph = counter_graph(saver)
        paused = await graph.aget_state(config)
        assert paused.values == {"count": 1, "visited": ["first"]}
        assert paused.next == ("second",)
        finished = await graph.ainvoke(None, config)  # pyright: ignore[reportUnknownMemberType]
        assert finished == {"count": 11, "visited": ["first", "second"]}
        assert (await graph.aget_state({"configurable": {"thread_id": "thread-2"}})).values == {}


async def test_setup_is_idempotent_on_an_existing_schema(postgres_dsn: str) -> None:
    settings = postgres_settings(postgres_dsn)
    for _ in range(2):
        async with postgres_checkpointer(settings) as saver:
            assert [item async for item in saver.alist(None)] == []


@pytest.mark.parametrize("port_fixture", ["closed_port", "silent_port"])
async def test_unreachable_server_fails_within_the_connect_timeout(
    request: pytest.FixtureRequest, port_fixture: str
) -> None:
    port: int = request.getfixturevalue(port_fixture)
    dsn = f"postgresql://postgres:hunter2@127.0.0.1:{port}/hivegraph"
    settings = postgres_settings(dsn, connect_timeout_s=CONNECT_TIMEOUT_S)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        async with postgres_checkpointer(settings):
            pytest.fail("connected to a server that is not there")
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + SLACK_S
    assert info.value.backend == "postgres"
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.fixture
def one_connection_role(postgres_server: PostgresServer, postgres_dsn: str) -> Iterator[str]:
    """A DSN to a fresh database as a role that may hold only one connection at a time."""
    role = f"once_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 1").format(sql.Identifier(role)))
    yield f"{postgres_dsn} user={role}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_a_pool_that_cannot_fill_fails_within_the_connect_timeout(one_connection_role: str) -> None:
    settings = postgres_settings(one_connection_role, pool_min=2, connect_timeout_s=CONNECT_TIMEOUT_S)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=r"no connection to 127\.0\.0\.1:\d+ within 1 s"):
        async with postgres_checkpointer(settings):
            pytest.fail("the pool opened with one connection of two")
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + SLACK_S


async def test_invalid_dsn_is_a_config_error_that_does_not_echo_it() -> None:
    settings = postgres_settings("host=db password=hunter2 oops")
    with pytest.raises(ConfigError) as info:
        async with postgres_checkpointer(settings):
            pytest.fail("accepted an invalid DSN")
    assert info.value.field == "checkpointer.postgres.dsn"
    assert "hunter2" not in str(info.value) and "oops" not in str(info.value)
