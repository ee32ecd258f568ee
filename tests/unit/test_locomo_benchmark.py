"""benchmarks/locomo_retrieval.py: the vector cache used for tuning, and a run on one small conversation."""

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from benchmarks.locomo_retrieval import CachedEmbedder, main
from hivegraph.models.testing import HashEmbedder


class Counting(HashEmbedder):
    """A hash embedder that counts the texts it embeds."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim=dim)
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return super().embed(texts)


def test_the_cache_embeds_each_text_once_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    counting = Counting(dim=8)
    first = CachedEmbedder(counting, path)
    vectors = first.embed(["a cat", "a dog", "a cat"])
    first.save()
    assert counting.embedded == 2
    counting.embedded = 0
    again = CachedEmbedder(counting, path)
    dog, cat = again.embed(["a dog", "a cat"])
    assert dog == pytest.approx(vectors[1], abs=1e-6) and cat == pytest.approx(vectors[0], abs=1e-6)
    assert counting.embedded == 0


def test_a_cache_of_another_embedder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    cache = CachedEmbedder(HashEmbedder(dim=8), path)
    cache.embed(["a cat"])
    cache.save()
    with pytest.raises(SystemExit, match="holds vectors of"):
        CachedEmbedder(HashEmbedder(dim=16), path)


def test_a_run_on_one_conversation_reports_recall_within_the_bm25_budget(tmp_path: Path) -> None:
    turns = [{"speaker": s, "dia_id": f"D1:{i + 1}", "text": t} for i, (s, t) in enumerate([
        ("Ada", "I adopted a grey cat from the shelter last week."), ("Bob", "When did you adopt her?"),
        ("Ada", "Last Tuesday, and she already loves the sofa."), ("Bob", "I went hiking in the Alps."),
    ])]  # fmt: skip
    qa = [{"question": "When did Ada adopt the cat?", "evidence": ["D1:3"], "category": 2},
          {"question": "Where did Bob go hiking?", "evidence": ["D1:4"], "category": 4}]  # fmt: skip
    sample = {"sample_id": "tiny", "qa": qa,
              "conversation": {"session_1": turns, "session_1_date_time": "1:56 pm on 8 May, 2023"}}  # fmt: skip
    data = tmp_path / "locomo.json"
    data.write_text(json.dumps([sample]))
    out = tmp_path / "out.json"
    main(["--data", str(data), "--embedder", "hash", "--index", "inmemory", "--no-speed", "--systems", "hivegraph",
          "--embed-cache", str(tmp_path / "v.npz"), "--json", str(out)])  # fmt: skip
    figures = json.loads(out.read_text())
    hive, bm25 = figures["hivegraph"]["all"], figures["bm25"]["all"]
    assert hive["n"] == bm25["n"] == 2
    assert hive["tokens@10"] <= figures["config"]["budgets"]["10"] and 0.0 <= hive["R@10"] <= 1.0
    assert (tmp_path / "v.npz").is_file()
