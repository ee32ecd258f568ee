"""`hivegraph memory show | export | import | stats` in-process, on the embedded profile in tmp_path.

An export imported into a fresh memory gives the same records, versions, history
and graph; importing again (or into the memory it came from) adds nothing; a bad
line is one error naming it, and nothing of the file is applied.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from hivegraph.app import open_memory
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.memory.gmemory import NewInsight, Step
from hivegraph.memory.stats import graph_stats
from hivegraph.memory.types import AddOp, DeleteOp, Scope, Source, UpdateOp
from tests.fixtures.settings import embedded_hash_settings
from tests.unit.test_cli_memory import ADA, BOB, hivegraph, one_error_line
from tests.unit.test_cli_memory import _write as write_tea  # pyright: ignore[reportPrivateUsage]

TEAM = Scope(team_id="crew")
STEPS = [Step("planner", "Search the page of France"), Step("solver", "Finish: Paris")]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HivegraphSettings:
    return embedded_hash_settings(tmp_path, monkeypatch)


def use(monkeypatch: pytest.MonkeyPatch, folder: Path) -> HivegraphSettings:
    """Point the CLI (and the settings returned) at the memory in `folder`."""
    monkeypatch.setenv("HIVEGRAPH_DATA_DIR", str(folder))
    return load_settings()


async def _write_everything(settings: HivegraphSettings) -> None:
    """Records with metadata and provenance, an update, a delete and its undo, two scopes, G-Memory tasks and links."""
    async with open_memory(settings) as memory:
        source = Source(run_id="r0", agent="scribe", step=2, message_ids=["m1"])
        tea = await memory.apply([AddOp(text="Ada drinks green tea", metadata={"topic": "drinks", "n": 1})],
                                 scope=ADA, actor="scribe", source=source)  # fmt: skip
        after = tea.applied[0].after
        assert after is not None
        await memory.apply([UpdateOp(record_id=after.id, text="Ada drinks black tea", metadata={"n": 2})],
                           scope=ADA, actor="manager")  # fmt: skip
        bike = await memory.add("Ada cycles to work", scope=ADA)
        deleted = await memory.apply([DeleteOp(record_id=bike.id)], scope=ADA, actor="manager")
        await memory.undo(deleted.applied[0].op_id, scope=ADA, actor="ada")
        await memory.add("Bob drinks coffee", scope=BOB, kind="episodic")
        france = await memory.gmemory.record_task("find the capital of France", STEPS, scope=TEAM, run_id="r1",
                                                  outcome="success")  # fmt: skip
        await memory.gmemory.record_task("find the capital of Spain", STEPS, scope=TEAM, run_id="r2", outcome="failure")
        await memory.gmemory.revise([NewInsight("Search the page first", ("planner",))], task_id=france.task.id,
                                    scope=TEAM)  # fmt: skip


async def _snapshot(settings: HivegraphSettings) -> dict[str, Any]:
    """Every version (links without their own ids), each record's history, and the graph's counts."""
    async with open_memory(settings) as memory:
        versions = await memory.journal.records(scope=Scope(), all_versions=True)
        records = [v.model_dump(mode="json") for v in versions if v.kind != "link"]
        links = sorted(json.dumps(v.model_dump(mode="json", exclude={"id"}), sort_keys=True)
                       for v in versions if v.kind == "link")  # fmt: skip
        history: dict[str, list[tuple[object, ...]]] = {}
        for record_id in {v.id for v in versions if v.kind != "link"}:
            history[str(record_id)] = [
                (e.op.event, e.actor, e.at, e.scope, e.undo_of is not None, e.before, e.after)
                for e in await memory.journal.entries_for(record_id)
            ]
        assert memory.graph is not None
        graph = await graph_stats(memory.graph, scope=Scope())
    return {"records": records, "links": links, "history": history, "graph": graph}


def _last_seq(settings: HivegraphSettings) -> int:
    async def read() -> int:
        async with open_memory(settings) as memory:
            return await memory.journal.last_seq()

    return asyncio.run(read())


def test_export_then_import_into_a_fresh_memory_gives_the_same_memory(
    settings: HivegraphSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_write_everything(settings))
    exported = hivegraph(capsys, "export", "--all-scopes", str(tmp_path / "memory.jsonl"))
    entries = _last_seq(settings)
    assert (exported.status, exported.out) == (0, f"exported {entries} journal entries to {tmp_path}/memory.jsonl\n")
    assert not (tmp_path / "memory.jsonl.partial").exists()

    fresh = use(monkeypatch, tmp_path / "fresh")
    imported = hivegraph(capsys, "import", str(tmp_path / "memory.jsonl"))
    assert imported.status == 0, imported.err
    assert imported.out == f"imported {tmp_path / 'memory.jsonl'}: {entries} entries added, 0 already present\n"
    original, copy = asyncio.run(_snapshot(settings)), asyncio.run(_snapshot(fresh))
    assert copy["records"] == original["records"]
    assert copy["links"] == original["links"]
    assert copy["history"] == original["history"]
    # the graph is derived again: the same nodes and edges, less the entities only closed versions mentioned
    assert copy["graph"]["edges"] == original["graph"]["edges"]
    assert {k: v for k, v in copy["graph"]["nodes"].items() if k != "Entity"} == {
        "Task": 2, "Message": 4, "Insight": 1, "Memory": 3
    } == {k: v for k, v in original["graph"]["nodes"].items() if k != "Entity"}  # fmt: skip
    assert hivegraph(capsys, "verify").status == 0  # the fresh memory's indexes agree with its journal

    again = hivegraph(capsys, "import", str(tmp_path / "memory.jsonl"))
    assert (again.status, again.out.split(": ")[1]) == (0, f"0 entries added, {entries} already present\n")
    assert _last_seq(fresh) == entries


def test_importing_an_export_into_the_memory_it_came_from_adds_nothing(
    settings: HivegraphSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_write_everything(settings))
    before = _last_seq(settings)
    assert hivegraph(capsys, "export", "--all-scopes", str(tmp_path / "m.jsonl")).status == 0
    ran = hivegraph(capsys, "import", str(tmp_path / "m.jsonl"))
    assert (ran.status, ran.out.split(": ")[1]) == (0, f"0 entries added, {before} already present\n")
    assert _last_seq(settings) == before


def test_an_export_in_a_scope_holds_that_scopes_entries_only(
    settings: HivegraphSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written = asyncio.run(write_tea(settings))
    ran = hivegraph(capsys, "export", "--user", "ada", str(tmp_path / "ada.jsonl"))
    assert (ran.status, ran.out.split(" to ")[0]) == (0, "exported 3 journal entries")
    lines = (tmp_path / "ada.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "hivegraph-journal", "version": 1, "scope": {"user_id": "ada"},
                                    "last_seq": 4}  # fmt: skip
    assert "Bob" not in "".join(lines)
    use(monkeypatch, tmp_path / "fresh")
    assert hivegraph(capsys, "import", str(tmp_path / "ada.jsonl")).status == 0
    assert written.tea.after is not None
    shown = json.loads(hivegraph(capsys, "show", str(written.tea.after.id), "--user", "ada").out)
    assert (shown["text"], shown["version"], shown["versions"]) == ("Ada drinks black tea", 2, 2)


def _bad_lines(path: Path) -> dict[str, tuple[list[str], int]]:
    """Ways to break an export of `write_tea`'s memory (header, tea add and update, bike, bob), and the bad line."""
    lines = path.read_text().splitlines()
    body = json.loads(lines[2])
    del body["actor"]
    return {
        "not JSON": ([*lines[:3], "{not json", *lines[4:]], 4),
        "a missing field": ([*lines[:2], json.dumps(body), *lines[3:]], 3),
        "another format": (['{"format": "something-else"}', *lines[1:]], 1),
        "an update of a record never added": ([lines[0], *lines[2:]], 2),
        "an op twice": ([*lines, lines[3]], 6),
    }


@pytest.mark.parametrize(
    "case",
    ["not JSON", "a missing field", "another format", "an update of a record never added", "an op twice"],
)
def test_a_bad_line_is_one_error_naming_it_and_nothing_is_imported(
    settings: HivegraphSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    asyncio.run(write_tea(settings))
    assert hivegraph(capsys, "export", "--all-scopes", str(tmp_path / "good.jsonl")).status == 0
    lines, bad = _bad_lines(tmp_path / "good.jsonl")[case]
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    fresh = use(monkeypatch, tmp_path / "fresh")
    ran = hivegraph(capsys, "import", str(tmp_path / "bad.jsonl"))
    assert ran.status == 1
    assert f"line {bad}" in one_error_line(ran)
    assert _last_seq(fresh) == 0  # the good lines before the bad one were not applied either


def test_import_refuses_a_file_that_is_missing_or_empty(
    settings: HivegraphSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = hivegraph(capsys, "import", str(tmp_path / "nowhere.jsonl"))
    assert missing.status == 2 and "cannot read" in one_error_line(missing)
    (tmp_path / "empty.jsonl").write_text("\n")
    empty = hivegraph(capsys, "import", str(tmp_path / "empty.jsonl"))
    assert empty.status == 1 and "is empty" in one_error_line(empty)


def test_show_prints_the_current_version_with_its_metadata_inside_the_scope_only(
    settings: HivegraphSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    written = asyncio.run(write_tea(settings))
    assert written.tea.after is not None
    record_id = str(written.tea.after.id)
    shown = json.loads(hivegraph(capsys, "show", record_id, "--user", "ada").out)
    assert shown["text"] == "Ada drinks black tea"
    assert (shown["version"], shown["versions"], shown["current"], shown["scope"]) == (2, 2, True, {"user_id": "ada"})
    assert {"metadata", "source", "created_at", "valid_from", "hash"} <= shown.keys()
    hidden = hivegraph(capsys, "show", record_id, "--user", "bob")
    assert hidden.status == 1 and "ada" not in one_error_line(hidden)
    bad = hivegraph(capsys, "show", "not-a-uuid", "--user", "ada")
    assert bad.status == 2 and "record id" in one_error_line(bad)


def test_stats_count_what_was_written(settings: HivegraphSettings, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(write_tea(settings))
    ran = hivegraph(capsys, "stats", "--all-scopes")
    assert ran.status == 0
    stats = json.loads(ran.out)
    assert stats["records"] == {
        "current": 3, "versions": 4, "closed_versions": 1, "by_kind": {"semantic": 3},
        "by_scope": {"user_id=ada": {"semantic": 2}, "user_id=bob": {"semantic": 1}},
    }  # fmt: skip
    assert stats["journal"] == {"backend": "sqlite", "last_seq": 4, "unreadable": 0}
    assert stats["indexes"]["vector"] == {"persistent": True, "items": 4, "current": 3, "cursor": 4, "behind": 0}
    assert stats["graph"]["nodes"]["Memory"] == 3  # the entity graph: one Memory node per current fact

    ada = json.loads(hivegraph(capsys, "stats", "--user", "ada").out)
    assert (ada["records"]["current"], ada["records"]["versions"]) == (2, 3)
    assert "indexes" not in ada and "totals" not in ada["graph"]  # nothing about other scopes
    assert "bob" not in json.dumps(ada)


def test_stats_and_export_need_a_scope(settings: HivegraphSettings, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["stats"], ["export", "out.jsonl"], ["show", "00000000-0000-0000-0000-000000000001"]):
        ran = hivegraph(capsys, *argv)
        assert ran.status == 2 and "--all-scopes" in one_error_line(ran)
    assert not settings.data_dir.exists()


def test_long_work_shows_a_progress_bar_on_a_terminal_and_nothing_elsewhere(
    settings: HivegraphSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(write_tea(settings))
    path = str(tmp_path / "m.jsonl")
    piped = hivegraph(capsys, "export", "--all-scopes", path)
    assert (piped.status, piped.err) == (0, "")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: standard error is a terminal
    for argv, bar in ((["export", "--all-scopes", path], "exporting"), (["import", path], "importing"),
                      (["rebuild"], "re-deriving the indexes")):  # fmt: skip
        ran = hivegraph(capsys, *argv)
        assert ran.status == 0
        assert bar in ran.err and bar not in ran.out  # results stay on standard output, alone
