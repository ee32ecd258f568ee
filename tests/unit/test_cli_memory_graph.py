"""`hivegraph memory graph`: the memory graph as one self-contained page, and a team's graph as Mermaid.

What the page draws is checked here through the data it embeds; that a browser
draws it is checked in tests/integration/test_memory_graph_page.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from hivegraph.app import open_memory
from hivegraph.config import HivegraphSettings
from hivegraph.memory.gmemory import NewInsight, Step
from hivegraph.memory.types import Scope
from tests.fixtures.settings import embedded_hash_settings
from tests.unit.test_cli_memory import ADA, hivegraph, one_error_line

TEAM = Scope(team_id="crew")
SNEAKY = "find </script><script>document.title='owned'</script> & <b>bold</b>"
SPEC = """
pattern: pipeline
scope: {team_id: crew}
agents:
  - {name: drafter, instructions: "You draft."}
  - {name: checker, instructions: "You check."}
"""


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HivegraphSettings:
    settings = embedded_hash_settings(tmp_path, monkeypatch)
    asyncio.run(_write(settings))
    return settings


async def _write(settings: HivegraphSettings) -> None:
    """Two tasks of the team (one with markup in its text), an insight, and a fact of Ada's outside the team."""
    steps = [Step("planner", "Search the page"), Step("solver", "Finish: Paris")]
    async with open_memory(settings) as memory:
        france = await memory.gmemory.record_task("find the capital of France", steps, scope=TEAM, run_id="r1",
                                                  outcome="success")  # fmt: skip
        await memory.gmemory.record_task(SNEAKY, steps, scope=TEAM, run_id="r2", outcome="failure")
        await memory.gmemory.revise([NewInsight("Search the page first", ("planner",))], task_id=france.task.id,
                                    scope=TEAM)  # fmt: skip
        await memory.add("Ada drinks black tea", scope=ADA)


def page_data(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="hg-data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def labels(data: dict[str, Any]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for node in data["nodes"]:
        counted[node["label"]] = counted.get(node["label"], 0) + 1
    return counted


def test_the_page_shows_the_scopes_graph_and_nothing_else(
    settings: HivegraphSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = hivegraph(capsys, "graph", "--team", "crew", "--out", str(tmp_path / "page.html"))
    assert (ran.status, ran.out) == (0, f"wrote 7 of 7 nodes and 9 edges to {tmp_path / 'page.html'}\n")
    page = (tmp_path / "page.html").read_text()
    data = page_data(page)
    assert labels(data) == {"Task": 2, "Message": 4, "Insight": 1}
    assert {e["type"] for e in data["edges"]} == {"HAS_STEP", "NEXT", "ANSWERS", "SUPPORTS"}
    assert len(data["edges"]) == 9  # per task: two HAS_STEP, one NEXT, one ANSWERS; and one SUPPORTS
    assert all(node["scope"] == {"team_id": "crew"} for node in data["nodes"])
    assert "Ada" not in page and data["truncated"] is False
    [insight] = [n for n in data["nodes"] if n["label"] == "Insight"]
    assert insight["properties"]["score"] == 2


def test_the_page_is_self_contained_and_text_cannot_break_out_of_its_data(
    settings: HivegraphSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hivegraph(capsys, "graph", "--team", "crew", "--out", str(tmp_path / "page.html")).status == 0
    page = (tmp_path / "page.html").read_text()
    assert "default-src 'none'" in page  # the browser refuses every fetch
    assert not re.search(r"\b(src|href)\s*=", page)
    assert not re.search(r"<link\b|@import|url\((?!#)", page)
    assert page.count("<script") == 3  # the data, the libraries, the drawing code
    assert "d3-force" in page  # inlined, not fetched
    assert SNEAKY in [n["text"] for n in page_data(page)["nodes"]]
    assert "<b>bold</b>" not in page and "</script><script>document.title" not in page


def test_limit_and_focus_choose_the_nodes(
    settings: HivegraphSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "page.html")
    ran = hivegraph(capsys, "graph", "--all-scopes", "--limit", "3", "--out", out)
    assert ran.out.startswith("wrote 3 of ")
    data = page_data(Path(out).read_text())
    assert (labels(data), data["truncated"]) == ({"Task": 2, "Insight": 1}, True)
    assert data["counts"]["nodes"] >= 8  # every scope: the whole graph's counts come along

    france = next(n for n in data["nodes"] if n["text"] == "find the capital of France")
    assert hivegraph(capsys, "graph", "--team", "crew", "--focus", france["id"], "--out", out).status == 0
    around = page_data(Path(out).read_text())
    assert labels(around) == {"Task": 1, "Message": 2, "Insight": 1}  # the task, its steps, the insight it supports
    assert france["id"] in {n["id"] for n in around["nodes"]}


def test_graph_options_that_do_not_fit_are_one_error_line(
    settings: HivegraphSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, says in (
        (["graph", "--team", "crew"], "--out"),
        (["graph", "--mermaid", "team.mmd"], "--team-spec"),
        (["graph", "--out", "page.html"], "--all-scopes"),
        (["graph", "--team", "crew", "--out", "page.html", "--limit", "0"], "--limit"),
    ):
        ran = hivegraph(capsys, *argv)
        assert ran.status == 2, argv
        assert says in one_error_line(ran)
    assert not (tmp_path / "page.html").exists()


def test_the_team_graph_is_written_as_mermaid(
    settings: HivegraphSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "team.yaml").write_text(SPEC)
    ran = hivegraph(capsys, "graph", "--team-spec", str(tmp_path / "team.yaml"), "--mermaid", str(tmp_path / "t.mmd"))
    assert ran.status == 0, ran.err
    mermaid = (tmp_path / "t.mmd").read_text()
    assert "graph TD" in mermaid
    assert re.search(r"\bdrafter\b", mermaid) and re.search(r"\bchecker\b", mermaid)
    assert "__start__" in mermaid and "__end__" in mermaid
