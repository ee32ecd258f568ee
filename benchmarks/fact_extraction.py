"""Fact extraction prompts measured against a small labelled set, with a served model.

The set (`benchmarks/data/extraction_set.jsonl`, written for this benchmark) has
one user message per line from a personal-assistant setting, with the atomic
facts a memory should keep from it: preferences, facts about the user, changes
of a preference or fact, retractions, forget requests, and messages that hold
no fact at all (small talk, questions, one-off requests). Each message is
extracted on its own, rendered as the memory manager renders a transcript
(`user: <message>`).

Matching rule (deterministic): a text's content tokens are its lower-cased
alphanumeric words minus a fixed stopword list (pronouns, articles, auxiliaries,
prepositions and the word "user", so "I'm allergic to peanuts" and "The user is
allergic to peanuts" compare equal), with a trailing "s" dropped from words of
four letters or more (not after "ss"). Two facts match when the Dice
coefficient of their token sets, 2|A∩B| / (|A|+|B|), is at least `--threshold`
(0.5). Predicted and labelled facts of one message are paired one to one,
greedily by descending score (ties by position); precision = matched /
predicted, recall = matched / labelled, F1 their harmonic mean, over all
messages.

Columns besides P/R/F1:
- `empty`: share of the messages with labelled facts whose reply held no fact;
- `on-none`: share of the messages without a fact whose reply held one or more;
- `copied`: extracted facts that contain a marker word of the variant's worked
  examples: a content token of an example's facts that occurs nowhere in the
  set (messages or labels). It must be 0 for the prompt hivegraph keeps; the
  flagged facts are printed under the table so a reader can judge them;
- `verbatim`: extracted facts that repeat the message word for word;
- `errors`: messages whose reply never validated (scored as no facts).

Variants: `old` is the extraction prompt before this benchmark (kept here
verbatim), `zero-shot` the current instructions alone, `few-shot` what
`MemoryManager.extract` sends (`hivegraph.agents.prompts.extraction_prompt`:
instructions, then the worked examples as earlier turns), `old+examples` the
old instructions with the same turns, `inline` the examples pasted into the
instructions instead, `min-items` the few-shot prompt with a schema that
requires at least one fact.

Measured with the bundled SmolLM2-135M on vLLM's CPU build (2 cores, one
request at a time, temperature 0; 38 messages, 38 labelled facts, 8 messages
without one). The few-shot examples were chosen on this same set (no held-out
split), so treat the figures as optimistic; with this model the order of the
examples alone swings F1 between 0.00 and 0.62::

    variant           P     R    F1 facts  empty on-none copied verbatim errors
    old            0.00  0.00  0.00     0   1.00    0.00      0        0      0
    zero-shot      0.00  0.00  0.00     6   0.97    0.00      0        0      0
    few-shot       0.67  0.58  0.62    33   0.07    0.62      0        0      0
    old+examples   0.68  0.61  0.64    34   0.03    0.62      0        0      0
    inline         0.00  0.00  0.00     0   1.00    0.00      0        0      0
    min-items      0.59  0.58  0.59    37   0.03    0.88      0        0      0

The matching rule does not see negation ("The user does not book me an aisle
seat" matches "The user prefers an aisle seat on flights"); `--show` prints
every reply for a reader to judge.

    .venv/bin/python benchmarks/fact_extraction.py                      # starts the bundled server
    .venv/bin/python benchmarks/fact_extraction.py --base-url http://127.0.0.1:8765/v1 --model smollm2
    .venv/bin/python benchmarks/fact_extraction.py --variants few-shot --show
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hivegraph.agents.manager import ExtractedFacts, FactText
from hivegraph.agents.prompts import EXTRACT_FACTS, EXTRACTION_EXAMPLES, ExtractionExample, extraction_prompt
from hivegraph.config import load_settings
from hivegraph.errors import UnexpectedModelOutput
from hivegraph.models.base import ChatModel, Message, system, user
from hivegraph.models.openai_compat import OpenAICompatModel
from hivegraph.models.server import ModelServer

DATA = Path(__file__).parent / "data" / "extraction_set.jsonl"
THRESHOLD = 0.5
MAX_FACTS = 8
"""`MemoryManager.max_candidates`' default."""

_STOPWORDS = """a an the and or but of to in on at for with from by about as into than then so
    i me my mine im we us our you your he him his she her they them their it its this that these those
    is am are was were be been being have has had do does did will would can could should shall may might
    s m d ll re ve t user"""
STOPWORDS = frozenset(_STOPWORDS.split())

OLD_EXTRACT_FACTS = """\
You extract durable facts worth remembering from a conversation: facts about the \
user, their preferences, plans, relationships and decisions, and facts the team \
established. Skip greetings, questions and anything only true for this moment. \
Each fact is one short self-contained sentence. Return at most {max_facts} facts; \
return an empty list if there is nothing worth keeping.
Reply with JSON only: {{"facts": ["...", "..."]}}"""
"""The extraction prompt before this benchmark (commit 37c4bbf)."""


class AtLeastOneFact(BaseModel):
    """The extraction reply with a schema that requires one fact or more (`minItems: 1`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    facts: list[FactText] = Field(min_length=1, max_length=16)


@dataclass(frozen=True)
class Item:
    """One labelled message."""

    id: str
    kind: str
    message: str
    facts: tuple[str, ...]


def load(path: Path = DATA) -> list[Item]:
    """The labelled messages of a JSON-lines file."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Item(row["id"], row["kind"], row["message"], tuple(row["facts"])) for row in rows]


def content_tokens(text: str) -> frozenset[str]:
    """Lower-cased words minus stopwords, a trailing "s" dropped from words of four letters or more."""
    words = re.findall(r"[a-z0-9]+", text.casefold().replace("'", ""))
    return frozenset(_stem(w) for w in words if w not in STOPWORDS and w.removesuffix("s") not in STOPWORDS)


def _stem(word: str) -> str:
    return word[:-1] if len(word) >= 4 and word.endswith("s") and not word.endswith("ss") else word


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the content tokens of `a` and `b` (0 when either has none)."""
    ta, tb = content_tokens(a), content_tokens(b)
    return 2 * len(ta & tb) / (len(ta) + len(tb)) if ta and tb else 0.0


def match(predicted: Sequence[str], gold: Sequence[str], *, threshold: float = THRESHOLD) -> list[tuple[int, int]]:
    """Pairs (predicted index, gold index), one to one, greedily by descending similarity."""
    scored = [(similarity(p, g), i, j) for i, p in enumerate(predicted) for j, g in enumerate(gold)]
    pairs: list[tuple[int, int]] = []
    used_p: set[int] = set()
    used_g: set[int] = set()
    for score, i, j in sorted(scored, key=lambda s: (-s[0], s[1], s[2])):
        if score >= threshold and i not in used_p and j not in used_g:
            pairs.append((i, j))
            used_p.add(i)
            used_g.add(j)
    return sorted(pairs)


def example_markers(examples: Iterable[ExtractionExample], items: Iterable[Item]) -> frozenset[str]:
    """Content tokens of the examples' facts that occur nowhere in the set (messages or labels)."""
    shown = content_tokens(" ".join(fact for e in examples for fact in e.facts))
    in_set = content_tokens(" ".join(text for i in items for text in (i.message, *i.facts)))
    return shown - in_set


def copies_example(fact: str, markers: frozenset[str]) -> bool:
    """Whether `fact` contains a marker word of the worked examples."""
    return bool(content_tokens(fact) & markers)


def _plain(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


@dataclass
class Outcome:
    """What a variant extracted from one message."""

    item: Item
    facts: list[str]
    error: str | None = None


@dataclass
class Score:
    """A variant's figures over the set."""

    variant: str
    predicted: int = 0
    gold: int = 0
    matched: int = 0
    fact_messages: int = 0
    empty_on_fact: int = 0
    none_messages: int = 0
    facts_on_none: int = 0
    copied: int = 0
    verbatim: int = 0
    errors: int = 0
    seconds: float = 0.0
    copied_facts: list[str] = field(default_factory=list[str])

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(
    variant: str, outcomes: Sequence[Outcome], *, markers: frozenset[str] = frozenset(), threshold: float = THRESHOLD
) -> Score:
    """Score a variant's outcomes against the labels (see the module docstring for the rule)."""
    s = Score(variant)
    for o in outcomes:
        s.predicted += len(o.facts)
        s.gold += len(o.item.facts)
        s.matched += len(match(o.facts, o.item.facts, threshold=threshold))
        s.errors += o.error is not None
        if o.item.facts:
            s.fact_messages += 1
            s.empty_on_fact += not o.facts
        else:
            s.none_messages += 1
            s.facts_on_none += bool(o.facts)
        copied = [f for f in o.facts if copies_example(f, markers)]
        s.copied += len(copied)
        s.copied_facts += copied
        s.verbatim += sum(_plain(f) == _plain(o.item.message) for f in o.facts)
    return s


PromptBuilder = Callable[[str, int], list[Message]]


@dataclass(frozen=True)
class Variant:
    """A way to ask for facts: the messages sent and the reply schema."""

    name: str
    build: PromptBuilder
    reply_type: type[ExtractedFacts] | type[AtLeastOneFact] = ExtractedFacts
    examples: tuple[ExtractionExample, ...] = ()


def _inline(transcript: str, max_facts: int) -> list[Message]:
    shown = "\n\n".join(f"Conversation:\n{e.transcript}\nReply: {e.reply()}" for e in EXTRACTION_EXAMPLES)
    instructions = EXTRACT_FACTS.format(max_facts=max_facts) + "\n\nExamples:\n\n" + shown
    return [system(instructions), user(transcript)]


def _with_examples(instructions: str) -> PromptBuilder:
    def build(transcript: str, max_facts: int) -> list[Message]:
        messages = extraction_prompt(transcript, max_facts=max_facts)
        return [system(instructions.format(max_facts=max_facts)), *messages[1:]]

    return build


EXAMPLES = tuple(EXTRACTION_EXAMPLES)
VARIANTS = {
    v.name: v
    for v in (
        Variant("old", lambda t, n: [system(OLD_EXTRACT_FACTS.format(max_facts=n)), user(t)]),
        Variant("zero-shot", lambda t, n: extraction_prompt(t, max_facts=n, examples=())),
        Variant("few-shot", lambda t, n: extraction_prompt(t, max_facts=n), examples=EXAMPLES),
        Variant("old+examples", _with_examples(OLD_EXTRACT_FACTS), examples=EXAMPLES),
        Variant("inline", _inline, examples=EXAMPLES),
        Variant("min-items", lambda t, n: extraction_prompt(t, max_facts=n), AtLeastOneFact, EXAMPLES),
    )
}
DEFAULT_VARIANT = "few-shot"
"""The variant `MemoryManager.extract` uses."""


async def extract_one(model: ChatModel, variant: Variant, item: Item, *, max_facts: int = MAX_FACTS) -> Outcome:
    """Ask `model` for the facts of one message the way `variant` does."""
    messages = variant.build(f"user: {item.message}", max_facts)
    try:
        reply = await model.structured(messages, variant.reply_type)
    except UnexpectedModelOutput as exc:
        return Outcome(item, [], error=str(exc))
    return Outcome(item, list(dict.fromkeys(f for f in reply.output.facts if f))[:max_facts])


async def run_variant(model: ChatModel, variant: Variant, items: Sequence[Item]) -> tuple[list[Outcome], float]:
    """Every item through `variant`, concurrently (the model bounds requests in flight); and the seconds taken."""
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(extract_one(model, variant, item) for item in items))
    return list(outcomes), time.perf_counter() - started


def table(scores: Sequence[Score]) -> str:
    """The scores as a fixed-width table."""
    head = f"{'variant':<13} {'P':>5} {'R':>5} {'F1':>5} {'facts':>5} {'empty':>6} {'on-none':>7}"
    head += f" {'copied':>6} {'verbatim':>8} {'errors':>6} {'s':>6}"
    rows = [head]
    for s in scores:
        empty = s.empty_on_fact / s.fact_messages if s.fact_messages else 0.0
        on_none = s.facts_on_none / s.none_messages if s.none_messages else 0.0
        rows.append(
            f"{s.variant:<13} {s.precision:>5.2f} {s.recall:>5.2f} {s.f1:>5.2f} {s.predicted:>5} {empty:>6.2f}"
            f" {on_none:>7.2f} {s.copied:>6} {s.verbatim:>8} {s.errors:>6} {s.seconds:>6.0f}"
        )
    return "\n".join(rows)


def show(variant: str, outcomes: Sequence[Outcome]) -> None:
    print(f"\n== {variant}")
    for o in outcomes:
        hits = {i for i, _ in match(o.facts, o.item.facts)}
        got = "; ".join(("+ " if i in hits else "- ") + f for i, f in enumerate(o.facts)) or "(none)"
        print(f"{o.item.id:<4} {o.item.message[:60]:<60} | {got}{' ERROR' if o.error else ''}")


async def measure(model: ChatModel, names: Sequence[str], items: Sequence[Item], *, verbose: bool) -> list[Score]:
    scores: list[Score] = []
    for name in names:
        variant = VARIANTS[name]
        outcomes, seconds = await run_variant(model, variant, items)
        s = score(name, outcomes, markers=example_markers(variant.examples, items))
        s.seconds = seconds
        scores.append(s)
        print(f"{name}: F1 {s.f1:.2f} in {seconds:.0f} s", file=sys.stderr)
        if verbose:
            show(name, outcomes)
    return scores


async def run(
    base_url: str, model_name: str, names: Sequence[str], items: Sequence[Item], *, verbose: bool, concurrency: int
) -> None:
    async with OpenAICompatModel(
        base_url=base_url, model=model_name, timeout_s=600, max_concurrency=concurrency
    ) as model:
        scores = await measure(model, names, items, verbose=verbose)
    print(table(scores))
    for s in scores:
        if s.copied_facts:
            print(f"{s.variant} copied: {s.copied_facts}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure fact extraction prompt variants against the labelled set.")
    parser.add_argument("--base-url", help="an OpenAI-compatible server; default: start the bundled one")
    parser.add_argument("--model", default=None, help="served model name (default: the configured one)")
    parser.add_argument("--port", type=int, default=18182, help="port of the bundled server when it is started")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--show", action="store_true", help="print every message's extracted facts")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight (above 1 the server's batching varies replies)"
    )
    args = parser.parse_args(argv)
    items = load(args.data)
    settings = load_settings().model
    if args.base_url:
        model = args.model or settings.model
        asyncio.run(run(args.base_url, model, args.variants, items, verbose=args.show, concurrency=args.concurrency))
        return
    server = ModelServer(settings.server)
    handle = server.start(port=args.port)
    try:
        asyncio.run(
            run(handle.url, handle.model, args.variants, items, verbose=args.show, concurrency=args.concurrency)
        )
    finally:
        server.stop(port=args.port)


if __name__ == "__main__":
    main()
