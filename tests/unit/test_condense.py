"""Rule-based condensation of trajectories: key steps only, first and last kept, within a token budget."""

from __future__ import annotations

from hivegraph.memory.condense import MAX_STEP_CHARS, StepText, condense, key_steps, shorten
from hivegraph.models.tokens import TokenCounter

COUNT = TokenCounter().count


def steps(*contents: str) -> list[StepText]:
    return [StepText("agent", content, n) for n, content in enumerate(contents)]


def test_key_steps_drop_empty_steps_acknowledgements_and_repeats() -> None:
    kept = key_steps(steps("Search the index", "", "OK, thanks!", "search the index.", "Got it", "Finish: 42"))
    assert [(s.step, s.content) for s in kept] == [(0, "Search the index"), (5, "Finish: 42")]


def test_a_long_step_is_cut_at_a_sentence_end_and_marked() -> None:
    text = "First sentence is short. " + "Second sentence goes on and on " * 20 + "end."
    cut = shorten(text)
    assert cut == "First sentence is short.…" and len(cut) <= MAX_STEP_CHARS
    one = "word " * 100
    assert shorten(one).endswith("…") and len(shorten(one)) <= MAX_STEP_CHARS


def test_a_short_budget_keeps_the_first_and_last_steps_and_drops_the_middle_first() -> None:
    trajectory = steps(*(f"step number {n} looks at source {n}" for n in range(9)))
    whole = condense(trajectory, budget=10_000, count=COUNT)
    assert len(whole.steps) == 9 and whole.omitted == 0
    budget = whole.tokens // 2
    half = condense(trajectory, budget=budget, count=COUNT)
    kept = [s.step for s in half.steps]
    assert kept[0] == 0 and kept[-1] == 8 and 4 not in kept  # the middle goes first
    assert half.tokens <= budget and half.omitted == 9 - len(kept)
    assert "   ..." in half.render()


def test_a_budget_too_small_for_both_ends_keeps_what_fits_of_the_first_step() -> None:
    trajectory = steps("Search every archive of the national library for the founding charter", "Finish: 1820")
    tiny = condense(trajectory, budget=8, count=COUNT)
    [first] = tiny.steps
    assert first.step == 0 and first.content.endswith("…") and COUNT(tiny.render()) <= 8
    assert condense(trajectory, budget=0, count=COUNT).steps == []
