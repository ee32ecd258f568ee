"""The quickstart end to end: real vLLM server, real Chroma on disk, real MiniLM embeddings."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hivegraph.models.server import ServerHandle

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def test_quickstart_second_run_recalls_the_first(model_server: ServerHandle, tmp_path: Path) -> None:
    env = os.environ | {"HIVEGRAPH_MODEL__BASE_URL": model_server.url, "HIVEGRAPH_MODEL__MODEL": model_server.model}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr[-3000:]}"
    first, second = out.split("=== run 2")
    assert "recall -> planner: (nothing yet)" in first
    assert re.search(r"memory ADD +\[episodic", first)
    planner_turn = re.search(r"^  planner: (.+)$", first, re.MULTILINE)
    assert planner_turn and planner_turn.group(1).strip()
    run1_id = re.search(r"=== run 1 \((\w+)\)", first)
    assert run1_id is not None
    assert f"from run {run1_id.group(1)}" in second  # recalled from the persistent store, written by run 1
    recalled = re.search(r"the second run recalled (\d+) memories written by earlier runs", second)
    assert recalled and int(recalled.group(1)) >= 1
    assert (tmp_path / "data" / "chroma").is_dir()
