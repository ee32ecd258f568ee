"""The personal assistant end to end on the real model server: three sessions, histories, later questions.

What the bundled model decides is printed, not checked fact by fact (it is small); what is checked is that
the sessions run against the real server and that the memory manager stored at least one fact it extracted.
A run whose reply never validates (the bundled model names memory ids it was not shown) is printed by the
example, which goes on.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hivegraph.models.server import ServerHandle

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def test_the_personal_assistant_runs_on_the_bundled_model(model_server: ServerHandle, tmp_path: Path) -> None:
    env = os.environ | {"HIVEGRAPH_MODEL__BASE_URL": model_server.url, "HIVEGRAPH_MODEL__MODEL": model_server.model}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "personal_assistant.py"), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1500, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr[-3000:]}"
    assert out.count("=== session") == 3 and "=== a later session" in out
    assert "memory ADD" in out, f"no fact was stored:\n{out}"
    assert "=== fact histories" in out and "ADD    by memory_manager" in out
