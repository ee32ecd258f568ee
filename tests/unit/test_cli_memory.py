"""`hivegraph memory ...` in-process: explicit scopes, `verify [--repair]`, one `error:` line and no traceback.

The store is the embedded profile (real embedded Chroma and SQLite journal) in
tmp_path with the hash embedder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from hivegraph.app import open_memory
from hivegraph.cli import main
from hivegraph.config import HivegraphSettings
from hivegraph.memory.codec import to_item
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.types import AddOp, MemoryRecord, Scope, UpdateOp
from tests.fixtures.settings import embedded_hash_settings

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
SCOPED = [["search", "tea"], ["history", "00000000-0000-0000-0000-000000000001"], ["undo", "0" * 32]]


@dataclass
class Written:
    """What `_write` journaled."""

    tea: JournalEntry
    """Ada's tea record, updated once: `tea.before` is the closed version, `tea.after` the current one."""
    bike: MemoryRecord
    bob: JournalEntry


@dataclass
class Ran:
    """The outcome of one `hivegraph` run."""

    status: int
    out: str
    err: str


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HivegraphSettings:
    return embedded_hash_settings(tmp_path, monkeypatch)


def hivegraph(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    status = main(["memory", *argv])
    captured = capsys.readouterr()
    return Ran(status, captured.out, captured.err)


def one_error_line(ran: Ran) -> str:
    lines = ran.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), ran.err
    assert "Traceback" not in ran.out + ran.err
    return lines[0]


async def _write(settings: HivegraphSettings) -> Written:
    async with open_memory(settings) as memory:
        tea = (await memory.apply([AddOp(text="Ada drinks green tea")], scope=ADA, actor="t")).applied[0]
        assert tea.after is not None
        update = UpdateOp(record_id=tea.after.id, text="Ada drinks black tea")
        updated = (await memory.apply([update], scope=ADA, actor="t")).applied[0]
        bike = await memory.add("Ada cycles to work", scope=ADA)
        bob = (await memory.apply([AddOp(text="Bob drinks coffee")], scope=BOB, actor="t")).applied[0]
    return Written(tea=updated, bike=bike, bob=bob)


async def _tamper(settings: HivegraphSettings, *, remove: MemoryRecord, revive: MemoryRecord) -> None:
    """Delete one version from the Chroma index and put a closed one back among the current ones there."""
    async with open_memory(settings) as memory:
        vectors, space = memory.store.vectors, memory.store.space
        await space.collection(vectors.partition(remove)).delete([remove.version_id])
        await space.collection(vectors.partition(revive)).upsert([to_item(revive)])


@pytest.fixture
def written(settings: HivegraphSettings) -> Written:
    return asyncio.run(_write(settings))


@pytest.mark.parametrize("argv", SCOPED, ids=lambda argv: argv[0])
def test_scoped_commands_require_a_scope(
    settings: HivegraphSettings, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    ran = hivegraph(capsys, *argv)
    assert ran.status == 2
    line = one_error_line(ran)
    assert "--user" in line and "--all-scopes" in line
    assert not settings.data_dir.exists()  # refused before any store was opened


@pytest.mark.parametrize("argv", SCOPED, ids=lambda argv: argv[0])
def test_all_scopes_with_a_scope_is_refused(
    settings: HivegraphSettings, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    ran = hivegraph(capsys, *argv, "--all-scopes", "--team", "t1")
    assert ran.status == 2
    assert "--all-scopes" in one_error_line(ran)


def test_search_reads_the_scope_given_or_every_scope(written: Written, capsys: pytest.CaptureFixture[str]) -> None:
    ran = hivegraph(capsys, "search", "drinks", "--user", "ada", "-k", "10")
    assert ran.status == 0
    assert {json.loads(line)["scope"]["user_id"] for line in ran.out.splitlines()} == {"ada"}
    ran = hivegraph(capsys, "search", "drinks", "--all-scopes", "-k", "10")
    assert ran.status == 0
    assert {json.loads(line)["scope"]["user_id"] for line in ran.out.splitlines()} == {"ada", "bob"}


def test_another_scopes_record_is_refused_without_naming_its_owner(
    written: Written, capsys: pytest.CaptureFixture[str]
) -> None:
    assert written.bob.after is not None
    history = hivegraph(capsys, "history", str(written.bob.after.id), "--user", "alice")
    assert history.status == 0 and history.out == ""
    undo = hivegraph(capsys, "undo", str(written.bob.op_id), "--user", "alice")
    assert undo.status == 1
    one_error_line(undo)
    for ran in (history, undo):
        assert "bob" not in (ran.out + ran.err).lower()
    assert hivegraph(capsys, "history", str(written.bob.after.id), "--all-scopes").out.count("Bob drinks") == 1


def test_a_scope_value_that_cannot_be_stored_is_one_error_line(
    settings: HivegraphSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = hivegraph(capsys, "search", "tea", "--user", "\udc80")
    assert ran.status == 2
    assert "scope.user_id" in one_error_line(ran)


def test_verify_finds_repairs_and_then_is_clean(
    settings: HivegraphSettings, written: Written, capsys: pytest.CaptureFixture[str]
) -> None:
    assert written.tea.before is not None
    asyncio.run(_tamper(settings, remove=written.bike, revive=written.tea.before))

    found = hivegraph(capsys, "verify")
    assert found.status == 1
    assert f"vector: missing {written.bike.version_id}" in found.out
    assert f"vector: stale {written.tea.before.version_id}" in found.out
    assert found.out.splitlines()[-1] == "verify: 2 divergences, 0 unreadable entries"

    repaired = hivegraph(capsys, "verify", "--repair")
    assert repaired.status == 1  # the status says what was found, even when it was repaired
    assert f"vector: missing {written.bike.version_id}" in repaired.out
    assert "repaired the 2 divergences" in repaired.out.splitlines()[-1]

    clean = hivegraph(capsys, "verify")
    assert (clean.status, clean.out) == (0, "verify: clean\n")
    ran = hivegraph(capsys, "search", "cycles to work", "--user", "ada", "-k", "1")
    assert json.loads(ran.out)["text"] == "Ada cycles to work"


def test_rebuild_replaces_the_index_without_catching_it_up_first(
    settings: HivegraphSettings, written: Written, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert written.tea.before is not None
    asyncio.run(_tamper(settings, remove=written.bike, revive=written.tea.before))
    with caplog.at_level(logging.WARNING, logger="hivegraph.memory.store"):
        ran = hivegraph(capsys, "rebuild")
    assert (ran.status, ran.out) == (0, "re-derived the indexes from 4 journal entries\n")
    assert not caplog.records  # opening the store first would have found the tampered index and repaired it
    assert hivegraph(capsys, "verify").status == 0


def test_verify_reports_an_unreadable_journal_entry(
    settings: HivegraphSettings, written: Written, capsys: pytest.CaptureFixture[str]
) -> None:
    _break_entry(settings, written.bob.seq)
    ran = hivegraph(capsys, "verify")
    assert ran.status == 1
    assert f"journal: unreadable op {written.bob.seq}" in ran.out
    assert ran.out.splitlines()[-1].startswith("verify: 0 divergences, 1 unreadable entries")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["search", "tea", "--user", "ada"], id="search"),
        pytest.param(["history", "{bob}", "--all-scopes"], id="history"),
        pytest.param(
            ["undo", "{op}", "--all-scopes"],
            id="undo",
        ),
    ],
)
def test_a_journal_with_a_bad_entry_prints_no_traceback(
    settings: HivegraphSettings, written: Written, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert written.bob.after is not None
    _break_entry(settings, written.bob.seq)
    ids = {"bob": str(written.bob.after.id), "op": str(written.bob.op_id)}
    ran = hivegraph(capsys, *[arg.format(**ids) for arg in argv])
    assert "Traceback" not in ran.out + ran.err
    if ran.status != 0:
        one_error_line(ran)


def test_a_journal_that_is_not_a_database_is_one_error_line(
    settings: HivegraphSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.data_dir.mkdir()
    (settings.data_dir / "journal.sqlite").write_bytes(b"not a database " * 100)
    for argv in (["search", "tea", "--user", "ada"], ["verify"], ["rebuild"]):
        ran = hivegraph(capsys, *argv)
        assert ran.status == 1, argv
        one_error_line(ran)


def _break_entry(settings: HivegraphSettings, seq: int) -> None:
    """Overwrite the stored body of journal entry `seq` with something that does not parse."""
    with sqlite3.connect(settings.data_dir / "journal.sqlite") as conn:
        assert conn.execute("UPDATE hg_ops SET body = '{\"broken\": 1}' WHERE seq = ?", (seq,)).rowcount == 1
    conn.close()
