"""`hivegraph run`: run a team from a YAML spec or a Python factory, or resume a checkpointed run.

    hivegraph run team.yaml "Plan the offsite"            # prints each step as it finishes
    hivegraph run my_teams:research "Who wrote X?" --run-id r1
    hivegraph run team.yaml --resume r1                   # after a crash: continues where r1 stopped

Each step is printed as one JSON line (`{"node": ..., ...}`), then a summary
line with the run id; `--resume` prints the run's turns and what it wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from hivegraph.app import TeamRun, open_hivegraph
from hivegraph.config import HivegraphSettings
from hivegraph.errors import ConfigError
from hivegraph.teamspec import team_from


def add_run_parser(groups: Any) -> None:
    """Add `run` to the command line's subcommands (`groups`, an argparse subparsers action)."""
    run = groups.add_parser("run", help="run a team (YAML spec or module:factory) on a task, or resume a run")
    run.add_argument("team", help="a team spec (.yaml) or a factory 'package.module:function'")
    run.add_argument("task", nargs="?", help="the task (not with --resume)")
    run.add_argument("--run-id", help="id of the new run (default: a random one)")
    run.add_argument("--resume", metavar="RUN_ID", help="continue a checkpointed run of the team's scope")
    run.set_defaults(func=run_command)


def run_command(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    """Run or resume; the exit status is 0 when the run finished."""
    if (args.task is None) == (args.resume is None):
        raise ConfigError("give either a task or --resume RUN_ID")
    if args.resume is not None and args.run_id is not None:
        raise ConfigError("--run-id names a new run; --resume names the run to continue")
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    async with open_hivegraph(settings) as app:
        team = team_from(args.team, app)
        if args.resume is not None:
            _print_run(await team.resume(args.resume))
            return 0
        run_id = None
        async for step in team.stream(args.task, run_id=args.run_id):
            run_id = step.run_id
            print(json.dumps({"node": step.node, **_shown(step.update)}, default=str), flush=True)
        print(json.dumps({"run_id": run_id, "done": True}), flush=True)
    return 0


def _shown(update: dict[str, Any]) -> dict[str, Any]:
    """What a step changed, without the recalled memories (long; `memory search` shows them)."""
    return {key: value for key, value in update.items() if key != "recalled"}


def _print_run(run: TeamRun) -> None:
    for turn in run.turns:
        print(json.dumps({"node": turn["agent"], "turns": [turn]}, default=str), flush=True)
    print(json.dumps({"run_id": run.run_id, "done": True, "written": run.written, "refused": run.refused}), flush=True)
