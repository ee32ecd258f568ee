"""Every example runs at unit speed with a scripted model (the real-model runs are integration tests)."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from hivegraph.models.base import Message
from hivegraph.models.testing import FunctionModel, RequestInfo

EXAMPLES = Path(__file__).parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scripted(messages: list[Message], info: RequestInfo) -> str:
    if info.output_schema is None:
        return "1. Book a table. 2. Avoid peanuts."
    if info.output_schema.name == "ExtractedFacts":
        return json.dumps({"facts": ["Ada is allergic to peanuts"]})
    return json.dumps({"ops": [{"event": "NOOP", "id": 0, "text": ""}]})


async def test_quickstart_second_run_recalls_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIVEGRAPH_EMBEDDER__BACKEND", "hash")
    quickstart = load("quickstart")
    first, second = await quickstart.main(["--data-dir", str(tmp_path)], model=FunctionModel(scripted))
    assert quickstart.recalled_from_earlier_runs(second)
    assert {m["run_id"] for ms in second.recalled.values() for m in ms} == {first.run_id}
    out = capsys.readouterr().out
    assert "=== run 1" in out and "=== run 2" in out
    assert "memory ADD    [semantic" in out and "Ada is allergic to peanuts" in out
    assert (tmp_path / "chroma").is_dir()  # the default profile's persistent Chroma
