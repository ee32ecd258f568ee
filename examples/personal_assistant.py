"""A personal assistant that keeps what it knows about its user current, over several sessions.

Each session opens the stores afresh from disk (as a new process would) and
runs a one-agent team on each user message. After every message the team's
`consolidate` node lets the memory manager extract facts and decide, for each,
ADD, UPDATE, DELETE or NOOP against the nearest stored facts. The script
prints those decisions as they happen, then each fact's history (every
version and the op that made it: nothing is erased), then asks questions in a
later session and prints the facts recalled for each and the answer.

The messages state facts, change a preference, retract a fact and ask to
forget one, so the history shows all three kinds of change when the model
makes them; with the bundled model it may not (what it did is printed, not assumed).

    python examples/personal_assistant.py
    python examples/personal_assistant.py --data-dir /tmp/assistant
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from hivegraph.agents import Agent, MemoryPolicy
from hivegraph.app import TeamRun, open_hivegraph
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import UnexpectedModelOutput
from hivegraph.memory.types import Scope
from hivegraph.models.base import ChatModel

SCOPE = Scope(user_id="maya", team_id="assistant")
SESSIONS: tuple[tuple[str, ...], ...] = (
    ("Hi! I'm Maya, I live in Porto and I work as a nurse at the city hospital.",
     "I love spicy food, Thai curries are my favourite."),
    ("Big news: I moved to Lisbon last week.",
     "I don't eat spicy food any more, mild dishes suit me better now."),
    ("Please forget that I work as a nurse, I'd rather you didn't keep that.",
     "By the way, my sister Ines is visiting in June."),
)  # fmt: skip
QUESTIONS = ("Which city should you look for restaurants in?", "Should you book a Thai curry place for me?",
             "Who is visiting me in June?")  # fmt: skip


def assistant() -> Agent:
    """The one agent: answers from the facts it recalls."""
    return Agent(
        name="assistant", max_tokens=96, memory=MemoryPolicy(read_kinds=("semantic",), k=5, gmemory=False),
        instructions="You are Maya's personal assistant. Answer in one or two sentences, using what the "
        "memories say about Maya; if they do not say, say you do not know.",
    )  # fmt: skip


@dataclass
class Journey:
    """What the script saw: the decisions of every message, the fact ids, and the answers."""

    decisions: list[tuple[str, str, str]] = field(default_factory=list[tuple[str, str, str]])
    """(message, event, fact text) for each ADD, UPDATE or DELETE."""
    fact_ids: list[str] = field(default_factory=list[str])
    answers: list[tuple[str, list[str], str]] = field(default_factory=list[tuple[str, list[str], str]])
    """(question, facts recalled, answer)."""


def decisions_of(run: TeamRun) -> list[tuple[str, str]]:
    """The memory manager's applied decisions in `run`: (event, fact text); DELETE shows the fact deleted."""
    return [(w["event"], w["text"]) for w in run.written if w["kind"] == "semantic"]


async def session(settings: HivegraphSettings, number: int, messages: tuple[str, ...], journey: Journey,
                  model: ChatModel | None) -> None:  # fmt: skip
    """Open the stores, run the assistant on each message, print the decisions, close."""
    async with open_hivegraph(settings, model=model) as hg:
        team = hg.team([assistant()], scope=SCOPE)
        print(f"=== session {number}")
        for message in messages:
            try:
                run = await team.run(message)
            except UnexpectedModelOutput as exc:  # printed, not hidden: the turn is lost, the sessions go on
                print(f"user: {message}\n  the run stopped: {exc}")
                continue
            print(f"user: {message}\nassistant: {run.turns[-1]['content']}")
            for event, text in decisions_of(run):
                print(f"  memory {event:<6} {text}")
                journey.decisions.append((message, event, text))
            journey.fact_ids += [w["record_id"] for w in run.written if w["kind"] == "semantic" and w["record_id"]]
            if not decisions_of(run):
                print("  memory (no change)")


async def histories(settings: HivegraphSettings, journey: Journey, model: ChatModel | None) -> None:
    """Print every fact the sessions touched, with its versions and the ops that made them."""
    async with open_hivegraph(settings, model=model) as hg:
        print("=== fact histories")
        for fact_id in dict.fromkeys(journey.fact_ids):
            history = await hg.memory.history(UUID(fact_id), scope=SCOPE)
            current = history.versions[-1].valid_to is None if history.versions else False
            print(f"fact {fact_id[:8]} ({'current' if current else 'no longer current'})")
            for entry in history.entries:
                after = entry.after.text if entry.after is not None else "(deleted)"
                print(f"  {entry.at:%Y-%m-%d %H:%M:%S} {entry.op.event:<6} by {entry.actor}: {after}")


async def ask(settings: HivegraphSettings, journey: Journey, model: ChatModel | None) -> None:
    """A later session: each question with the facts recalled for it and the answer."""
    async with open_hivegraph(settings, model=model) as hg:
        team = hg.team([assistant()], scope=SCOPE)
        print("=== a later session")
        for question in QUESTIONS:
            try:
                run = await team.run(question)
            except UnexpectedModelOutput as exc:
                print(f"user: {question}\n  the run stopped: {exc}")
                continue
            recalled = [m["text"] for m in run.recalled.get("assistant", [])]
            print(f"user: {question}\n  recalled: {recalled}\nassistant: {run.turns[-1]['content']}")
            journey.answers.append((question, recalled, run.turns[-1]["content"]))


async def main(argv: list[str] | None = None, *, model: ChatModel | None = None) -> Journey:
    """Run the sessions, print the histories, then ask the questions."""
    parser = argparse.ArgumentParser(description="A personal assistant whose facts stay current across sessions.")
    parser.add_argument("--config", help="path of hivegraph.yaml")
    parser.add_argument("--data-dir", type=Path, help="where the embedded stores live")
    args = parser.parse_args(argv)
    settings = load_settings(args.config, **({"data_dir": args.data_dir} if args.data_dir else {}))
    settings = settings.model_copy(update={  # an assistant keeps facts about its user: from what the user says
        "gmemory": settings.gmemory.model_copy(update={"enabled": False}),
        "memory": settings.memory.model_copy(update={"facts_from": "user"}),
    })  # fmt: skip
    journey = Journey()
    for number, messages in enumerate(SESSIONS, 1):
        await session(settings, number, messages, journey, model)
    await histories(settings, journey, model)
    await ask(settings, journey, model)
    return journey


if __name__ == "__main__":
    asyncio.run(main())
