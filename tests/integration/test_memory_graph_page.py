"""The memory graph page in a real browser: headless Chromium (Debian's `chromium`) runs its scripts offline.

A SQLite journal and graph in one file hold three G-Memory tasks with their
messages, two insights and two facts (the entity graph); the page drawn from that
graph is opened from disk. The DOM after the scripts ran must hold one SVG element
per node and per edge with the expected labels, and the screenshot must show the
node colours in the drawing area (not a blank page, not just the legend).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from uuid import UUID

import pytest

from hivegraph.memory.entities import WordEntities
from hivegraph.memory.facade import Memory, MemoryOptions
from hivegraph.memory.gmemory import GMemorySettings, NewInsight, Step
from hivegraph.memory.graph import SqliteGraph
from hivegraph.memory.graph.page import GraphView, graph_view, render_page
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import Scope
from hivegraph.models.testing import HashEmbedder

pytestmark = pytest.mark.integration

TEAM = Scope(team_id="crew")
WINDOW = (1200, 800)
SIDE_PANEL, HEADER = 320, 44
"""The page's fixed side panel (right) and header (top), in CSS pixels: the drawing is the rest."""
COLOURS = {"Task": (0x4E, 0x79, 0xA7), "Insight": (0xF2, 0x8E, 0x2B), "Message": (0x59, 0xA1, 0x4F)}


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("headless Chromium is missing: `apt-get install -y chromium` (scripts/test.sh installs it)")
    return found


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[Memory]:
    file = tmp_path / "memory.sqlite"
    projection = GraphProjection(SqliteGraph(file), entities=WordEntities())
    options = MemoryOptions(gmemory=GMemorySettings(similarity_threshold=0.3))
    opened = await Memory.of(
        InMemorySpace(HashEmbedder()), journal=SqliteJournal(file), projections=[projection], options=options
    ).open()
    yield opened
    await opened.aclose()


async def _fill(memory: Memory) -> None:
    gmemory = memory.gmemory
    tasks: list[UUID] = []
    for n, country in enumerate(["France", "Spain", "Peru"]):
        steps = [Step("planner", f"Search the page of {country}"), Step("searcher", f"The page of {country} says"),
                 Step("solver", f"Finish: the capital of {country}")]  # fmt: skip
        outcome = "failure" if country == "Peru" else "success"
        recorded = await gmemory.record_task(f"find the capital city of {country}", steps, scope=TEAM,
                                             run_id=f"r{n}", outcome=outcome)  # fmt: skip
        tasks.append(recorded.task.id)
    await gmemory.revise([NewInsight("Search the encyclopedia page first", ("planner",))], task_id=tasks[0],
                         scope=TEAM)  # fmt: skip
    await gmemory.revise([NewInsight("Check the answer twice", ("solver",))], task_id=tasks[1], scope=TEAM)
    await memory.add("The crew meets on Mondays in Lisbon", scope=TEAM)
    await memory.add("Lisbon trips need a visa check", scope=TEAM, kind="episodic")


class Drawn(HTMLParser):
    """The SVG elements the page's script made, read from Chromium's DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[dict[str, str | None]] = []
        self.edges: list[dict[str, str | None]] = []
        self.captions: list[str] = []
        self.ready = False
        self._in_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        classes = (named.get("class") or "").split()
        if tag == "g" and "hg-node" in classes:
            self.nodes.append(named)
        elif tag == "line" and "hg-edge" in classes:
            self.edges.append(named)
        elif tag == "html":
            self.ready = named.get("data-hg-ready") == "true"
        self._in_text = tag == "text"

    def handle_endtag(self, tag: str) -> None:
        if tag == "text":
            self._in_text = False

    def handle_data(self, data: str) -> None:
        if self._in_text and self.nodes:
            self.captions.append(data)


def browse(chromium: str, page: Path, profile: Path, *args: str) -> bytes:
    """Run headless Chromium on `page` (a file, no network) with `args`; returns its standard output."""
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=10000", *args, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout


def decode_png(data: bytes) -> tuple[int, int, int, bytearray]:
    """(width, height, channels, pixels) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(bytes(idat)), width * channels
    pixels, previous = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels += line
        previous = line
    return width, height, channels, pixels


def drawing_colours(png: bytes) -> Counter[tuple[int, int, int]]:
    """How many pixels of each colour the drawing area of the screenshot holds (header and side panel left out)."""
    width, height, channels, pixels = decode_png(png)
    scale = width / WINDOW[0]
    right, top = int((WINDOW[0] - SIDE_PANEL) * scale), int(HEADER * scale) + 2
    counted: Counter[tuple[int, int, int]] = Counter()
    for y in range(top, height):
        row = y * width * channels
        for x in range(0, right):
            at = row + x * channels
            counted[(pixels[at], pixels[at + 1], pixels[at + 2])] += 1
    return counted


async def test_chromium_draws_every_node_and_edge_of_the_memory_graph(
    memory: Memory, tmp_path: Path, chromium: str
) -> None:
    await _fill(memory)
    assert memory.graph is not None
    view: GraphView = await graph_view(memory.graph, scope=TEAM)
    expected = Counter(node.label for node in view.nodes)
    assert {k: expected[k] for k in ("Task", "Message", "Insight", "Memory")} == {
        "Task": 3, "Message": 9, "Insight": 2, "Memory": 2
    }  # fmt: skip
    assert expected["Entity"] > 0 and view.edges
    page = tmp_path / "graph.html"
    page.write_text(render_page(view), encoding="utf-8")

    drawn = Drawn()
    drawn.feed(browse(chromium, page, tmp_path / "profile", "--dump-dom").decode())
    assert drawn.ready, "the page's script did not finish"
    assert Counter(node["data-label"] for node in drawn.nodes) == expected
    assert {node["data-id"] for node in drawn.nodes} == {node.id for node in view.nodes}
    assert Counter(edge["data-type"] for edge in drawn.edges) == Counter(edge.type for edge in view.edges)
    assert all((node.get("transform") or "").startswith("translate(") for node in drawn.nodes)  # laid out
    assert {"find the capital city of France \u2713", "find the capital city of Peru \u2717"} <= set(drawn.captions)
    assert any(caption.startswith("\u26052 Search the encyclopedia") for caption in drawn.captions)

    shot = tmp_path / "graph.png"
    browse(chromium, page, tmp_path / "profile", f"--screenshot={shot}")
    colours = drawing_colours(shot.read_bytes())
    background = colours[(255, 255, 255)]
    assert sum(colours.values()) - background > 0.005 * sum(colours.values()), "the drawing area is blank"
    for label, colour in COLOURS.items():
        assert colours[colour] >= 20 * expected[label], f"too few {label} pixels in the drawing: {colours[colour]}"
