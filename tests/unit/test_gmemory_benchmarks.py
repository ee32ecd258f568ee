"""The G-Memory benchmarks on tiny inputs: what they write and measure has the right shape (no timings checked).

benchmarks/gmemory_retrieval.py on 10 HotpotQA questions with the hash embedder,
and benchmarks/graph_memory.py on 20 synthetic tasks on the in-memory and SQLite graphs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gmemory_retrieval import contains, lesson_of, load, probe_of, steps_of
from benchmarks.gmemory_retrieval import main as retrieval_main
from benchmarks.graph_memory import AGENTS, FAMILIES, synthetic_tasks
from benchmarks.graph_memory import main as graph_main

RIVERS = ["Amber", "Basalt", "Cedar", "Dune", "Ember", "Fjord", "Garnet", "Heath", "Iris", "Juniper"]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """Ten questions in the HotpotQA distractor format (made up here, so the test needs no data folder)."""
    rows: list[dict[str, object]] = []
    for n, name in enumerate(RIVERS):
        kind = "comparison" if n % 3 == 0 else "bridge"
        titles = [f"{name} River", f"{name}ville (town)"]
        sentences = [
            [f"The {name} River flows past {name}ville.", " It is long."],
            [f"{name}ville was founded in {1700 + n}."],
        ]
        rows.append({
            "id": f"q{n}", "question": f"When was the town on the {name} River founded?", "answer": str(1700 + n),
            "type": kind, "supporting_facts": {"title": titles, "sent_id": [0, 0]},
            "context": {"title": titles, "sentences": sentences},
        })  # fmt: skip
    path = tmp_path / "sample.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    return path


def test_no_probe_contains_its_answer_or_the_question(sample: Path) -> None:
    for q in load(sample):
        probe = probe_of(q)
        assert not contains(probe, q.answer), (probe, q.answer)
        assert q.question not in probe
        assert probe.startswith(f"Which {q.type} question")
        assert q.question not in lesson_of(q)


def test_a_trajectory_searches_each_supporting_title_then_finishes(sample: Path) -> None:
    [q] = load(sample, 1)
    steps = steps_of(q)
    assert [s.agent for s in steps] == ["searcher"] * len(q.titles) + ["solver"]
    assert all(s.content.startswith(f"search {t}") for s, t in zip(steps, q.titles, strict=False))
    assert steps[-1].content == f"finish: {q.answer}"


def test_the_retrieval_benchmark_writes_rates_for_both_systems(tmp_path: Path, sample: Path) -> None:
    out = tmp_path / "retrieval.json"
    retrieval_main(["--data", str(sample), "--embedder", "hash", "--limit", "10", "--json", str(out)])
    figures = json.loads(out.read_text(encoding="utf-8"))
    for system in ("gmemory", "vector", "vector-tasks"):
        assert set(figures[system]) >= {"traj@1", "insight@3"}
        assert all(0.0 <= value <= 1.0 for value in figures[system].values())
    assert figures["probes"]["n"] == 10
    assert figures["probes"]["violations"] == 0


def test_the_threshold_mode_recommends_a_cosine(tmp_path: Path, sample: Path) -> None:
    out = tmp_path / "threshold.json"
    retrieval_main(["--data", str(sample), "--embedder", "hash", "--limit", "10", "--threshold", "--json", str(out)])
    found = json.loads(out.read_text(encoding="utf-8"))["threshold"]
    assert -1.0 <= found["recommended"] <= 1.0
    assert found["percentiles"]["unrelated, any"]["n"] == 45
    assert 0.0 <= found["separation"]["max_f1"] <= 1.0


def test_synthetic_tasks_are_deterministic_and_shaped_as_described() -> None:
    tasks = synthetic_tasks(200, 3)
    assert tasks == synthetic_tasks(200, 3)
    assert tasks != synthetic_tasks(200, 4)
    assert {t.family for t in tasks} == set(FAMILIES)
    assert all(3 <= len(t.steps) <= 6 and {s.agent for s in t.steps} <= set(AGENTS) for t in tasks)
    assert 0.1 < sum(t.outcome == "failure" for t in tasks) / len(tasks) < 0.3


def test_the_graph_benchmark_writes_a_row_per_backend_and_size(tmp_path: Path) -> None:
    out = tmp_path / "graph.json"
    graph_main(["--sizes", "10,20", "--backends", "inmemory,sqlite", "--probes", "5", "--warmup", "1",
                "--json", str(out)])  # fmt: skip
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert [(r["backend"], r["size"]) for r in rows] == [("inmemory", 10), ("inmemory", 20), ("sqlite", 10),
                                                         ("sqlite", 20)]  # fmt: skip
    assert all(r["write_tasks_s"] > 0 and r["retrieve_p50_ms"] > 0 and r["found_tasks"] >= 1 for r in rows)
