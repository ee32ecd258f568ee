"""The real vLLM server: it answers, a broken model fails fast with its log, stop ends it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from hivegraph.errors import ModelServerError
from hivegraph.models.server import ModelServer, ServerHandle
from tests.fixtures.model_server import free_port, prepared_model_server
from tests.fixtures.processes import process_gone

pytestmark = pytest.mark.integration


def _group_members(pgid: int) -> list[int]:
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split() if entry.name.isdigit() else []
        except OSError:
            continue
        if fields and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def test_server_lists_the_served_model(model_server: ServerHandle) -> None:
    reply = httpx.get(f"{model_server.url}/models", timeout=10)
    assert reply.status_code == 200
    assert [m["id"] for m in reply.json()["data"]] == [model_server.model]
    assert model_server.url.endswith("/v1")


def test_server_answers_a_chat_request(model_server: ServerHandle) -> None:
    body = {
        "model": model_server.model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "temperature": 0,
    }
    reply = httpx.post(f"{model_server.url}/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200
    data = reply.json()
    assert data["choices"][0]["message"]["content"]
    assert 0 < data["usage"]["completion_tokens"] <= 8


def test_a_broken_model_folder_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    real = prepared_model_server()
    home = tmp_path / "home"
    (home / "models" / "smollm2").mkdir(parents=True)
    (home / "venv").symlink_to(real.home / "venv", target_is_directory=True)
    shutil.copy(real.prepared_path, home / "prepared.json")
    config = {"model_type": "no-such-architecture", "architectures": ["NoSuchModel"]}
    (home / "models" / "smollm2" / "config.json").write_text(json.dumps(config))
    server = ModelServer(real.settings.model_copy(update={"home": home, "start_timeout_s": 400.0}))

    started = time.monotonic()
    with pytest.raises(ModelServerError, match=r"(?s)exited with code \d+ while starting; last lines of") as err:
        server.start(port=free_port())
    assert time.monotonic() - started < 400
    assert "no-such-architecture" in str(err.value)
    assert server.status() == []


def test_stop_ends_the_server_and_its_children() -> None:
    server = prepared_model_server()
    port = free_port()
    handle = server.start(port=port)
    try:
        assert server.start(port=port) == handle
        assert handle in server.status()
        members = _group_members(handle.pid)
        assert handle.pid in members
        assert len(members) > 1, "vLLM runs its engine in a child process"
    finally:
        stopped = server.stop(port=port)
    assert stopped is True
    assert process_gone(handle.pid)
    assert _group_members(handle.pid) == []
    assert handle not in server.status()
    assert server.stop(port=port) is False
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.url}/models", timeout=5)
