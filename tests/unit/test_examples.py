"""Every example runs at unit speed with a scripted model (the real-model runs are integration tests)."""

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from hivegraph.config import load_settings
from hivegraph.models.base import Message
from hivegraph.models.testing import FunctionModel, RequestInfo

EXAMPLES = Path(__file__).parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their annotations through it
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


def hotpot_rows() -> list[dict[str, object]]:
    """Three HotpotQA-format questions whose answers are page titles (the scripted verifier names a title)."""

    def row(n: int, question: str, answer: str, pages: list[tuple[str, str]]) -> dict[str, object]:
        distractors = [(f"Filler {n}-{i}", f"Filler page {i} is about gardening and weather.") for i in range(3)]
        titles, texts = zip(*(pages + distractors), strict=True)
        return {"id": f"q{n}", "question": question, "answer": answer, "type": "comparison",
                "supporting_facts": {"title": [t for t, _ in pages], "sent_id": [0] * len(pages)},
                "context": {"title": list(titles), "sentences": [[t] for t in texts]}}  # fmt: skip

    return [
        row(1, "Which river is longer, the Tagus or the Douro?", "Tagus",
            [("Tagus", "The Tagus river is 1007 km long."), ("Douro", "The Douro river is 897 km long.")]),
        row(2, "Which river is longer, the Ebro or the Tagus?", "Tagus",
            [("Ebro", "The Ebro river is 930 km long."), ("Tagus", "The Tagus river is 1007 km long.")]),
        row(3, "Which city is older, Lisbon or Porto?", "Lisbon",
            [("Lisbon", "Lisbon city was founded before Rome."), ("Porto", "Porto city dates from Roman times.")]),
    ]  # fmt: skip


def researcher(messages: list[Message], info: RequestInfo) -> str:
    """Searches the question's words, answers with what it found; the verifier names the first page found."""
    schema = info.output_schema.name if info.output_schema else None
    if schema == "AgentAction":
        if messages[-1].content.startswith("Result of search"):
            return json.dumps({"action": "answer", "answer": messages[-1].content.removeprefix("Result of search: ")})
        question = messages[1].content.split("\n")[0].removeprefix("Task: ")
        return json.dumps({"action": "call", "tool": "search", "arguments": {"query": question}})
    if schema == "ExtractedFacts":
        return json.dumps({"facts": []})
    if schema == "DistilledProcedure":
        return json.dumps({"steps": ["Search both pages", "Compare the numbers"], "script": "search(); compare()"})
    if schema is not None and schema.startswith("Reflection"):
        return json.dumps({"ops": [{"op": "ADD", "id": None, "text": "Search each page the question names",
                                    "roles": ["searcher"]}]})  # fmt: skip
    if schema is not None:
        return json.dumps({"ops": []})
    if messages[0].content.startswith("You are the verifier"):
        found = re.findall(r"\[([^\]]+)\]", messages[-1].content.partition("Team so far:")[2])
        return found[0] if found else "unknown"
    return "The first page found answers it."


async def test_research_team_reports_memory_off_and_on_and_the_second_condition_recalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIVEGRAPH_EMBEDDER__BACKEND", "hash")
    data = tmp_path / "hotpot.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in hotpot_rows()) + "\n")
    research = load("research_team")
    model = FunctionModel(researcher)
    rows = await research.main(["--data", str(data), "--questions", "3", "--data-dir", str(tmp_path / "stores"),
                                "--json", str(tmp_path / "rows.json")], model=model)  # fmt: skip
    off, on = rows
    assert (off["memory"], on["memory"], off["n"], on["n"]) == ("off", "on", 3, 3)
    assert off["recalled"] == 0 and on["recalled"] > 0, "only the memory-on team is shown memories"
    assert off["learned"] == 0 and on["learned before last"] > 0, "only the memory-on team learns"
    assert off["SF recall"] == on["SF recall"] == 1.0  # both supporting pages come back from one search
    # The scripted verifier names the first page the search returned: right for q1 and q3 only.
    assert off["EM"] == on["EM"] == pytest.approx(2 / 3, abs=1e-3) and off["F1"] == pytest.approx(2 / 3, abs=1e-3)
    searcher_prompts = [r.messages[1].content for r in model.requests if r.messages[0].content.startswith(
        "You are the searcher")]  # fmt: skip
    assert any("Search each page the question names" in p for p in searcher_prompts), "G-Memory insight recalled"
    assert json.loads((tmp_path / "rows.json").read_text()) == rows
    assert "memory" in capsys.readouterr().out


def test_the_example_server_yaml_selects_every_server_backend() -> None:
    settings = load_settings(EXAMPLES / "hivegraph.server.yaml")
    assert settings.profile == "server" and settings.vector_store.chroma.mode == "http"
    backends = (settings.graph_store.backend, settings.journal.backend, settings.checkpointer.backend)
    assert backends == ("neo4j", "postgres", "postgres")


def test_research_metrics_follow_squad_normalisation() -> None:
    research = load("research_team")
    assert research.exact_match("The Tagus.", "tagus") == 1.0
    assert research.f1("the Tagus river", "Tagus") == pytest.approx(2 / 3)
    assert research.f1("", "Tagus") == 0.0 and research.f1("Douro", "Tagus") == 0.0


FACTS = {
    "I'm Maya": ["Maya lives in Porto", "Maya works as a nurse"],
    "I love spicy food": ["Maya loves spicy food"],
    "I moved to Lisbon": ["Maya lives in Lisbon"],
    "I don't eat spicy food": ["Maya does not eat spicy food"],
    "Please forget that I work as a nurse": ["Maya asked to forget that she works as a nurse"],
    "my sister Ines": ["Maya's sister Ines visits in June"],
}
CHANGES = {"Maya lives in Lisbon": ("UPDATE", "Maya lives in Porto"),
           "Maya does not eat spicy food": ("UPDATE", "Maya loves spicy food"),
           "Maya asked to forget that she works as a nurse": ("DELETE", "Maya works as a nurse")}  # fmt: skip


def assistant_model(messages: list[Message], info: RequestInfo) -> str:
    """Extracts the facts above from the user's message and decides UPDATE/DELETE by the stored fact's alias."""
    schema = info.output_schema.name if info.output_schema else None
    if schema == "ExtractedFacts":
        said = messages[-1].content.partition("assistant:")[0]
        return json.dumps({"facts": [f for key, facts in FACTS.items() if key in said for f in facts]})
    if schema == "Decision":
        request = messages[-1].content
        aliases = {text: int(alias) for alias, text in re.findall(r"^\[(\d+)\] (.+)$", request, re.MULTILINE)}
        ops: list[dict[str, object]] = []
        for fact in re.findall(r"^- (.+)$", request, re.MULTILINE):
            event, target = CHANGES.get(fact, ("ADD", ""))
            if event != "ADD" and target in aliases:
                ops.append({"event": event, "id": aliases[target], "text": fact if event == "UPDATE" else ""})
            else:
                ops.append({"event": "ADD", "id": None, "text": fact})
        return json.dumps({"ops": ops})
    memories = re.findall(r"^\[\w+\] (.+)$", messages[-1].content, re.MULTILINE)
    return "I know: " + "; ".join(memories) if memories else "I do not know."


async def test_personal_assistant_keeps_facts_current_and_answers_from_them_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIVEGRAPH_EMBEDDER__BACKEND", "hash")
    assistant = load("personal_assistant")
    journey = await assistant.main(["--data-dir", str(tmp_path)], model=FunctionModel(assistant_model))
    events = [(event, text) for _, event, text in journey.decisions]
    assert ("UPDATE", "Maya lives in Lisbon") in events and ("UPDATE", "Maya does not eat spicy food") in events
    assert ("DELETE", "Maya works as a nurse") in events
    out = capsys.readouterr().out
    assert "=== fact histories" in out and "(deleted)" in out and "no longer current" in out
    history = out.split("=== fact histories")[1].split("=== a later session")[0]
    assert history.index("ADD    by memory_manager: Maya lives in Porto") < history.index(
        "UPDATE by memory_manager: Maya lives in Lisbon")  # fmt: skip
    where, food, visitor = journey.answers
    assert "Maya lives in Lisbon" in where[1] and "Maya lives in Porto" not in where[1]
    assert "Maya does not eat spicy food" in food[1] and "Maya loves spicy food" not in food[1]
    assert "Maya's sister Ines visits in June" in visitor[2]
    assert not any("nurse" in fact for _, facts, _ in journey.answers for fact in facts if "forget" not in fact)


async def test_research_team_goes_on_when_a_reflection_never_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEGRAPH_EMBEDDER__BACKEND", "hash")
    data = tmp_path / "hotpot.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in hotpot_rows()[:2]) + "\n")

    def empty_lessons(messages: list[Message], info: RequestInfo) -> str:
        if info.output_schema is not None and info.output_schema.name.startswith("Reflection"):
            return json.dumps({"ops": [{"op": "ADD", "id": None, "text": "", "roles": []}]})
        return researcher(messages, info)

    research = load("research_team")
    off, on = await research.main(["--data", str(data), "--questions", "2", "--data-dir", str(tmp_path / "s")],
                                  model=FunctionModel(empty_lessons))  # fmt: skip
    assert (off["failed reflections"], on["failed reflections"]) == (0, 2)
    assert on["n"] == 2 and on["recalled"] > 0, "procedures and trajectories are still recalled"
