"""Chroma failures: a frozen server times out instead of hanging, and a dropped collection starts again empty."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hivegraph.config import ChromaSettings, EmbedderSettings, HivegraphSettings, VectorStoreSettings
from hivegraph.errors import BackendUnavailableError
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import IndexItem
from hivegraph.memory.stores.chroma import ChromaSpace, ChromaVectorIndex
from hivegraph.memory.types import Scope
from hivegraph.models.testing import HashEmbedder
from tests.fixtures.chroma_server import ChromaServer, free_port, running_chroma_process

pytestmark = pytest.mark.integration

ITEMS = [IndexItem("a", "apples grow in orchards", {"n": 1}), IndexItem("b", "bicycles have two wheels", {"n": 2})]
TIMEOUT_S = 1.0
GUARD_S = 4 * TIMEOUT_S  # a call that outlives this hangs: the test fails instead of waiting with it


@contextmanager
def stopped(pid: int) -> Generator[None]:
    """The process `pid` frozen by SIGSTOP (its socket still accepts connections), resumed on exit."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def fails_in_time(call: Callable[[], Awaitable[Any]], address: str) -> None:
    """`call` raises BackendUnavailableError saying `address` timed out, within a couple of timeouts."""
    start = time.monotonic()
    async with asyncio.timeout(GUARD_S):
        with pytest.raises(BackendUnavailableError, match=f"{address} timed out") as info:
            await call()
    assert time.monotonic() - start < 2.5 * TIMEOUT_S
    assert info.value.backend == "chroma"


def from_settings(server: ChromaServer) -> ChromaVectorIndex:
    chroma = ChromaSettings(mode="http", host=server.host, port=server.port, timeout_s=TIMEOUT_S)
    settings = HivegraphSettings(
        embedder=EmbedderSettings(backend="hash"), vector_store=VectorStoreSettings(chroma=chroma)
    )
    return ChromaVectorIndex.from_settings(settings)


async def test_a_frozen_server_times_out_and_works_again_once_resumed(tmp_path: Path) -> None:
    with running_chroma_process(tmp_path, free_port()) as (server, process):
        address = f"{server.host}:{server.port}".replace(".", r"\.")
        index = from_settings(server)
        await index.upsert(ITEMS[:1])
        with stopped(process.pid):
            await fails_in_time(lambda: index.upsert(ITEMS[1:]), address)
            await fails_in_time(lambda: index.query("apples", k=1), address)
            await fails_in_time(lambda: asyncio.to_thread(open_http, server, "frozen-new"), address)

        await index.upsert(ITEMS[1:])
        assert [hit.id for hit in await index.query("bicycles have two wheels", k=1)] == ["b"]
        assert await index.count() == 2
        await index.aclose()


def open_http(server: ChromaServer, collection: str) -> ChromaVectorIndex:
    return ChromaVectorIndex.http(
        server.host, server.port, collection=collection, embedder=HashEmbedder(), timeout_s=TIMEOUT_S
    )


async def test_a_frozen_server_times_out_a_client_given_a_timeout(tmp_path: Path) -> None:
    with running_chroma_process(tmp_path, free_port()) as (server, process):
        address = f"{server.host}:{server.port}".replace(".", r"\.")
        index = open_http(server, "frozen")
        await index.upsert(ITEMS)
        with stopped(process.pid):
            await fails_in_time(lambda: index.get(["a"]), address)
        assert [item.id for item in await index.get(["a"])] == ["a"]
        await index.aclose()


def test_the_timeout_is_positive() -> None:
    assert ChromaSettings().timeout_s == 10.0
    with pytest.raises(ValidationError, match="timeout_s"):
        ChromaSettings(timeout_s=0)


@pytest.fixture(params=["embedded", "server"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChromaVectorIndex]:
    """An index with ITEMS written, embedded on tmp_path or on the session's Chroma server."""
    if request.param == "embedded":
        opened = ChromaVectorIndex.persistent_at(tmp_path, collection="dropped", embedder=HashEmbedder())
    else:
        server: ChromaServer = request.getfixturevalue("chroma_server")
        collection: str = request.getfixturevalue("chroma_collection")
        opened = ChromaVectorIndex.http(server.host, server.port, collection=collection, embedder=HashEmbedder())
    await opened.upsert(ITEMS)
    yield opened
    await opened.aclose()


async def test_a_dropped_index_is_empty_and_usable(index: ChromaVectorIndex) -> None:
    await index.drop()

    assert await index.count() == 0
    assert await index.get() == []
    assert await index.query("apples", k=2) == []
    await index.upsert(ITEMS[1:])
    assert [hit.id for hit in await index.query("bicycles have two wheels", k=2)] == ["b"]


async def test_dropping_a_missing_collection_is_not_an_error(index: ChromaVectorIndex) -> None:
    await index.drop()
    await index.drop()  # nothing cached, nothing on disk: still fine

    assert await index.count() == 0


async def test_a_write_during_an_outage_is_acknowledged_once_and_read_after_it(tmp_path: Path) -> None:
    ada = Scope(user_id="ada")
    with running_chroma_process(tmp_path / "server", free_port()) as (server, process):
        space = ChromaSpace.http(
            server.host, server.port, prefix="outage", embedder=HashEmbedder(), timeout_s=TIMEOUT_S
        )
        store = await MemoryStore(space, journal=SqliteJournal(tmp_path / "j.sqlite")).open()
        await store.add("Ada likes tea", scope=ada)
        with stopped(process.pid):
            async with asyncio.timeout(GUARD_S * 3):
                record = await store.add("Ada moved to Porto", scope=ada)  # journaled: acknowledged, no error
            assert store.lagging is not None and "timed out" in store.lagging
        found = await store.search("Ada moved to Porto", scope=ada, k=5)  # the server is back: the index catches up
        assert found[0].record_id == record.id and store.lagging is None
        assert await store.vectors.counts() == (2, 2)  # one copy of each: nothing made the caller retry
        assert (await store.verify()).clean
        await store.aclose()
