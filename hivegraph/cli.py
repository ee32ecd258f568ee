"""The `hivegraph` command: `config`, `model`, `memory` and `run`.

Every hivegraph error is printed as one line (`error: ...`) with exit status 2
for configuration mistakes and 1 for run-time failures; no traceback.

The `memory` group lives in `hivegraph.cli_memory`, `run` in `hivegraph.cli_run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import yaml

from hivegraph.cli_memory import add_memory_parser
from hivegraph.cli_run import add_run_parser
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import ConfigError, HivegraphError
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import Scope
from hivegraph.registry import check_backends

if TYPE_CHECKING:
    pass

R = TypeVar("R")
Command = Callable[[argparse.Namespace, HivegraphSettings], int]
ScopedAction = Callable[[MemoryStore, argparse.Namespace, Scope], Awaitable[None]]
SCOPE_OPTIONS = ("user", "agent", "team", "run")


def _config_show(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    check_backends(settings)
    print(yaml.safe_dump(settings.masked(), sort_keys=False), end="")
    return 0


def _model_prepare(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    from hivegraph.models.server import ModelServer

    path = ModelServer(settings.model.server).prepare(force=args.force)
    print(f"model server prepared in {path}")
    return 0


def _model_serve(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    from hivegraph.models.server import ModelServer

    handle = ModelServer(settings.model.server).start(port=args.port)
    print(handle.url)
    return 0


def _model_stop(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    from hivegraph.models.server import ModelServer

    stopped = ModelServer(settings.model.server).stop(port=args.port)
    print("stopped" if stopped else "no model server was running")
    return 0


def _model_status(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    from hivegraph.models.server import ModelServer

    handles = ModelServer(settings.model.server).status()
    for handle in handles:
        print(f"{handle.url} pid={handle.pid} log={handle.log_path}")
    if not handles:
        print("no model server is running")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivegraph", description="Multi-agent teams with long-term memory.")
    parser.add_argument("--config", help="path of hivegraph.yaml (default: $HIVEGRAPH_CONFIG or ./hivegraph.yaml)")
    groups = parser.add_subparsers(dest="group", required=True)

    config = groups.add_parser("config", help="inspect the configuration").add_subparsers(dest="cmd", required=True)
    config.add_parser("show", help="print the effective configuration, secrets masked").set_defaults(func=_config_show)

    model = groups.add_parser("model", help="the local model server").add_subparsers(dest="cmd", required=True)
    prepare = model.add_parser("prepare", help="create the server's environment and the bundled model")
    prepare.add_argument("--force", action="store_true", help="redo every step")
    prepare.set_defaults(func=_model_prepare)
    for name, func, text in (
        ("serve", _model_serve, "start the server and print its URL"),
        ("stop", _model_stop, "stop the server"),
    ):
        sub = model.add_parser(name, help=text)
        sub.add_argument("--port", type=int, help="default: model.server.port")
        sub.set_defaults(func=func)
    model.add_parser("status", help="list running servers").set_defaults(func=_model_status)

    add_memory_parser(groups.add_parser("memory", help="read, verify and repair memory"))
    add_run_parser(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    command: Command = args.func
    try:
        return command(args, load_settings(args.config))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except HivegraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
