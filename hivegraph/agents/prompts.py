"""Prompt texts of the built-in agents."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from hivegraph.models.base import Message, assistant, system, user

EXTRACT_FACTS = """\
You pick out the facts worth remembering from a conversation, for a long-term memory.
Worth remembering: facts about the user (who they are, where they live and work, the people and \
animals in their life, their health, what they own, their plans), their likes, dislikes and \
preferences, and decisions the team took. A change or a correction of such a fact is worth \
remembering too (write the new state), and so is a request to forget something (write what they \
asked to forget).
Not worth remembering: greetings, thanks, questions, and requests that only matter right now.
Write each fact as one short sentence that stands on its own: say who it is about ("The user ...", \
"The user's brother ..."), keep the details (names, places, times) and leave out the rest. Take \
facts only from the conversation you are given.
Return at most {max_facts} facts, or an empty list when nothing is worth remembering.
Reply with JSON only: {{"facts": ["...", "..."]}}"""


@dataclass(frozen=True)
class ExtractionExample:
    """A worked example for fact extraction: a transcript and the facts it holds."""

    transcript: str
    facts: tuple[str, ...]

    def reply(self) -> str:
        """The reply the model should give, as JSON."""
        return json.dumps({"facts": list(self.facts)})


EXTRACTION_EXAMPLES = (
    ExtractionExample("user: How many teaspoons are in a tablespoon?", ()),
    ExtractionExample(
        "user: I paddle my kayak on the canal most weekends.",
        ("The user paddles a kayak on the canal most weekends",),
    ),
    ExtractionExample("user: Great, thank you so much!", ()),
    ExtractionExample(
        "user: I was wrong before: my squash racket is yellow, not orange.",
        ("The user's squash racket is yellow",),
    ),
    ExtractionExample(
        "user: Find me a hotel near the harbour for Friday; I never sleep well on a soft mattress.",
        ("The user does not sleep well on a soft mattress",),
    ),
)
"""Worked examples shown before the conversation: a question and thanks (no fact), a plain fact, a
correction, and a request that also reveals a lasting fact. Their words are deliberately unusual, so
a fact copied from them instead of taken from the conversation is easy to spot. Chosen on
benchmarks/fact_extraction.py, which counts such copies; with the bundled small model the order of
the examples matters a lot (some orders make it reply with no fact at all)."""


def extraction_prompt(
    transcript: str, *, max_facts: int, examples: Sequence[ExtractionExample] = EXTRACTION_EXAMPLES
) -> list[Message]:
    """The messages of an extraction request: instructions, worked examples as earlier turns, the transcript."""
    shown = [turn for example in examples for turn in (user(example.transcript), assistant(example.reply()))]
    return [system(EXTRACT_FACTS.format(max_facts=max_facts)), *shown, user(transcript)]


DECIDE_OPS = """\
You are the memory manager. You keep a store of memories current.
For each new fact choose one operation:
- ADD: the fact is new; give its text.
- UPDATE: the fact changes or refines an existing memory; give that memory's id and the new text.
- DELETE: the fact contradicts an existing memory that is no longer true; give its id.
- NOOP: the fact is already known; give the id of the memory that holds it.
Use only ids from the list of existing memories. Reply with JSON only: \
{"ops": [{"event": "ADD", "id": null, "text": "..."}]}"""


def render_decision_request(existing: list[tuple[int, str]], facts: list[str]) -> str:
    """The user message of a decision: existing memories by alias, then the new facts."""
    memories = "\n".join(f"[{alias}] {text}" for alias, text in existing) or "(none)"
    new = "\n".join(f"- {fact}" for fact in facts)
    return f"Existing memories:\n{memories}\n\nNew facts:\n{new}"
