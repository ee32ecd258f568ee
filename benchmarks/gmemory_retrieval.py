"""Model-free G-Memory retrieval quality on HotpotQA, against plain vector search in the same run.

The 100 questions of the HotpotQA distractor sample are seeded as solved tasks
of one team through `memory.gmemory.record_task` (outcome success): the task is
the question; its trajectory one `searcher` step per supporting title
("search <title>: <the first supporting sentence of that paragraph>") and a
`solver` step "finish: <answer>". Each task then gets, through `revise`, one
insight of its own (the lesson of that task: which pages it joined, and which
was the bridge entity or the compared pair; never the question's wording) and
its type's insight (bridge or comparison: added by the first task of the type,
AGREEd by the others).

Each task is then probed with a template that names its supporting titles and
its type and nothing else: "Which <type> question links <title> and <title>?"
(titles lose a trailing disambiguation in parentheses; a title that contains the
answer is left out, so no probe contains the answer: checked, `violations` must
be 0). Nothing else about the data is tuned.

- `gmemory`: `memory.gmemory.retrieve(probe)`. traj@1: the first trajectory it
  returns is the task's own; insight@3: the task's own insight is among the
  first 3 insights it returns.
- `vector`: plain vector search (`memory.search`, cosine, no graph, no keyword):
  traj@1 = the task itself is the first of `kinds=("query",)`; insight@3 = its
  insight among the first 3 of `kinds=("insight",)`: a flat memory of lessons
  asked directly, the same 3 slots G-Memory gets (the headline baseline).
- `vector-tasks`: the insights of the vector search's tasks, in task order
  (each task's own, then its type's; repeats dropped), the first 3: what
  G-Memory's climb from tasks to insights gives without the graph's ranking.

The diagnostics say where G-Memory loses a task: `task@1`/`task@3` (own task
first / among the tasks the hybrid search starts from), `insight@5` (own insight
among all the insights returned, `GMemorySettings.insights` = 5).

`--threshold` measures the `SIMILAR`-link threshold for the embedder instead:
cosines of unrelated task pairs (every pair of distinct questions: the sample's
questions share no supporting and no context title, checked) against pairs that
are the same task in other words (a question and its probe), with percentiles,
Youden's J, max F1, and the least threshold that links at most 1% of unrelated
pairs. Same-type pairs are shown too.

    .venv/bin/python benchmarks/gmemory_retrieval.py                     # MiniLM (bundled, offline)
    .venv/bin/python benchmarks/gmemory_retrieval.py --embedder hash     # quick
    .venv/bin/python benchmarks/gmemory_retrieval.py --threshold         # SIMILAR-link threshold for MiniLM
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

if __package__ in (None, ""):  # run as `python benchmarks/gmemory_retrieval.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hivegraph.memory.facade import Memory, MemoryOptions
from hivegraph.memory.gmemory import AgreeInsight, GMemorySettings, NewInsight, Step
from hivegraph.memory.graph import InMemoryGraph
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import Scope
from hivegraph.models.embedder import Embedder

DEFAULT_DATA = (Path(__file__).parents[1] / ".." / "shared" / "data" / "hotpotqa").resolve() / (
    "hotpotqa_distractor_sample.jsonl"
)
TEAM = Scope(team_id="hotpotqa")
TYPE_INSIGHTS = {
    "bridge": "Bridge questions: find the bridge entity on the first page, then search that entity's own page for "
    "the answer before finishing.",
    "comparison": "Comparison questions: search the page of each entity and compare the same attribute on both "
    "before finishing.",
}
CANDIDATES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
"""Thresholds whose share of linked pairs `--threshold` prints."""
_DISAMBIGUATION = re.compile(r"\s*\([^)]*\)\s*$")


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    answer: str
    type: str
    titles: tuple[str, ...]
    """The supporting titles, each once, in order."""
    evidence: tuple[str, ...]
    """The first supporting sentence of each title."""
    context: frozenset[str]


@dataclass(frozen=True)
class Seeded:
    question: Question
    task_id: UUID
    insight_id: UUID
    type_insight_id: UUID
    probe: str
    links: int
    """The `SIMILAR` links its recording made."""


def load(path: Path, limit: int | None = None) -> list[Question]:
    """The questions of the sample (the first `limit`)."""
    if not path.exists():
        raise SystemExit(f"{path} not found: the HotpotQA sample lives in ../shared/data/hotpotqa (see its README)")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [_question(json.loads(line)) for line in lines[:limit] if line.strip()]


def _question(row: dict[str, Any]) -> Question:
    facts = row["supporting_facts"]
    titles = tuple(dict.fromkeys(facts["title"]))
    paragraphs = dict(zip(row["context"]["title"], row["context"]["sentences"], strict=True))
    first = {t: s for t, s in reversed(list(zip(facts["title"], facts["sent_id"], strict=True)))}
    evidence = tuple(_sentence(paragraphs.get(t, []), first[t]) for t in titles)
    return Question(
        qid=row["id"], question=row["question"].strip(), answer=str(row["answer"]).strip(), type=row["type"],
        titles=titles, evidence=evidence, context=frozenset(row["context"]["title"]),
    )  # fmt: skip


def _sentence(sentences: Sequence[str], n: int) -> str:
    return sentences[n].strip() if 0 <= n < len(sentences) else ""


def plain(title: str) -> str:
    """A title without its trailing disambiguation ("Creed (band)" -> "Creed")."""
    return _DISAMBIGUATION.sub("", title).strip() or title


def contains(text: str, phrase: str) -> bool:
    """Whether `phrase` occurs in `text` as whole words, ignoring case."""
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


def probe_of(question: Question) -> str:
    """The answer-free probe: the question's type and its supporting titles that do not contain the answer."""
    names = [plain(t) for t in question.titles]
    kept = [n for n in names if not contains(n, question.answer) and not contains(question.answer, n)]
    if not kept:
        return f"Which {question.type} question is this?"
    return f"Which {question.type} question links {' and '.join(kept)}?"


def steps_of(question: Question) -> list[Step]:
    """The trajectory of a solved question: one search per supporting title, then the answer."""
    searches = [
        Step("searcher", f"search {title}: {sentence}" if sentence else f"search {title}")
        for title, sentence in zip(question.titles, question.evidence, strict=True)
    ]
    return [*searches, Step("solver", f"finish: {question.answer}")]


def lesson_of(question: Question) -> str:
    """The task's own lesson: the pages it joined and how (never the question's wording)."""
    names = [plain(t) for t in question.titles]
    if question.type == "comparison":
        return f"Comparing {' and '.join(names)}: read the same fact on each page, then compare."
    first, last = names[0], names[-1]
    if len(names) == 1:
        return f"The page of {first} held every fact needed; one search was enough."
    return f"Start from the page of {first}; the bridge entity is {last}, whose own page holds the answer."


def embedder_of(name: str) -> Embedder:
    """The bundled MiniLM (offline) or the hash embedder (384 dimensions)."""
    from hivegraph.models.testing import HashEmbedder

    if name == "minilm":
        from hivegraph.models.minilm import MiniLMEmbedder

        return MiniLMEmbedder()
    return HashEmbedder(384)


async def open_memory(embedder: Embedder, threshold: float | None = None) -> Memory:
    """A memory of the reference parts with the graph projected (the threshold: the default unless given)."""
    settings = GMemorySettings() if threshold is None else GMemorySettings(similarity_threshold=threshold)
    graph = GraphProjection(InMemoryGraph())
    memory = Memory.of(
        InMemorySpace(embedder), journal=InMemoryJournal(), projections=[graph], options=MemoryOptions(gmemory=settings)
    )
    return await memory.open()


async def seed(memory: Memory, questions: Sequence[Question]) -> list[Seeded]:
    """Record every question as a solved task with its own insight and its type's (added once, then agreed)."""
    shared: dict[str, UUID] = {}
    seeded: list[Seeded] = []
    for q in questions:
        recorded = await memory.gmemory.record_task(
            q.question, steps_of(q), scope=TEAM, run_id=q.qid, outcome="success"
        )
        task_id = recorded.task.id
        [own] = await memory.gmemory.revise([NewInsight(lesson_of(q))], task_id=task_id, scope=TEAM)
        if q.type in shared:
            await memory.gmemory.revise([AgreeInsight(shared[q.type])], task_id=task_id, scope=TEAM)
        else:
            [added] = await memory.gmemory.revise([NewInsight(TYPE_INSIGHTS[q.type])], task_id=task_id, scope=TEAM)
            shared[q.type] = added.insight_id
        seeded.append(Seeded(q, task_id, own.insight_id, shared[q.type], probe_of(q), len(recorded.similar)))
    return seeded


@dataclass
class Tally:
    counts: dict[str, int]
    n: int = 0

    def add(self, **hits: bool) -> None:
        for name, hit in hits.items():
            self.counts[name] = self.counts.get(name, 0) + int(hit)

    def rates(self) -> dict[str, float]:
        return {name: count / self.n if self.n else 0.0 for name, count in self.counts.items()}


async def evaluate(memory: Memory, seeded: Sequence[Seeded]) -> dict[str, Any]:
    """traj@1 and insight@3 of G-Memory and of the vector baselines, the diagnostics and the probe violations."""
    insights_of = {s.task_id: (s.insight_id, s.type_insight_id) for s in seeded}
    tallies = {name: Tally({}, len(seeded)) for name in ("gmemory", "vector", "vector-tasks")}
    for s in seeded:
        ctx = await memory.gmemory.retrieve(s.probe, scope=TEAM)
        first_tasks = [t.id for t in ctx.tasks if t.hops == 0]
        insights = [i.id for i in ctx.insights]
        tallies["gmemory"].add(**{
            "traj@1": bool(ctx.trajectories) and ctx.trajectories[0].task_id == s.task_id,
            "insight@3": s.insight_id in insights[:3], "task@1": first_tasks[:1] == [s.task_id],
            "task@3": s.task_id in first_tasks, "insight@5": s.insight_id in insights,
        })  # fmt: skip
        tasks = [h.record_id for h in await memory.search(s.probe, scope=TEAM, k=3, kinds=("query",))]
        lessons = [h.record_id for h in await memory.search(s.probe, scope=TEAM, k=3, kinds=("insight",))]
        tallies["vector"].add(**{"traj@1": tasks[:1] == [s.task_id], "insight@3": s.insight_id in lessons})
        climbed = list(dict.fromkeys(i for t in tasks for i in insights_of[t]))[:3]
        tallies["vector-tasks"].add(**{"traj@1": tasks[:1] == [s.task_id], "insight@3": s.insight_id in climbed})
    figures: dict[str, Any] = {name: tally.rates() for name, tally in tallies.items()}
    figures["probes"] = {
        "n": len(seeded),
        "violations": sum(contains(s.probe, s.question.answer) for s in seeded),
        "without_titles": sum(" links " not in s.probe for s in seeded),
        "similar_links": sum(s.links for s in seeded),
    }
    return figures


def print_table(figures: dict[str, Any], *, embedder: str, path: Path) -> None:
    probes = figures["probes"]
    print(f"\nG-Memory retrieval on {path.name} ({probes['n']} tasks; embedder {embedder}; "
          f"probe violations {probes['violations']}, probes left without a title {probes['without_titles']}, "
          f"SIMILAR links {probes['similar_links']})")  # fmt: skip
    print(f"{'system':<13} {'traj@1':>7} {'insight@3':>10} {'traj x':>7} {'ins x':>7}")
    base = figures["vector"]
    for name in ("gmemory", "vector", "vector-tasks"):
        row = figures[name]
        ratios = [_ratio(row[m], base[m]) for m in ("traj@1", "insight@3")]
        print(f"{name:<13} {row['traj@1']:>7.2f} {row['insight@3']:>10.2f} {ratios[0]:>7} {ratios[1]:>7}")
    g = figures["gmemory"]
    print(f"\ngmemory diagnostics: task@1 {g['task@1']:.2f}  task@3 {g['task@3']:.2f}  insight@5 {g['insight@5']:.2f}")
    print(
        "  task@1 / task@3: own task first / among the 3 the hybrid search starts from; insight@5: own insight among"
        " all returned"
    )
    print(
        "vector: flat vector search over task texts (traj@1) and over insight texts (insight@3);"
        " vector-tasks: the insights of the tasks plain vector search finds\nx: ratio to the vector baseline (same run)"
    )


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "-"


# ---------------------------------------------------------------- SIMILAR-link threshold


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def unrelated(a: Question, b: Question) -> bool:
    """The two questions share no supporting title and no context paragraph."""
    return not (set(a.titles) & set(b.titles)) and not (a.context & b.context)


def similarity_pairs(questions: Sequence[Question], embedder: Embedder) -> dict[str, list[float]]:
    """Cosines of: a question and its probe (the same task); unrelated questions; unrelated questions of one type."""
    asked = embedder.embed([q.question for q in questions])
    probed = embedder.embed([probe_of(q) for q in questions])
    same = [cosine(a, p) for a, p in zip(asked, probed, strict=True)]
    pairs = [(i, j) for i, j in itertools.combinations(range(len(questions)), 2)]
    related = [(i, j) for i, j in pairs if not unrelated(questions[i], questions[j])]
    if related:
        raise SystemExit(f"{len(related)} question pairs share a title: the negatives would not be unrelated")
    return {
        "same task (question, probe)": same,
        "unrelated, same type": [
            cosine(asked[i], asked[j]) for i, j in pairs if questions[i].type == questions[j].type
        ],
        "unrelated, any": [cosine(asked[i], asked[j]) for i, j in pairs],
    }


def separation(positives: Sequence[float], negatives: Sequence[float]) -> dict[str, float]:
    """The thresholds that best separate the two samples (a pair links when its cosine is >= the threshold)."""
    best_j, best_f1 = (-1.0, 0.0), (-1.0, 0.0)
    for t in sorted({*positives, *negatives}):
        tp = sum(p >= t for p in positives)
        fp = sum(n >= t for n in negatives)
        tpr, fpr = tp / len(positives), fp / len(negatives)
        f1 = 2 * tp / (2 * tp + fp + (len(positives) - tp))
        best_j = max(best_j, (tpr - fpr, t))
        best_f1 = max(best_f1, (f1, t))
    cut = statistics.quantiles(negatives, n=100)[98]
    return {
        "youden_j": best_j[0], "youden_threshold": best_j[1], "max_f1": best_f1[0], "f1_threshold": best_f1[1],
        "p99_unrelated": cut, "recall_at_p99": sum(p >= cut for p in positives) / len(positives),
    }  # fmt: skip


def threshold_report(questions: Sequence[Question], embedder: Embedder, name: str) -> dict[str, Any]:
    samples = similarity_pairs(questions, embedder)
    print(f"\nSIMILAR-link threshold, embedder {name}: cosine percentiles over {len(questions)} HotpotQA questions")
    print(f"{'pairs':<28} {'n':>6} {'p5':>6} {'p25':>6} {'p50':>6} {'p75':>6} {'p95':>6} {'p99':>6} {'max':>6}")
    shown: dict[str, Any] = {}
    for label, values in samples.items():
        q = statistics.quantiles(values, n=100)
        row = {"n": len(values), "p5": q[4], "p25": q[24], "p50": q[49], "p75": q[74], "p95": q[94], "p99": q[98],
               "max": max(values)}  # fmt: skip
        shown[label] = row
        print(f"{label:<28} {len(values):>6} " + " ".join(f"{row[k]:>6.3f}" for k in list(row)[1:]))
    sep = separation(samples["same task (question, probe)"], samples["unrelated, any"])
    print(f"\nYouden's J {sep['youden_j']:.3f} at {sep['youden_threshold']:.3f}; max F1 {sep['max_f1']:.3f} at "
          f"{sep['f1_threshold']:.3f}; 1% of unrelated pairs at or above {sep['p99_unrelated']:.3f} "
          f"(it keeps {sep['recall_at_p99']:.2f} of the same-task pairs)")  # fmt: skip
    same, other = samples["same task (question, probe)"], samples["unrelated, any"]
    print("threshold  same-task pairs linked  unrelated pairs linked")
    for cut in CANDIDATES:
        linked, false = sum(v >= cut for v in same) / len(same), sum(v >= cut for v in other) / len(other)
        sep[f"linked@{cut}"], sep[f"false@{cut}"] = linked, false
        print(f"{cut:>9.2f}  {linked:>22.2f}  {false:>22.4f}")
    recommended = round(sep["f1_threshold"], 2)
    print(f"recommended similarity_threshold for {name}: {recommended:.2f} (the max-F1 cut, rounded)")
    return {"percentiles": shown, "separation": sep, "recommended": recommended}


# ---------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> dict[str, Any]:
    questions = load(args.data, args.limit)
    embedder = embedder_of(args.embedder)
    if args.threshold:
        return {"threshold": threshold_report(questions, embedder, args.embedder)}
    memory = await open_memory(embedder, args.similarity)
    try:
        seeded = await seed(memory, questions)
        figures = await evaluate(memory, seeded)
    finally:
        await memory.aclose()
    figures["config"] = {"data": str(args.data), "embedder": args.embedder, "tasks": len(questions),
                         "similarity_threshold": memory.gmemory.settings.similarity_threshold}  # fmt: skip
    print_table(figures, embedder=args.embedder, path=args.data)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--embedder", choices=("minilm", "hash"), default="minilm")
    parser.add_argument("--limit", type=int, default=None, help="the first N questions only")
    parser.add_argument("--threshold", action="store_true", help="measure the SIMILAR-link threshold instead")
    parser.add_argument("--similarity", type=float, default=None, help="similarity_threshold (default: the setting's)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
