"""Rule-based condensation of a trajectory: its key steps, within a token budget.

G-Memory shows a new task the trajectories of similar tasks that succeeded, cut
down to what mattered. Without a model that is done by rules that hold for any
team: empty steps, pure acknowledgements and repeats of an earlier step are
dropped; each step is cut to its first sentences; the first step (how the task
was taken up) and the last (how it ended) are always kept, and when the budget
is short the steps nearest the middle go first, replaced by a count of what was
left out. A model-written summary (`hivegraph.agents.reflector.TrajectorySummarizer`)
can stand in for the rules when the configured model is capable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hivegraph.memory.text import tokenize

MAX_STEP_CHARS = 240
"""A step longer than this is cut at a sentence end (or a word) and marked with an ellipsis."""
ACKNOWLEDGEMENTS = frozenset(
    [
        "ok",
        "okay",
        "sure",
        "thanks",
        "thank",
        "you",
        "yes",
        "no",
        "agreed",
        "got",
        "it",
        "great",
        "fine",
        "done",
        "noted",
        "right",
        "understood",
        "will",
        "do",
    ]
)
"""Words that, on their own, make a step a pure acknowledgement."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class StepText:
    """One step of a trajectory as it is shown: who took it and what they said or did."""

    agent: str
    content: str
    step: int


@dataclass(frozen=True)
class Condensed:
    """The key steps of a trajectory that fit, in order, and how many were left out."""

    steps: list[StepText]
    omitted: int
    tokens: int

    def render(self) -> str:
        """The steps as numbered lines, with a marker where steps were left out."""
        lines: list[str] = []
        previous = -1
        for shown in self.steps:
            if previous >= 0 and shown.step > previous + 1 and self.omitted:
                lines.append("   ...")
            lines.append(f"{shown.step + 1}. {shown.agent}: {shown.content}")
            previous = shown.step
        return "\n".join(lines)


def condense(steps: Sequence[StepText], *, budget: int, count: Callable[[str], int]) -> Condensed:
    """The key steps of `steps` (in step order) whose rendered lines fit in `budget` tokens by `count`.

    The first and last key steps are kept before any other; if even they do not
    fit, as much of the first as fits is kept. Returns no steps for a budget of 0.
    """
    key = key_steps(steps)
    if budget <= 0 or not key:
        return Condensed([], len(steps), 0)
    cost = {s.step: count(_line(s)) + 1 for s in key}
    ends = [key[0], key[-1]] if len(key) > 1 else [key[0]]
    if sum(cost[s.step] for s in ends) > budget:
        first = key[0]
        room = max(budget - count(f"{first.step + 1}. {first.agent}: ") - 1, 0)
        text = _cut_to(first.content, room, count)
        kept = [StepText(first.agent, text, first.step)] if text else []
        return Condensed(kept, len(steps) - len(kept), sum(count(_line(s)) + 1 for s in kept))
    chosen = {s.step for s in ends}
    spent = sum(cost[s] for s in chosen)
    middle = key[1:-1]
    centre = (len(middle) - 1) / 2
    for _, shown in sorted(enumerate(middle), key=lambda p: (-abs(p[0] - centre), p[1].step)):
        if spent + cost[shown.step] <= budget:
            chosen.add(shown.step)
            spent += cost[shown.step]
    kept = [s for s in key if s.step in chosen]
    return Condensed(kept, len(steps) - len(kept), spent)


def key_steps(steps: Sequence[StepText]) -> list[StepText]:
    """The steps worth showing, shortened: no empty steps, no pure acknowledgements, no repeats."""
    seen: set[tuple[str, ...]] = set()
    kept: list[StepText] = []
    for shown in sorted(steps, key=lambda s: s.step):
        words = tuple(tokenize(shown.content))
        if not words or set(words) <= ACKNOWLEDGEMENTS or words in seen:
            continue
        seen.add(words)
        kept.append(StepText(shown.agent, shorten(shown.content), shown.step))
    return kept


def shorten(text: str, limit: int = MAX_STEP_CHARS) -> str:
    """`text` on one line, cut to its first sentences (or words) within `limit` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    kept = ""
    for sentence in _SENTENCE_END.split(flat):
        if len(kept) + len(sentence) + 1 > limit - 1:
            break
        kept = f"{kept} {sentence}".strip()
    if not kept:
        kept = flat[: limit - 1].rsplit(" ", 1)[0] or flat[: limit - 1]
    return kept + "…"


def _line(shown: StepText) -> str:
    return f"{shown.step + 1}. {shown.agent}: {shown.content}"


def _cut_to(text: str, budget: int, count: Callable[[str], int]) -> str:
    """The longest word prefix of `text` (with an ellipsis when cut) that counts at most `budget`."""
    if count(text) <= budget:
        return text
    words = text.split()
    low, high = 0, len(words)
    while low < high:
        mid = (low + high + 1) // 2
        if count(" ".join(words[:mid]) + "…") <= budget:
            low = mid
        else:
            high = mid - 1
    return " ".join(words[:low]) + "…" if low else ""
