"""A research team over HotpotQA: what memory changes, measured.

Three agents answer multi-hop questions in a pipeline:

- **searcher**: has a `search` tool over the question's ten context paragraphs
  (keyword overlap, two best paragraphs with their titles) and reports the facts it found;
- **reasoner**: works out the answer from those facts;
- **verifier**: replies with the final short answer only.

The same N questions run in sequence twice, each condition in a team scope of
its own (and, on the embedded profile, a data folder of its own): with memory
**off** (agents recall nothing, no G-Memory), then **on** (each agent recalls
procedures and G-Memory insights and trajectories for its role; after every
question the team learns from its outcome: F1 >= 0.5 counts as success, which
scores the insights shown, distils a procedure and reflects). It reports
exact match, F1 (SQuAD normalisation) and supporting-fact recall (the share of
the question's supporting titles the searcher's tool returned).

    python examples/research_team.py --questions 5
    python examples/research_team.py --config examples/hivegraph.server.yaml  # Chroma, Neo4j, PostgreSQL
    python examples/research_team.py --data ../shared/data/hotpotqa/hotpotqa_distractor_sample.jsonl --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import string
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from hivegraph.agents import Agent, MemoryPolicy
from hivegraph.agents.acting import ActLimits
from hivegraph.app import TeamLearned, TeamRun, open_hivegraph
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import UnexpectedModelOutput
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import Scope
from hivegraph.models.base import ChatModel

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hotpotqa" / "hotpotqa_distractor_sample.jsonl"
).resolve()
TEAM = "research"
SUCCESS_F1 = 0.5


@dataclass(frozen=True)
class Question:
    """One HotpotQA question with its context paragraphs."""

    id: str
    text: str
    answer: str
    supporting: tuple[str, ...]
    paragraphs: tuple[tuple[str, str], ...]
    """(title, text) of each context paragraph."""


def load_questions(path: Path, n: int) -> list[Question]:
    """The first `n` questions of a HotpotQA distractor file (JSON Lines)."""
    questions: list[Question] = []
    for line in path.read_text(encoding="utf-8").splitlines()[:n]:
        row = json.loads(line)
        context = row["context"]
        paragraphs = tuple((t, "".join(s)) for t, s in zip(context["title"], context["sentences"], strict=True))
        supporting = tuple(dict.fromkeys(row["supporting_facts"]["title"]))
        questions.append(Question(row["id"], row["question"], row["answer"], supporting, paragraphs))
    return questions


class SearchArgs(BaseModel):
    """Arguments of `search`."""

    query: str = Field(max_length=200, description="words to look for")


def search_tool(question: Question) -> BaseTool:
    """`search(query)`: the two context paragraphs of `question` sharing the most words with the query."""

    async def search(query: str) -> str:
        wanted = set(tokenize(query))
        scored = sorted(((len(wanted & set(tokenize(f"{t} {p}"))), n) for n, (t, p) in enumerate(question.paragraphs)),
                        key=lambda pair: (-pair[0], pair[1]))  # fmt: skip
        best = [question.paragraphs[n] for score, n in scored[:2] if score > 0]
        return "\n".join(f"[{title}] {text}" for title, text in best) or "no paragraph matches"

    return StructuredTool.from_function(
        coroutine=search, name="search", args_schema=SearchArgs,
        description="Search the encyclopedia paragraphs; returns the two best with their titles.",
    )  # fmt: skip


def team_members(question: Question, *, memory: bool) -> list[Agent]:
    """The three agents, recalling procedures and G-Memory when `memory` is on."""

    def policy(*kinds: str) -> MemoryPolicy:
        return MemoryPolicy(read_kinds=kinds if memory else (), gmemory=memory, k=2, token_budget=300)  # type: ignore[arg-type]

    return [
        Agent(name="searcher", tools=[search_tool(question)],
              limits=ActLimits(max_steps=2, min_calls=1, max_tokens=384),
              instructions="You are the searcher. Search for the pages the question needs (one search per page), "
              "then answer with the facts you found, naming each page title.", memory=policy("procedural")),
        Agent(name="reasoner", max_tokens=96, memory=policy("procedural", "semantic"),
              instructions="You are the reasoner. From the searcher's facts, work out the answer in one sentence."),
        Agent(name="verifier", max_tokens=24, memory=policy("procedural"),
              instructions="You are the verifier. Reply with the final answer only: a short phrase, no sentence."),
    ]  # fmt: skip


def normalise(text: str) -> str:
    """SQuAD answer normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised answers are equal."""
    return float(normalise(prediction) == normalise(gold))


def f1(prediction: str, gold: str) -> float:
    """Token F1 of the normalised answers."""
    said, wanted = normalise(prediction).split(), normalise(gold).split()
    common = sum((Counter(said) & Counter(wanted)).values())
    if not said or not wanted or common == 0:
        return float(said == wanted)
    precision, recall = common / len(said), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def found_titles(run: TeamRun) -> set[str]:
    """The paragraph titles the searcher's tool returned in `run`."""
    results = [u["result"] for t in run.turns for u in t.get("tool_uses", []) if u["tool"] == "search" and u["ok"]]
    return {title for result in results for title in re.findall(r"^\[([^\]]+)\]", result, flags=re.MULTILINE)}


@dataclass
class Scores:
    """Per-condition totals."""

    memory: bool
    em: list[float] = field(default_factory=list[float])
    f1: list[float] = field(default_factory=list[float])
    sf_recall: list[float] = field(default_factory=list[float])
    recalled: int = 0
    """Memory blocks the agents were shown, over all questions."""
    failed_runs: int = 0
    """Questions the team stopped on because a model reply never validated (scored 0)."""
    failed_reflections: int = 0
    """Questions whose reflection never validated (their outcome still scored the insights shown)."""
    learned: list[int] = field(default_factory=list[int])
    """Per question: what its learning stored for later questions (a procedure distilled, insights added or edited)."""

    def row(self) -> dict[str, Any]:
        n = len(self.em)

        def mean(values: list[float]) -> float:
            return round(sum(values) / n, 3) if n else 0.0

        return {"memory": "on" if self.memory else "off", "n": n, "EM": mean(self.em), "F1": mean(self.f1),
                "SF recall": mean(self.sf_recall), "recalled": self.recalled,
                "failed runs": self.failed_runs, "failed reflections": self.failed_reflections,
                "learned": sum(self.learned), "learned before last": sum(self.learned[:-1])}  # fmt: skip


async def run_condition(
    settings: HivegraphSettings, questions: list[Question], *, memory: bool, model: ChatModel | None
) -> Scores:
    """Answer every question in sequence with memory on or off, on stores of this condition only."""
    scores = Scores(memory=memory)
    async with open_hivegraph(settings, model=model) as hg:
        for number, question in enumerate(questions, 1):
            team = hg.team(team_members(question, memory=memory), scope=condition_scope(memory=memory))
            try:
                run = await team.run(question.text)
            except UnexpectedModelOutput as exc:  # a reply that never validated: the question counts as missed
                print(f"  q{number}: the team stopped ({exc})", file=sys.stderr, flush=True)
                for missed in (scores.em, scores.f1, scores.sf_recall):
                    missed.append(0.0)
                scores.failed_runs += 1
                continue
            answer = run.turns[-1]["content"] if run.turns else ""
            scores.em.append(exact_match(answer, question.answer))
            scores.f1.append(f1(answer, question.answer))
            titles = found_titles(run)
            scores.sf_recall.append(sum(t in titles for t in question.supporting) / len(question.supporting))
            scores.recalled += sum(len(ms) for ms in run.recalled.values())
            scores.learned.append(0)
            if memory:
                try:
                    learned = await team.learn(run, success=scores.f1[-1] >= SUCCESS_F1)
                except UnexpectedModelOutput as exc:  # the outcome and rewards are kept; only the reflection failed
                    scores.failed_reflections += 1
                    print(f"  q{number}: no reflection ({exc})", file=sys.stderr, flush=True)
                else:
                    scores.learned[-1] = stored_for_later(learned)
            print(f"  memory {'on ' if memory else 'off'} q{number}: F1 {scores.f1[-1]:.2f} "
                  f"answer {answer[:60]!r} gold {question.answer!r}", file=sys.stderr, flush=True)  # fmt: skip
    return scores


def stored_for_later(learned: TeamLearned) -> int:
    """How many memories a question's learning stored that a later question can recall."""
    procedure = learned.record is not None and not learned.known
    return int(procedure) + sum(c.event in ("ADD", "EDIT") and not c.retired for c in learned.insights)


def condition_scope(*, memory: bool) -> Scope:
    """The team scope of one condition: server backends ignore `data_dir`, so the scope keeps them apart."""
    return Scope(team_id=f"{TEAM}-memory-{'on' if memory else 'off'}")


def condition_settings(base: HivegraphSettings, folder: Path, *, memory: bool) -> HivegraphSettings:
    """`base` on a data folder of its own; G-Memory on only when memory is."""
    data_dir = folder / ("memory-on" if memory else "memory-off")
    gmemory = base.gmemory.model_copy(update={"enabled": memory})
    return base.model_copy(update={"data_dir": data_dir, "gmemory": gmemory})


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'memory':<7} {'n':>3} {'EM':>6} {'F1':>6} {'SF recall':>10} {'recalled':>9} {'learned':>8}")
    for row in rows:
        print(f"{row['memory']:<7} {row['n']:>3} {row['EM']:>6.3f} {row['F1']:>6.3f} {row['SF recall']:>10.3f} "
              f"{row['recalled']:>9} {row['learned']:>8}")  # fmt: skip


async def main(argv: list[str] | None = None, *, model: ChatModel | None = None) -> list[dict[str, Any]]:
    """Run the questions with memory off, then on; print and return the table rows."""
    parser = argparse.ArgumentParser(description="A research team over HotpotQA, memory off versus on.")
    parser.add_argument("--config", help="path of hivegraph.yaml")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="HotpotQA distractor JSON Lines")
    parser.add_argument("--questions", type=int, default=5, help="how many questions, in file order")
    parser.add_argument("--data-dir", type=Path, help="where the stores of both conditions live")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    base = load_settings(args.config, **overrides)
    questions = load_questions(args.data, args.questions)
    rows = [(await run_condition(condition_settings(base, base.data_dir, memory=on), questions, memory=on,
                                 model=model)).row() for on in (False, True)]  # fmt: skip
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    asyncio.run(main())
