"""benchmarks/fact_extraction.py: the matching rule, the scores, and the prompt it measures (no model server)."""

from __future__ import annotations

import json

import pytest

from benchmarks.fact_extraction import (
    DATA,
    DEFAULT_VARIANT,
    VARIANTS,
    Item,
    Outcome,
    content_tokens,
    copies_example,
    example_markers,
    load,
    match,
    measure,
    score,
    similarity,
    table,
)
from hivegraph.agents.manager import MemoryManager
from hivegraph.agents.prompts import EXTRACTION_EXAMPLES, extraction_prompt
from hivegraph.memory.facade import Memory
from hivegraph.models.base import Message, user
from hivegraph.models.testing import FunctionModel, RequestInfo, ScriptedModel

PEANUTS = Item("a", "fact", "I'm allergic to peanuts.", ("The user is allergic to peanuts",))
MIA = Item(
    "b",
    "fact",
    "My daughter Mia turns seven in March.",
    ("The user's daughter is called Mia", "Mia's birthday is in March"),
)
HELLO = Item("c", "none", "Hi there!", ())


def facts(*items: str) -> str:
    return json.dumps({"facts": list(items)})


def test_content_tokens_drop_pronouns_stopwords_and_plural_s() -> None:
    assert content_tokens("I'm allergic to peanuts.") == {"allergic", "peanut"}
    assert content_tokens("The user is allergic to peanuts") == {"allergic", "peanut"}
    assert content_tokens("The user's class") == {"class"}  # "ss" keeps its s
    assert content_tokens("Hi, how are you?") == {"hi", "how"}


def test_similarity_is_the_dice_coefficient_of_content_tokens() -> None:
    assert similarity("The user loves spicy food", "User loves food") == pytest.approx(2 * 2 / (3 + 2))
    assert similarity("The user", "Spicy food") == 0.0  # no content token on one side


def test_match_pairs_one_to_one_by_descending_score() -> None:
    gold = ["The user's daughter is called Mia", "Mia's birthday is in March"]
    predicted = ["Mia is the user's daughter", "The user has a daughter called Mia", "Mia was born in March", "x"]
    # both daughter facts match the first label; only the better one (exact tokens) is paired
    assert match(predicted, gold) == [(1, 0), (2, 1)]
    assert match(["Mia likes jazz"], gold, threshold=0.5) == []
    assert match(["Mia likes jazz"], gold, threshold=0.3) == [(0, 0)]


def test_score_counts_precision_recall_empty_replies_and_facts_on_no_fact_messages() -> None:
    outcomes = [
        Outcome(PEANUTS, ["The user is allergic to peanuts", "I'm allergic to peanuts."]),
        Outcome(MIA, []),
        Outcome(HELLO, ["The user said hi"], error=None),
    ]
    s = score("v", outcomes)
    assert (s.predicted, s.gold, s.matched) == (3, 3, 1)
    assert s.precision == pytest.approx(1 / 3) and s.recall == pytest.approx(1 / 3) and s.f1 == pytest.approx(1 / 3)
    assert (s.fact_messages, s.empty_on_fact, s.none_messages, s.facts_on_none) == (2, 1, 1, 1)
    assert s.verbatim == 1 and s.copied == 0 and s.errors == 0


def test_a_fact_with_a_marker_word_of_the_examples_counts_as_copied() -> None:
    markers = example_markers(EXTRACTION_EXAMPLES, [PEANUTS, MIA, HELLO])
    assert {"kayak", "squash", "mattress"} <= markers
    assert "allergic" not in markers and "user" not in markers
    s = score("v", [Outcome(PEANUTS, ["The user paddles a kayak"])], markers=markers)
    assert s.copied == 1 and s.copied_facts == ["The user paddles a kayak"] and s.matched == 0
    assert not copies_example("The user is allergic to peanuts", markers)


def test_every_example_fact_is_detectable_as_a_copy_on_the_labelled_set() -> None:
    items = load(DATA)
    markers = example_markers(EXTRACTION_EXAMPLES, items)
    for example in EXTRACTION_EXAMPLES:
        for fact in example.facts:
            assert copies_example(fact, markers), fact
    for item in items:  # and no label would be flagged
        assert not any(copies_example(fact, markers) for fact in item.facts), item.id


def test_the_labelled_set_covers_every_kind_of_message() -> None:
    items = load(DATA)
    assert len(items) >= 30 and len({i.id for i in items}) == len(items)
    kinds = {i.kind for i in items}
    assert kinds == {"preference", "fact", "mixed", "change", "retraction", "forget", "none"}
    assert all(bool(i.facts) == (i.kind != "none") for i in items)


def test_extraction_prompt_shows_the_examples_as_earlier_turns_before_the_transcript() -> None:
    messages = extraction_prompt("user: I live in Lyon.", max_facts=3)
    assert [m.role for m in messages] == ["system"] + ["user", "assistant"] * len(EXTRACTION_EXAMPLES) + ["user"]
    assert "at most 3 facts" in messages[0].content and messages[-1].content == "user: I live in Lyon."
    replies = [json.loads(m.content)["facts"] for m in messages if m.role == "assistant"]
    assert replies == [list(e.facts) for e in EXTRACTION_EXAMPLES] and [] in replies  # one example holds no fact


async def test_the_manager_sends_the_benchmarked_default_prompt(memory: Memory) -> None:
    model = ScriptedModel([facts("The user lives in Lyon")])
    got = await MemoryManager(model, memory, max_candidates=5).extract([user("I live in Lyon.")])
    assert got == ["The user lives in Lyon"]
    sent = model.requests[0]
    assert sent.output_schema is not None and sent.output_schema.name == "ExtractedFacts"
    assert sent.messages == VARIANTS[DEFAULT_VARIANT].build("user: I live in Lyon.", 5)


async def test_measure_runs_each_variant_over_the_set_and_tabulates_it() -> None:
    def reply(messages: list[Message], info: RequestInfo) -> str:
        assert info.output_schema is not None
        message = messages[-1].content
        if "peanuts" in message:
            return facts("The user is allergic to peanuts")
        if "Mia" in message:
            return facts("The user paddles a kayak" if info.output_schema.name == "AtLeastOneFact" else "")
        return "not json" if "Hi" in message else facts()

    model = FunctionModel(reply, max_retries=0)
    scores = await measure(model, ["few-shot", "min-items"], [PEANUTS, MIA, HELLO], verbose=False)
    few, min_items = scores
    assert (few.matched, few.predicted, few.gold, few.errors, few.copied) == (1, 1, 3, 1, 0)
    assert few.empty_on_fact == 1 and few.facts_on_none == 0
    assert (min_items.predicted, min_items.copied) == (2, 1)  # "kayak" is a marker of the examples
    assert len(model.requests) == 6
    lines = table(scores).splitlines()
    assert lines[0].split()[:4] == ["variant", "P", "R", "F1"]
    assert lines[1].split()[:4] == ["few-shot", "1.00", "0.33", "0.50"]
