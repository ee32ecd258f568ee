"""Two agents with memory: a planner and a writer, run twice against the same store.

The first run tells the team something about the user; the team's `consolidate`
node writes it to memory. The second run, on a new task, opens the store again
from disk and its `recall` node puts what the first run wrote in front of the
agents. Everything printed comes from the real run: the agents' replies, the
memories read (with the run that wrote them) and the memories written.

    python examples/quickstart.py            # uses hivegraph.yaml / HIVEGRAPH_* settings
    python examples/quickstart.py --data-dir /tmp/demo
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from hivegraph.agents import Agent
from hivegraph.app import TeamRun, open_hivegraph
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.memory.types import Scope
from hivegraph.models.base import ChatModel

TASKS = (
    "I am Ada, a marine biologist based in Lisbon, and I am allergic to peanuts. Plan a short team dinner for my lab.",
    "Suggest a dessert for the dinner we planned.",
)
SCOPE = Scope(user_id="ada", team_id="quickstart")


def team_members() -> list[Agent]:
    """The two agents of the example."""
    return [
        Agent(
            name="planner",
            instructions="You are a planner. Write a numbered plan of at most three short steps for the task. "
            "Respect what the memories say about the user.",
            max_tokens=96,
        ),
        Agent(
            name="writer",
            instructions="You are a writer. Turn the planner's steps into two friendly sentences for the user.",
            max_tokens=96,
        ),
    ]


def short(text: str, limit: int = 150) -> str:
    """One line of at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def report(number: int, run: TeamRun, out: list[str]) -> None:
    """Print what one run did."""
    out.append(f"=== run {number} ({run.run_id[:8]}): {run.task}")
    for agent, memories in run.recalled.items():
        for m in memories:
            origin = f"run {m['run_id'][:8]}" if m["run_id"] else "unknown run"
            out.append(f"  recall -> {agent}: [{m['kind']} {m['id'][:8]} from {origin}] {short(m['text'])}")
        if not memories:
            out.append(f"  recall -> {agent}: (nothing yet)")
    for turn in run.turns:
        out.append(f"  {turn['agent']}: {short(turn['content'])}")
    for w in run.written:
        out.append(f"  memory {w['event']:<6} [{w['kind']} {(w['record_id'] or '')[:8]}] {short(w['text'])}")
    out.extend(f"  refused: {r}" for r in run.refused)
    print("\n".join(out), flush=True)
    out.clear()


async def run_once(settings: HivegraphSettings, number: int, model: ChatModel | None = None) -> TeamRun:
    """Open the stores from settings, run the team on task `number`, close everything."""
    async with open_hivegraph(settings, model=model) as hg:
        team = hg.team(team_members(), scope=SCOPE)
        run = await team.run(TASKS[number - 1])
    report(number, run, [])
    return run


async def main(argv: list[str] | None = None, *, model: ChatModel | None = None) -> list[TeamRun]:
    """Run the two tasks, each with freshly opened stores, and check the second recalled the first."""
    parser = argparse.ArgumentParser(description="Two agents with memory, run twice against the same store.")
    parser.add_argument("--config", help="path of hivegraph.yaml")
    parser.add_argument("--data-dir", type=Path, help="where the embedded stores live")
    args = parser.parse_args(argv)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    settings = load_settings(args.config, **overrides)
    first = await run_once(settings, 1, model)
    second = await run_once(settings, 2, model)
    earlier = recalled_from_earlier_runs(second)
    print(f"=== the second run recalled {len(earlier)} memories written by earlier runs")
    return [first, second]


def recalled_from_earlier_runs(run: TeamRun) -> list[str]:
    """Ids of the memories `run` recalled that an earlier run wrote."""
    return sorted({m["id"] for ms in run.recalled.values() for m in ms if m["run_id"] not in (None, run.run_id)})


if __name__ == "__main__":
    runs = asyncio.run(main())
    sys.exit(0 if recalled_from_earlier_runs(runs[1]) else 1)
