"""The `hivegraph` command: `config`, `model`, `memory` and `run`.

Every hivegraph error is printed as one line (`error: ...`) with exit status 2
for configuration mistakes and 1 for run-time failures; no traceback.

Memory commands that read or change records act in the scope their options
name (`--user`, `--agent`, `--team`, `--run`); acting on every scope takes
`--all-scopes`, an operator's explicit choice. `memory verify` and `memory
rebuild` look at the indexes as they are on disk, without catching them up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import yaml

from hivegraph.cli_run import add_run_parser
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import ConfigError, HivegraphError, InvalidInputError, MemoryStoreError
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import MemoryRecord, Scope
from hivegraph.memory.verify import VerifyReport
from hivegraph.registry import check_backends

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


def _scope(args: argparse.Namespace) -> Scope:
    """The scope the options name: at least one of them, or `--all-scopes` for every scope.

    Raises:
        ConfigError: neither was given, both were, or a value cannot be stored.

    """
    given = {f"{name}_id": value for name in SCOPE_OPTIONS if (value := getattr(args, name)) is not None}
    if args.all_scopes and given:
        raise ConfigError("--all-scopes cannot be combined with --user, --agent, --team or --run")
    if not args.all_scopes and not given:
        raise ConfigError("give a scope (--user, --agent, --team or --run), or --all-scopes to act on every scope")
    try:
        return Scope(**given)
    except InvalidInputError as exc:
        raise ConfigError(f"invalid scope option: {exc}") from None


def _on_memory(
    settings: HivegraphSettings, action: Callable[[MemoryStore], Awaitable[R]], *, catch_up: bool = True
) -> R:
    """Run `action` on the configured memory store (caught up with the journal unless `catch_up` is False)."""
    from hivegraph.memory.facade import open_memory

    async def run() -> R:
        async with open_memory(settings, catch_up=catch_up) as memory:
            return await action(memory.store)

    return asyncio.run(run())


def _scoped(action: ScopedAction) -> Command:
    """A command that runs `action` on the memory store in the scope its options name."""

    def command(args: argparse.Namespace, settings: HivegraphSettings) -> int:
        scope = _scope(args)
        _on_memory(settings, lambda store: action(store, args, scope))
        return 0

    return command


def _record_json(record: MemoryRecord, **extra: object) -> str:
    fields = {"id": str(record.id), "version": record.version, "kind": record.kind, "scope": record.scope.fields(),
              "valid_from": record.valid_from.isoformat(),
              "valid_to": record.valid_to.isoformat() if record.valid_to else None, "text": record.text}  # fmt: skip
    return json.dumps(fields | extra)


async def _search(store: MemoryStore, args: argparse.Namespace, scope: Scope) -> None:
    for hit in await store.search(args.query, scope=scope, k=args.k):
        print(_record_json(hit.loaded, score=round(hit.score, 4)))


async def _history(store: MemoryStore, args: argparse.Namespace, scope: Scope) -> None:
    history = await store.history(_uuid(args.record_id, "record id"), scope=scope)
    for version in history.versions:
        print(_record_json(version))
    for entry in history.entries:
        undo_of = str(entry.undo_of) if entry.undo_of else None
        print(json.dumps({"op_id": str(entry.op_id), "seq": entry.seq, "event": entry.op.event, "actor": entry.actor,
                          "at": entry.at.isoformat(), "undo_of": undo_of}))  # fmt: skip


async def _undo(store: MemoryStore, args: argparse.Namespace, scope: Scope) -> None:
    entry = await store.undo(_uuid(args.op_id, "op id"), scope=scope, actor="cli")
    print(f"undone by op {entry.op_id} ({entry.op.event})")


def _verify(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    """Compare the stored indexes with the journal; exit status 1 when anything was found, even if repaired."""
    report = _on_memory(settings, lambda store: _verify_stored(store, repair=args.repair), catch_up=False)
    for line in report.lines():
        print(line)
    print(_summary(report))
    return 0 if report.clean else 1


async def _verify_stored(store: MemoryStore, *, repair: bool) -> VerifyReport:
    """Verify the projections kept on disk; those kept in memory are re-derived by every process that catches up."""
    report = VerifyReport(repaired=repair)
    names = [projection.name for projection in store.projections if projection.persistent]
    for name in names:
        found = await store.verify(repair=repair, only=name)
        report.divergences += found.divergences
        report.unreadable = found.unreadable
    if not names:
        report.unreadable = await store.journal.unreadable()
    return report


def _summary(report: VerifyReport) -> str:
    if report.clean:
        return "verify: clean"
    found = f"verify: {len(report.divergences)} divergences, {len(report.unreadable)} unreadable entries"
    if report.repaired and report.divergences:
        found += f"; repaired the {len(report.divergences)} divergences"
    if report.unreadable:
        found += "; unreadable entries stay as they are (reads leave them out)"
    return found


def _rebuild(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    """Re-derive the indexes from the journal; an embedded Chroma folder that cannot be opened is moved aside."""
    folder = _embedded_chroma(settings)
    if folder is not None and (problem := _cannot_open(settings, folder)) is not None:
        aside = _move_aside(folder)
        print(f"cannot open the Chroma folder {folder} ({problem}); moved it to {aside} and rebuilding into a new one")
    replayed = _on_memory(settings, lambda store: store.rebuild(), catch_up=False)
    print(f"re-derived the indexes from {replayed} journal entries")
    return 0


def _embedded_chroma(settings: HivegraphSettings) -> Path | None:
    """The folder of the embedded Chroma database, when that is the configured index."""
    chroma = settings.vector_store.chroma
    if settings.vector_store.backend != "chroma" or chroma.mode != "persistent":
        return None
    return settings.resolve(chroma.path, "chroma")


def _cannot_open(settings: HivegraphSettings, folder: Path) -> MemoryStoreError | None:
    """Why the embedded Chroma database cannot be opened, or None when it can.

    Raises:
        BackendUnavailableError: another process holds it (that is no reason to move it aside).

    """
    from hivegraph.memory.stores.chroma import ChromaSpace, discard_failed_embedded

    async def probe() -> None:
        space = ChromaSpace.from_settings(settings)
        try:
            for name in await space.names():
                await space.collection(name).count()
        finally:
            await space.aclose()

    try:
        asyncio.run(probe())
    except MemoryStoreError as exc:
        discard_failed_embedded(folder)
        return exc
    return None


def _move_aside(folder: Path) -> Path:
    """Rename `folder` to `<folder>.broken-<UTC time>` and create it again, empty; nothing is deleted.

    Raises:
        MemoryStoreError: the folder cannot be renamed or re-created.

    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside, n = folder.with_name(f"{folder.name}.broken-{stamp}"), 1
    while aside.exists():  # an earlier rebuild in the same second
        n += 1
        aside = folder.with_name(f"{folder.name}.broken-{stamp}-{n}")
    try:
        folder.rename(aside)
        folder.mkdir()
    except OSError as exc:
        raise MemoryStoreError(f"cannot move the Chroma folder {folder} aside to {aside}: {exc}") from exc
    return aside


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

    _memory_parser(groups.add_parser("memory", help="read, verify and repair memory"))
    add_run_parser(groups)
    return parser


def _memory_parser(parser: argparse.ArgumentParser) -> None:
    memory = parser.add_subparsers(dest="cmd", required=True)
    search = memory.add_parser("search", help="search current memories in a scope")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5)
    search.set_defaults(func=_scoped(_search))
    history = memory.add_parser("history", help="the versions of a record and the ops that made them")
    history.add_argument("record_id")
    history.set_defaults(func=_scoped(_history))
    undo = memory.add_parser("undo", help="revert one op (the revert is journaled too)")
    undo.add_argument("op_id")
    undo.set_defaults(func=_scoped(_undo))
    for sub in (search, history, undo):
        for field in SCOPE_OPTIONS:
            sub.add_argument(f"--{field}", help=f"scope: {field} id")
        sub.add_argument("--all-scopes", action="store_true", help="act on every scope (an operator's choice)")
    verify = memory.add_parser("verify", help="compare the stored indexes with the journal (exit 1 if they differ)")
    verify.add_argument("--repair", action="store_true", help="re-derive what differs")
    verify.set_defaults(func=_verify)
    rebuild = memory.add_parser("rebuild", help="re-derive the indexes from the journal")
    rebuild.set_defaults(func=_rebuild)


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
