"""An embedded Chroma folder is open in one process at a time (real Chroma on tmp_path, real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hivegraph.errors import BackendUnavailableError, MemoryStoreError
from hivegraph.memory.stores.base import IndexItem
from hivegraph.memory.stores.chroma import ChromaSpace, ChromaVectorIndex
from hivegraph.memory.stores.chroma_lock import LOCK_FILE, lock_embedded
from hivegraph.models.testing import HashEmbedder

ITEMS = [IndexItem("a", "apples grow in orchards", {"n": 1}), IndexItem("b", "bicycles have two wheels", {"n": 2})]
IN_USE = r"embedded Chroma store at .* is in use by another process"

# Holds the folder open: writes ITEMS, says "ready", then answers "query" lines until killed.
HOLDER = textwrap.dedent(
    """
    import asyncio, json, sys
    from hivegraph.memory.stores.base import IndexItem
    from hivegraph.memory.stores.chroma import ChromaSpace, ChromaVectorIndex
    from hivegraph.models.testing import HashEmbedder

    async def main(path):
        index = ChromaVectorIndex.persistent_at(path, collection="held", embedder=HashEmbedder())
        await index.upsert([IndexItem("a", "apples grow in orchards"), IndexItem("b", "bicycles have two wheels")])
        print("ready", flush=True)
        for line in sys.stdin:
            hits = await index.query(line.strip(), k=2)
            print(json.dumps([hit.id for hit in hits]), flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)

# Holds the folder open through a space: writes ITEMS in collection "ada", says "ready", waits until killed.
SPACE_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from hivegraph.memory.stores.base import IndexItem
    from hivegraph.memory.stores.chroma import ChromaSpace
    from hivegraph.models.testing import HashEmbedder

    async def main(path):
        space = ChromaSpace.persistent_at(path, prefix="held", embedder=HashEmbedder())
        await space.collection("ada").upsert([IndexItem("a", "apples grow in orchards")])
        print("ready", flush=True)
        sys.stdin.read()

    asyncio.run(main(sys.argv[1]))
    """
)

# Tries to lock the folder once and says what happened.
TRY_LOCK = textwrap.dedent(
    """
    import sys
    from hivegraph.errors import BackendUnavailableError
    from hivegraph.memory.stores.chroma_lock import lock_embedded

    try:
        lock_embedded(sys.argv[1]).release()
    except BackendUnavailableError as exc:
        print("refused:", exc)
    else:
        print("locked")
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process with the embedded store at tmp_path open (and ITEMS written)."""
    command = [sys.executable, "-W", "error", "-c", HOLDER, str(tmp_path)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            yield process
        finally:
            process.kill()


def ask(process: subprocess.Popen[str], question: str) -> list[str]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(question + "\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def try_lock_elsewhere(path: Path) -> str:
    command = [sys.executable, "-W", "error", "-c", TRY_LOCK, str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


async def test_a_second_process_is_refused_at_once_and_the_store_stays_intact(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(BackendUnavailableError, match=IN_USE) as info:
        ChromaVectorIndex.persistent_at(tmp_path, collection="held", embedder=HashEmbedder())

    message = str(info.value)
    assert info.value.backend == "chroma"
    assert f"(pid {holder.pid})" in message
    assert f"chroma run --path {tmp_path.resolve()}" in message
    assert "vector_store.chroma.mode: http" in message
    assert ask(holder, "bicycles have two wheels") == ["b", "a"]  # the holder still reads its store


async def test_a_killed_holder_leaves_the_store_to_the_next_process(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL

    index = ChromaVectorIndex.persistent_at(tmp_path, collection="held", embedder=HashEmbedder())
    try:
        assert [item.id for item in await index.get()] == ["a", "b"]
        assert [hit.id for hit in await index.query("apples grow in orchards", k=1)] == ["a"]
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    finally:
        await index.aclose()


async def test_opens_in_one_process_share_the_lock_until_the_last_closes(tmp_path: Path) -> None:
    first = ChromaVectorIndex.persistent_at(tmp_path / "db", collection="shared", embedder=HashEmbedder())
    second = ChromaVectorIndex.persistent_at(tmp_path / "x" / ".." / "db", collection="shared", embedder=HashEmbedder())
    await first.upsert(ITEMS)
    assert await second.count() == 2

    await first.aclose()
    assert try_lock_elsewhere(tmp_path / "db").startswith("refused:")
    assert await second.count() == 2
    await second.aclose()
    await second.aclose()  # closing twice releases once
    assert try_lock_elsewhere(tmp_path / "db") == "locked"


async def test_a_database_that_fails_to_open_leaves_no_lock_behind(tmp_path: Path) -> None:
    (tmp_path / "chroma.sqlite3").write_bytes(b"not a database" * 100)

    with pytest.raises(MemoryStoreError, match="file is not a database"):
        ChromaVectorIndex.persistent_at(tmp_path, collection="broken", embedder=HashEmbedder())

    assert try_lock_elsewhere(tmp_path) == "locked"


def test_a_released_share_does_not_release_the_others(tmp_path: Path) -> None:
    first, second = lock_embedded(tmp_path), lock_embedded(tmp_path)
    first.release()
    first.release()
    assert try_lock_elsewhere(tmp_path).startswith("refused:")
    second.release()
    assert try_lock_elsewhere(tmp_path) == "locked"


@pytest.fixture
def space_holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process with a `ChromaSpace` open on tmp_path."""
    command = [sys.executable, "-W", "error", "-c", SPACE_HOLDER, str(tmp_path)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            yield process
        finally:
            process.kill()


async def test_a_second_process_cannot_open_a_space_on_a_held_folder(
    tmp_path: Path, space_holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(BackendUnavailableError, match=IN_USE) as info:
        ChromaSpace.persistent_at(tmp_path, prefix="held", embedder=HashEmbedder())
    assert info.value.backend == "chroma"
    assert f"(pid {space_holder.pid})" in str(info.value)
    assert "vector_store.chroma.mode: http" in str(info.value)
    with pytest.raises(BackendUnavailableError, match=IN_USE):
        ChromaVectorIndex.persistent_at(tmp_path, collection="held-hash-64-ada", embedder=HashEmbedder())


async def test_a_space_holds_the_folder_until_it_is_closed(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(BackendUnavailableError, match=IN_USE):
        ChromaSpace.persistent_at(tmp_path, prefix="held", embedder=HashEmbedder())
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)

    space = ChromaSpace.persistent_at(tmp_path, prefix="held", embedder=HashEmbedder())
    await space.collection("ada").upsert(ITEMS)
    assert try_lock_elsewhere(tmp_path).startswith("refused:")
    await space.aclose()
    assert try_lock_elsewhere(tmp_path) == "locked"
