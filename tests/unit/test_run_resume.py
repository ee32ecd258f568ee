"""`hivegraph run`: a team spec run from the command line, killed with SIGKILL mid-task and resumed with
`--resume`; memory afterwards equals an uninterrupted run's. Also the spec's and the command's bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hivegraph.cli import main
from hivegraph.config import load_settings
from hivegraph.memory.facade import open_memory
from hivegraph.memory.types import Scope
from tests.unit.fake_openai_server import FakeOpenAIServer, Reply, completion, serve

SCOPE = Scope(user_id="ada", team_id="crew")
SPEC = """
pattern: pipeline
scope: {user_id: ada, team_id: crew}
agents:
  - {name: drafter, instructions: "You draft.", max_tokens: 32}
  - {name: checker, instructions: "You check.", max_tokens: 32}
"""
REPLY = '{"facts": []}'
"""Every model reply: an agent says it, and the memory manager reads it as no facts."""


def workspace(tmp_path: Path, name: str, server: FakeOpenAIServer) -> tuple[Path, Path]:
    folder = tmp_path / name
    folder.mkdir()
    config = folder / "hivegraph.yaml"
    config.write_text(json.dumps({
        "data_dir": str(folder / "data"),
        "embedder": {"backend": "hash"},
        "model": {"base_url": server.url, "model": "fake-model", "max_retries": 0, "timeout_s": 120},
    }))  # fmt: skip
    spec = folder / "team.yaml"
    spec.write_text(SPEC)
    return config, spec


def hivegraph(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HIVEGRAPH_CONFIG": str(config)}
    return subprocess.Popen([sys.executable, "-m", "hivegraph.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def finished(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def memory_of(config: Path) -> list[tuple[str, str, str, str | None, list[tuple[str, str]]]]:
    """Every version in the team's scope, without the times: kind, text, scope, run and metadata."""

    async def read() -> list[tuple[str, str, str, str | None, list[tuple[str, str]]]]:
        async with open_memory(load_settings(config)) as memory:
            records = await memory.journal.records(scope=SCOPE, all_versions=True)
        return sorted(
            (r.kind, r.text, str(r.scope), r.source.run_id,
             sorted((k, str(v)) for k, v in r.metadata.items() if "occurred" not in k and k != "created_at"))
            for r in records
        )  # fmt: skip

    return asyncio.run(read())


def test_a_run_killed_mid_task_resumes_and_leaves_the_memory_of_an_uninterrupted_run(tmp_path: Path) -> None:
    with serve() as server:
        server.default = Reply(completion(REPLY))
        config, spec = workspace(tmp_path, "killed", server)
        server.queue(Reply(completion(REPLY)), Reply(completion(REPLY), delay_s=60))  # the checker's call hangs
        process = hivegraph(config, "run", str(spec), "Plan the offsite.", "--run-id", "r1")
        deadline = time.monotonic() + 120
        while len(server.requests) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.requests) == 2, process.communicate()[1] if process.poll() is not None else "no request"
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)  # reaps it and closes its pipes
        assert memory_of(config) == [], "killed before consolidate: nothing written yet"

        resumed = finished(hivegraph(config, "run", str(spec), "--resume", "r1"))
        assert [line["node"] for line in resumed[:-1]] == ["drafter", "checker"]
        after_kill = [r["messages"][0]["content"] for r in server.requests[2:]]
        assert "You draft." not in after_kill, "the drafter's step came from the checkpoint, not a new model call"
        assert after_kill[0] == "You check."

        reference_config, reference_spec = workspace(tmp_path, "reference", server)
        steps = finished(hivegraph(reference_config, "run", str(reference_spec), "Plan the offsite.", "--run-id", "r1"))
        assert [line.get("node") for line in steps] == ["drafter", "checker", "consolidate", None]
    after_resume, uninterrupted = memory_of(config), memory_of(reference_config)
    assert after_resume == uninterrupted
    assert ("episodic", "checker: " + REPLY) in {(kind, text) for kind, text, *_ in after_resume}


def test_the_command_and_the_spec_refuse_bad_input_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "team.yaml"
    spec.write_text("pattern: supervisor\nscope: {team_id: t}\nagents: [{name: a, instructions: x}]\n")
    config = tmp_path / "hivegraph.yaml"
    config.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "embedder": {"backend": "hash"}}))
    assert main(["--config", str(config), "run", str(spec)]) == 2
    assert "give either a task or --resume" in capsys.readouterr().err
    assert main(["--config", str(config), "run", str(spec), "Go."]) == 2
    assert "pattern 'supervisor' needs a 'router' agent" in capsys.readouterr().err
    assert main(["--config", str(config), "run", "no_such_module:team", "Go."]) == 2
    assert "cannot import 'no_such_module'" in capsys.readouterr().err
