"""`hivegraph memory rebuild` on real embedded Chroma: a folder that cannot be opened is moved aside, never deleted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hivegraph.app import open_memory
from hivegraph.cli import main
from hivegraph.config import HivegraphSettings
from hivegraph.memory.types import Scope
from tests.fixtures.settings import embedded_hash_settings

pytestmark = pytest.mark.integration

ADA = Scope(user_id="ada")
FACTS = ["Ada drinks green tea", "Ada cycles to work"]
GARBAGE = b"this is not an SQLite database " * 64

# Holds the lock of an embedded Chroma folder, as any process that has it open does, until stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from hivegraph.memory.stores.chroma_lock import lock_embedded

    lock = lock_embedded(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    lock.release()
    """
)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HivegraphSettings:
    settings = embedded_hash_settings(tmp_path, monkeypatch)
    asyncio.run(_write(settings))
    return settings


async def _write(settings: HivegraphSettings) -> None:
    async with open_memory(settings) as memory:
        for fact in FACTS:
            await memory.add(fact, scope=ADA)


@pytest.fixture
def holder(settings: HivegraphSettings) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the embedded Chroma folder."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(settings.data_dir / "chroma")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    yield process
    process.communicate(timeout=30)


def test_rebuild_moves_a_chroma_folder_that_cannot_be_opened_aside(
    settings: HivegraphSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    chroma = settings.data_dir / "chroma"
    (chroma / "chroma.sqlite3").write_bytes(GARBAGE)

    assert main(["memory", "rebuild"]) == 0
    out = capsys.readouterr().out
    [aside] = [p for p in settings.data_dir.iterdir() if p.name.startswith("chroma.broken-")]
    assert f"moved it to {aside}" in out
    assert (aside / "chroma.sqlite3").read_bytes() == GARBAGE  # moved, not deleted
    assert f"re-derived the indexes from {len(FACTS)} journal entries" in out

    assert main(["memory", "search", "tea and cycling", "--user", "ada", "-k", "5"]) == 0
    found = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert sorted(found) == sorted(FACTS)
    assert main(["memory", "verify"]) == 0


def test_rebuild_of_a_store_another_process_holds_is_refused_not_moved(
    settings: HivegraphSettings, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["memory", "rebuild"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("error: chroma: ") and "in use by another process" in line
    assert sorted(p.name for p in settings.data_dir.iterdir() if p.name.startswith("chroma")) == ["chroma"]
