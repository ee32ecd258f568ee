"""LangGraph's own server (`langgraph dev`) serves the example teams with hivegraph memory and checkpoints.

The server runs offline on loopback with its three phone-home switches off; the
model is the fake OpenAI-compatible server, so the test checks the wiring: the
graphs of `langgraph.json`, hivegraph's store and checkpointer factories, and
runs driven through `langgraph-sdk`.

The server runs with its blocking-call detector on (no `--allow-blocking`): a
call of hivegraph's that blocks the event loop fails the run.
"""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from hivegraph.config import load_settings
from hivegraph.memory.facade import open_memory
from hivegraph.memory.types import Scope
from tests.unit.fake_openai_server import FakeOpenAIServer, Reply, completion, serve

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
OFFLINE = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}
TEAM_SCOPE = Scope(user_id="ada", team_id="quickstart")
TEAM_NAMESPACE = ["users", "ada", "teams", "quickstart"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake_model() -> Iterator[FakeOpenAIServer]:
    with serve() as server:
        server.default = Reply(completion('{"facts": []}'))
        yield server


@pytest.fixture
def config_file(tmp_path: Path, fake_model: FakeOpenAIServer) -> Path:
    config = {
        "data_dir": str(tmp_path / "data"),
        # The test reads the memory while the server holds it: embedded Chroma is for one process at a
        # time, so vectors stay in memory here (each process rebuilds them from the shared journal).
        "vector_store": {"backend": "inmemory"},
        "embedder": {"backend": "hash"},
        "model": {"base_url": fake_model.url, "model": "fake-model", "max_retries": 0},
    }
    path = tmp_path / "hivegraph.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
async def server(config_file: Path, tmp_path: Path) -> AsyncIterator[str]:
    # The server keeps its own files in `.langgraph_api` under its working directory: a folder of the
    # test's that holds the repository's langgraph.json and its examples, as the repository root does.
    home = tmp_path / "server"
    home.mkdir()
    shutil.copy(ROOT / "langgraph.json", home / "langgraph.json")
    (home / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    port, log = free_port(), (tmp_path / "langgraph-dev.log").open("w")
    command = [str(Path(sys.executable).parent / "langgraph"), "dev", "--host", "127.0.0.1", "--port", str(port),
               "--no-browser", "--no-reload", "--n-jobs-per-worker", "2"]  # fmt: skip
    env = os.environ | OFFLINE | {"HIVEGRAPH_CONFIG": str(config_file)}
    proc = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(url, proc, tmp_path / "langgraph-dev.log")
        yield url
    finally:
        stop(proc)
        log.close()


async def wait_until_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            try:
                if (await http.get(f"{url}/ok", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise AssertionError(f"langgraph dev did not answer within {timeout_s} s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def stream_run(client: LangGraphClient, thread_id: str, graph: str, task: str) -> list[str]:
    """The nodes whose updates the run streamed, in order."""
    nodes: list[str] = []
    payload: dict[str, Any] = {"task": task, "turns": []}
    async for part in client.runs.stream(thread_id, graph, input=payload, stream_mode="updates"):
        data = cast(dict[str, Any], part.data)  # pyright: ignore[reportUnknownMemberType] - the SDK's part is generic
        assert part.event != "error", data
        if part.event == "updates":
            nodes += list(data)
    return nodes


async def test_langgraph_dev_serves_teams_with_hivegraph_memory(
    server: str, config_file: Path, fake_model: FakeOpenAIServer
) -> None:
    async with get_client(url=server) as client:
        team_run, assistant_run, written = await run_teams(client)
        assert fake_model.requests  # every model call went to the fake server
    async with open_memory(load_settings(config_file)) as memory:  # the server is still up: the journal is shared
        team = await memory.journal.records(scope=TEAM_SCOPE)
        assistant = await memory.journal.records(scope=Scope(user_id="maya", team_id="assistant"))
    assert written <= {str(r.id) for r in team}
    episodes = [r for r in team if r.kind == "episodic"]
    assert {r.source.run_id for r in episodes} == {team_run}
    assert any(r.text.startswith("user: Plan a short team dinner") for r in episodes)
    assert {r.source.run_id for r in assistant if r.kind == "episodic"} == {assistant_run}


async def run_teams(client: LangGraphClient) -> tuple[str, str, set[str]]:
    """Runs both example graphs at once; returns their thread ids and the record ids the quickstart team wrote."""
    fact = {"text": "Ada is allergic to peanuts"}
    await client.store.put_item([*TEAM_NAMESPACE, "facts"], key="diet", value=fact)
    team_thread, assistant_thread = await client.threads.create(), await client.threads.create()
    task = "Plan a short team dinner for my lab; remember my peanut allergy."
    nodes, _ = await asyncio.gather(  # two graphs at once: the server runs two jobs in parallel
        stream_run(client, team_thread["thread_id"], "quickstart", task),
        stream_run(client, assistant_thread["thread_id"], "personal_assistant", "I moved to Porto."),
    )
    assert nodes == ["planner", "writer", "consolidate"]

    state = await client.threads.get_state(team_thread["thread_id"])
    values = cast(dict[str, Any], state["values"])
    assert [t["agent"] for t in values["turns"]] == ["planner", "writer"]
    assert all(t["content"] == '{"facts": []}' for t in values["turns"])  # the fake model's reply
    assert any("peanuts" in m["text"] for m in values["recalled"]["planner"])  # the item put through /store
    assert "episodic" in {w["kind"] for w in values["written"]}

    items = await client.store.search_items(TEAM_NAMESPACE, query="peanut allergy")
    assert [(i["key"], i["value"]) for i in items["items"]] == [("diet", fact)]
    written = {str(w["record_id"]) for w in values["written"]}
    return team_thread["thread_id"], assistant_thread["thread_id"], written
