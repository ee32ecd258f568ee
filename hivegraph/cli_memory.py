"""`hivegraph memory`: search, show, history, undo, export, import, stats, graph, verify and rebuild.

Commands that read or change records act in the scope their options name
(`--user`, `--agent`, `--team`, `--run`); acting on every scope takes
`--all-scopes`, an operator's explicit choice. `verify`, `rebuild` and
`stats` look at the indexes as they are on disk, without catching them up.
Long work (export, import, rebuild) shows a progress bar on standard error
when that is a terminal; results go to standard output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar, cast
from uuid import UUID

from hivegraph.config import HivegraphSettings
from hivegraph.errors import ConfigError, InvalidInputError, MemoryStoreError, RecordNotFoundError
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.transfer import Progress
from hivegraph.memory.types import MemoryRecord, Scope
from hivegraph.memory.verify import VerifyReport

if TYPE_CHECKING:
    from hivegraph.app import Team
    from hivegraph.memory.facade import Memory

R = TypeVar("R")
Command = Callable[[argparse.Namespace, HivegraphSettings], int]
ScopedAction = Callable[[MemoryStore, argparse.Namespace, Scope], Awaitable[None]]
SCOPE_OPTIONS = ("user", "agent", "team", "run")


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
    return _with_memory(settings, lambda memory: action(memory.store), catch_up=catch_up)


def _with_memory(settings: HivegraphSettings, action: Callable[[Memory], Awaitable[R]], *, catch_up: bool = True) -> R:
    """Run `action` on the configured `Memory` (caught up with the journal unless `catch_up` is False)."""
    from hivegraph.memory.facade import open_memory

    async def run() -> R:
        async with open_memory(settings, catch_up=catch_up) as memory:
            return await action(memory)

    return asyncio.run(run())


@contextmanager
def _progress(what: str) -> Generator[Progress]:
    """A progress bar on standard error while the block runs (drawn only on a terminal); yields its update call."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    console = Console(stderr=True)
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Bar(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


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


async def _show(store: MemoryStore, args: argparse.Namespace, scope: Scope) -> None:
    """The record's current version (or, once deleted, its last), with its metadata and provenance."""
    record_id = _uuid(args.record_id, "record id")
    history = await store.history(record_id, scope=scope)
    if not history.versions:
        raise RecordNotFoundError(str(record_id), f"no memory record with id {str(record_id)!r} in scope {scope}")
    record = max(history.versions, key=lambda version: version.version)
    shown = record.model_dump(mode="json") | {"scope": record.scope.fields(), "current": record.is_current,
                                              "versions": len(history.versions)}  # fmt: skip
    print(json.dumps(shown | {"ops": len(history.entries)}, ensure_ascii=False))


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
    with _progress("re-deriving the indexes"):  # one call to the store: the bar says it is working, not how far
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


def _export(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    """Write the journal entries in the scope as JSON Lines (`hivegraph.memory.transfer`); the file appears whole."""
    from hivegraph.memory.transfer import export_journal

    scope, path = _scope(args), Path(args.path)
    partial = path.with_name(path.name + ".partial")

    async def export(memory: Memory) -> tuple[int, int]:
        with _open_for(partial, "w") as out, _progress("exporting") as progress:
            result = await export_journal(memory.journal, out, scope=scope, progress=progress)
        return result.entries, len([u for u in await memory.journal.unreadable() if u.where.startswith("op ")])

    try:
        entries, unreadable = _with_memory(settings, export, catch_up=False)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    print(f"exported {entries} journal entries to {path}")
    if unreadable:
        print(f"warning: {unreadable} unreadable journal entries were left out (see `hivegraph memory verify`)",
              file=sys.stderr)  # fmt: skip
    return 0


def _import(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    """Replay an export into this memory; checked whole first, idempotent (`hivegraph.memory.transfer`)."""
    from hivegraph.memory.transfer import import_entries, read_export

    path = Path(args.path)
    with _open_for(path, "r") as lines:
        entries = read_export(lines, name=str(path))

    async def replay(memory: Memory) -> tuple[int, int]:
        with _progress("importing") as progress:
            result = await import_entries(memory.journal, entries, max_text_chars=memory.store.max_text_chars,
                                          progress=progress, settle=memory.store.catch_up)  # fmt: skip
        return result.added, result.present

    added, present = _with_memory(settings, replay)
    print(f"imported {path}: {added} entries added, {present} already present")
    return 0


@contextmanager
def _open_for(path: Path, mode: str) -> Generator[TextIO]:
    """`path` opened as UTF-8 text; a file that cannot be opened, or is not UTF-8, is one error line.

    Raises:
        ConfigError: it cannot be opened.
        InvalidInputError: it is not UTF-8 text.

    """
    try:
        with path.open(mode, encoding="utf-8") as file:
            yield cast(TextIO, file)
    except OSError as exc:
        raise ConfigError(f"cannot {'read' if mode == 'r' else 'write'} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(str(path), "is not UTF-8 text") from None


def _stats(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    """Print the counts of `hivegraph.memory.stats` as one JSON object, the indexes as they are on disk."""
    from hivegraph.memory.stats import memory_stats

    scope = _scope(args)
    stats = _with_memory(settings, lambda memory: memory_stats(memory.store, memory.graph, scope=scope), catch_up=False)
    print(json.dumps(stats, indent=2, ensure_ascii=False))
    return 0


def _graph(args: argparse.Namespace, settings: HivegraphSettings) -> int:
    """Write the memory graph page (`--out`) and/or a team graph as Mermaid (`--team-spec ... --mermaid`)."""
    if args.out is None and args.mermaid is None:
        raise ConfigError("give --out PAGE.html (the memory graph), or --team-spec SPEC --mermaid FILE (a team graph)")
    if (args.team_spec is None) != (args.mermaid is None):
        raise ConfigError("--team-spec and --mermaid go together: the team to draw and the file to write")
    if args.limit < 1 or not 0 <= args.hops <= 4:
        raise ConfigError("--limit must be at least 1 and --hops between 0 and 4")
    scope = _scope(args) if args.out is not None else None
    if args.mermaid is not None:
        text = _team_mermaid_of(args.team_spec, settings)
        _write(Path(args.mermaid), text)
        print(f"wrote the team graph of {args.team_spec} to {args.mermaid}")
    if args.out is not None and scope is not None:
        _memory_graph_page(args, settings, scope)
    return 0


def _memory_graph_page(args: argparse.Namespace, settings: HivegraphSettings, scope: Scope) -> None:
    from hivegraph.memory.graph.page import GraphView, graph_view, render_page

    async def view(memory: Memory) -> GraphView:
        if memory.graph is None:
            raise ConfigError("no memory graph is configured: add `graph` to memory.projections")
        return await graph_view(memory.graph, scope=scope, limit=args.limit, focus=args.focus, hops=args.hops)

    shown = _with_memory(settings, view)
    named = str(scope) if scope.fields() else "every scope"
    _write(Path(args.out), render_page(shown, title=f"hivegraph memory graph: {named}"))
    total = sum(shown.totals.values())
    print(f"wrote {len(shown.nodes)} of {total} nodes and {len(shown.edges)} edges to {args.out}")


def team_mermaid(team: Team) -> str:
    """The team's LangGraph graph (its agents, recall and consolidate nodes, and routes) as a Mermaid flowchart."""
    return team.graph.get_graph().draw_mermaid()


def _team_mermaid_of(spec: str, settings: HivegraphSettings) -> str:
    """`team_mermaid` of a team named as `hivegraph run` names one (a YAML spec or `module:factory`)."""
    from hivegraph.app import open_hivegraph
    from hivegraph.teamspec import team_from

    async def draw() -> str:
        async with open_hivegraph(settings) as app:
            return team_mermaid(team_from(spec, app))

    return asyncio.run(draw())


def _write(path: Path, text: str) -> None:
    with _open_for(path, "w") as out:
        out.write(text)


def add_memory_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `memory` subcommands to `parser`."""
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
    show = memory.add_parser("show", help="a record's current version, metadata and provenance")
    show.add_argument("record_id")
    show.set_defaults(func=_scoped(_show))
    export = memory.add_parser("export", help="write the journal (ops, versions, history) as JSON Lines")
    export.add_argument("path")
    export.set_defaults(func=_export)
    stats = memory.add_parser("stats", help="count records by kind and scope, graph nodes and edges, index sizes")
    stats.set_defaults(func=_stats)
    graph = memory.add_parser("graph", help="draw the memory graph as one offline HTML page, or a team as Mermaid")
    graph.add_argument("--out", metavar="PAGE.html", help="write the memory graph of the scope here")
    graph.add_argument("--limit", type=int, default=300, help="most nodes drawn (default: 300)")
    graph.add_argument("--focus", action="append", default=[], metavar="NODE_ID",
                       help="draw only around this node (repeatable)")  # fmt: skip
    graph.add_argument("--hops", type=int, default=1, help="how far around --focus (default: 1)")
    graph.add_argument("--team-spec", metavar="SPEC", help="a team to draw (YAML spec or module:factory, as `run`)")
    graph.add_argument("--mermaid", metavar="FILE", help="write the --team-spec's graph here as a Mermaid flowchart")
    graph.set_defaults(func=_graph)
    for sub in (search, history, undo, show, export, stats, graph):
        for field in SCOPE_OPTIONS:
            sub.add_argument(f"--{field}", help=f"scope: {field} id")
        sub.add_argument("--all-scopes", action="store_true", help="act on every scope (an operator's choice)")
    import_ = memory.add_parser("import", help="replay an export into this memory (idempotent)")
    import_.add_argument("path")
    import_.set_defaults(func=_import)
    verify = memory.add_parser("verify", help="compare the stored indexes with the journal (exit 1 if they differ)")
    verify.add_argument("--repair", action="store_true", help="re-derive what differs")
    verify.set_defaults(func=_verify)
    rebuild = memory.add_parser("rebuild", help="re-derive the indexes from the journal")
    rebuild.set_defaults(func=_rebuild)
