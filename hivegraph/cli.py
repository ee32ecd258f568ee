"""The `hivegraph` command: `config`, `model`, `memory` and `run`.

Every hivegraph error is printed as one line (`error: ...`) with exit status 2
for configuration mistakes and 1 for run-time failures; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

import yaml

from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import ConfigError, HivegraphError
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import MemoryRecord, Scope
from hivegraph.registry import check_backends

Command = Callable[[argparse.Namespace, HivegraphSettings], int]


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


def _scope(args: argparse.Namespace) -> Scope:
    return Scope(user_id=args.user, agent_id=args.agent, team_id=args.team, run_id=args.run)


def _memory(action: Callable[[MemoryStore, argparse.Namespace], Awaitable[None]]) -> Command:
    """A command that runs `action` on the configured memory store."""

    def command(args: argparse.Namespace, settings: HivegraphSettings) -> int:
        from hivegraph.app import open_memory

        async def run() -> None:
            async with open_memory(settings) as store:
                await action(store, args)

        asyncio.run(run())
        return 0

    return command


def _record_json(record: MemoryRecord, **extra: object) -> str:
    fields = {"id": str(record.id), "version": record.version, "kind": record.kind, "scope": record.scope.fields(),
              "valid_from": record.valid_from.isoformat(),
              "valid_to": record.valid_to.isoformat() if record.valid_to else None, "text": record.text}  # fmt: skip
    return json.dumps(fields | extra)


async def _search(store: MemoryStore, args: argparse.Namespace) -> None:
    for hit in await store.search(args.query, scope=_scope(args), k=args.k):
        print(_record_json(hit.record, score=round(hit.score, 4)))


async def _history(store: MemoryStore, args: argparse.Namespace) -> None:
    history = await store.history(_uuid(args.record_id, "record id"), scope=_scope(args))
    for version in history.versions:
        print(_record_json(version))
    for entry in history.entries:
        undo_of = str(entry.undo_of) if entry.undo_of else None
        print(json.dumps({"op_id": str(entry.op_id), "seq": entry.seq, "event": entry.op.event, "actor": entry.actor,
                          "at": entry.at.isoformat(), "undo_of": undo_of}))  # fmt: skip


async def _undo(store: MemoryStore, args: argparse.Namespace) -> None:
    entry = await store.undo(_uuid(args.op_id, "op id"), scope=_scope(args), actor="cli")
    print(f"undone by op {entry.op_id} ({entry.op.event})")


async def _rebuild(store: MemoryStore, args: argparse.Namespace) -> None:
    replayed = await store.rebuild()
    print(f"re-derived the indexes from {replayed} journal entries")


def _uuid(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a valid {what}") from None


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

    memory = groups.add_parser("memory", help="read and repair memory").add_subparsers(dest="cmd", required=True)
    search = memory.add_parser("search", help="search current memories in a scope")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5)
    search.set_defaults(func=_memory(_search))
    history = memory.add_parser("history", help="the versions of a record and the ops that made them")
    history.add_argument("record_id")
    history.set_defaults(func=_memory(_history))
    undo = memory.add_parser("undo", help="revert one op (the revert is journaled too)")
    undo.add_argument("op_id")
    undo.set_defaults(func=_memory(_undo))
    rebuild = memory.add_parser("rebuild", help="re-derive the indexes from the journal")
    rebuild.set_defaults(func=_memory(_rebuild))
    for sub in (search, history, undo):
        for field in ("user", "agent", "team", "run"):
            sub.add_argument(f"--{field}", help=f"scope: {field} id")
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
