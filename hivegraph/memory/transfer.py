"""Moving memory between stores: the journal as JSON Lines, and that file replayed into another journal.

An export is a header line and then one journal entry per line (the op, who did it
and when, the version it closed and the one it opened), oldest first:

    {"format": "hivegraph-journal", "version": 1, "scope": {"user_id": "ada"}, "last_seq": 42}
    {"seq": 1, "op_id": "...", "batch_id": "...", "at": "...", "actor": "...", "op": {"event": "ADD", ...}, ...}

An import replays those entries in order through the journal's own planning
(`Journal.submit` and `Journal.undo`), with the original time, actor, scope,
provenance and record ids, so the records, their versions, their history and the
undo entries come back as they were. Op ids and link records' ids are new ones
(the journal assigns them); every other record keeps its id.

Importing is idempotent: each original batch is submitted under the key
`import:<batch id>` (an entry already journaled under it is not written again),
an undo already replayed is recognised by the op it reverts, and an entry whose
original op id is already in the journal (importing an export into the memory
it came from) is passed over. The whole file is read, validated and replayed
into an empty in-memory journal before anything is written, so a malformed or
inconsistent line is reported with its number and nothing is applied.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO, cast
from uuid import UUID

from pydantic import ValidationError

from hivegraph.errors import InvalidInputError, MemoryStoreError
from hivegraph.memory.journal import Batch, Journal, JournalEntry, UndoRequest
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.types import AddOp, DeleteOp, MemoryOp, NoopOp, Scope, Source, UpdateOp

FORMAT = "hivegraph-journal"
FORMAT_VERSION = 1
PAGE = 500
"""Entries read (export) or replayed (import) between two progress reports."""

Progress = Callable[[int, int], None]
"""Called with (done, total) as work advances."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    entries: int
    last_seq: int
    """The journal's newest entry when the export began (later entries are left for the next export)."""


@dataclass
class ImportResult:
    """What an import did."""

    entries: int = 0
    """Entries in the file."""
    added: int = 0
    """Entries journaled by this import."""
    present: int = 0
    """Entries already in the journal (imported before, or the memory the file came from)."""


@dataclass
class _Unit:
    """Entries replayed together: one original batch, or one undo."""

    lines: list[int] = field(default_factory=list[int])
    entries: list[JournalEntry] = field(default_factory=list[JournalEntry])

    @property
    def undo_of(self) -> UUID | None:
        return self.entries[0].undo_of


@dataclass
class _Replay:
    """The ids of the original entries as the target journal knows them."""

    journal: Journal
    max_text_chars: int
    ops: dict[UUID, UUID] = field(default_factory=dict[UUID, UUID])
    records: dict[UUID, UUID] = field(default_factory=dict[UUID, UUID])
    result: ImportResult = field(default_factory=ImportResult)


def in_scope(entry: JournalEntry, scope: Scope) -> bool:
    """Whether an export in `scope` carries `entry`: the record it touched (or its batch's scope) is inside."""
    record = entry.after or entry.before
    return scope.contains(record.scope if record is not None else entry.scope)


async def export_journal(
    journal: Journal, out: TextIO, *, scope: Scope, progress: Progress | None = None
) -> ExportResult:
    """Write the header and every readable entry in `scope` up to the journal's newest, oldest first."""
    last = await journal.last_seq()
    out.write(json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "scope": scope.fields(), "last_seq": last}))
    out.write("\n")
    after, written = 0, 0
    while after < last:
        entries = [e for e in await journal.read(after=after, limit=PAGE) if e.seq <= last]
        for entry in entries:
            if in_scope(entry, scope):
                out.write(entry.model_dump_json() + "\n")
                written += 1
        after = entries[-1].seq if entries else after + PAGE  # a page of unreadable rows: step over it
        if progress is not None:
            progress(min(after, last), last)
    return ExportResult(entries=written, last_seq=last)


def read_export(lines: Iterable[str], *, name: str = "import") -> list[tuple[int, JournalEntry]]:
    """The entries of an export, with their line numbers (1 is the header).

    Raises:
        InvalidInputError: the header is missing or of another format, or a line is not a valid entry
            (the field says which line).

    """
    numbered = ((n, line.strip()) for n, line in enumerate(lines, start=1))
    filled = ((n, line) for n, line in numbered if line)
    first = next(filled, None)
    if first is None:
        raise InvalidInputError(name, f"is empty; expected a {FORMAT} export")
    _check_header(*first, name=name)
    entries: list[tuple[int, JournalEntry]] = []
    seen: set[UUID] = set()
    for n, line in filled:
        entry = _entry(line, where=f"{name} line {n}")
        if entry.op_id in seen:
            raise InvalidInputError(f"{name} line {n}", f"op {entry.op_id} appears twice")
        seen.add(entry.op_id)
        entries.append((n, entry))
    return entries


def _check_header(n: int, line: str, *, name: str) -> None:
    try:
        header: object = json.loads(line)
    except json.JSONDecodeError:
        header = None
    fields = cast(dict[str, object], header) if isinstance(header, dict) else {}
    if fields.get("format") != FORMAT:
        raise InvalidInputError(f"{name} line {n}", f"is not a {FORMAT} header; is this a `memory export` file?")
    if (version := fields.get("version")) != FORMAT_VERSION:
        raise InvalidInputError(f"{name} line {n}", f"format version {version!r}; this reads {FORMAT_VERSION}")


def _entry(line: str, *, where: str) -> JournalEntry:
    """One entry, validated as a write is (text, metadata and scope checks) and checked to be replayable."""
    try:
        entry = JournalEntry.model_validate_json(line)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"]) or "entry"
        raise InvalidInputError(where, f"not a journal entry ({loc}: {error['msg']})") from None
    problem = _shape_problem(entry)
    if problem is not None:
        raise InvalidInputError(where, problem)
    return entry


def _shape_problem(entry: JournalEntry) -> str | None:
    """Why the entry could not have been written by a journal, or None."""
    if entry.undo_of is not None:
        return None if entry.before is not None or entry.after is not None else "an undo that changed nothing"
    op, before, after = entry.op, entry.before, entry.after
    if isinstance(op, AddOp) and (after is None or before is not None):
        return "an ADD entry must open a version and close none"
    if isinstance(op, UpdateOp) and (after is None or before is None):
        return "an UPDATE entry must close a version and open the next"
    if isinstance(op, DeleteOp) and (before is None or after is not None):
        return "a DELETE entry must close a version and open none"
    return None


def _units(entries: Sequence[tuple[int, JournalEntry]]) -> list[_Unit]:
    """Consecutive entries of one original batch go together; each undo goes alone."""
    units: list[_Unit] = []
    for n, entry in entries:
        last = units[-1] if units else None
        if last is None or not _same_batch(last.entries[0], entry):
            last = _Unit()
            units.append(last)
        last.lines.append(n)
        last.entries.append(entry)
    return units


def _same_batch(first: JournalEntry, entry: JournalEntry) -> bool:
    plain = first.undo_of is None and entry.undo_of is None
    return plain and first.batch_id == entry.batch_id and first.scope == entry.scope


async def import_entries(
    journal: Journal,
    entries: Sequence[tuple[int, JournalEntry]],
    *,
    max_text_chars: int = 2000,
    progress: Progress | None = None,
    settle: Callable[[], Awaitable[object]] | None = None,
) -> ImportResult:
    """Replay `entries` (from `read_export`) into `journal`: checked on an empty journal first, then for real.

    `settle` runs after every few hundred entries and at the end (to bring the indexes up to date).

    Raises:
        InvalidInputError: an entry cannot be replayed in order (nothing is written then).
        MemoryStoreError: this journal refuses an entry the check accepted (its own records conflict with
            the file's); the entries before it stay imported, and importing the file again continues.

    """
    units = _units(entries)
    await _replay(_Replay(InMemoryJournal(), max_text_chars), units, dry_run=True)
    done = _Replay(journal, max_text_chars)
    await _replay(done, units, dry_run=False, progress=progress, settle=settle)
    done.result.entries = len(entries)
    return done.result


async def _replay(
    state: _Replay,
    units: Sequence[_Unit],
    *,
    dry_run: bool,
    progress: Progress | None = None,
    settle: Callable[[], Awaitable[object]] | None = None,
) -> None:
    total, done, since = sum(len(u.entries) for u in units), 0, 0
    for unit in units:
        try:
            await (_replay_undo(state, unit) if unit.undo_of is not None else _replay_batch(state, unit))
        except MemoryStoreError as exc:
            raise _refused(unit, exc, dry_run=dry_run, imported=state.result.added) from None
        done, since = done + len(unit.entries), since + len(unit.entries)
        if since >= PAGE and settle is not None:
            await settle()
            since = 0
        if progress is not None:
            progress(done, total)
    if settle is not None:
        await settle()


class _RefusedError(MemoryStoreError):
    """The journal refused the `index`-th entry of a unit."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index


def _refused(unit: _Unit, exc: MemoryStoreError, *, dry_run: bool, imported: int) -> MemoryStoreError:
    where = f"line {unit.lines[exc.index if isinstance(exc, _RefusedError) else 0]}"
    if dry_run:
        return InvalidInputError(where, f"cannot be replayed after the lines before it: {exc}")
    return MemoryStoreError(
        f"{where}: this memory refuses it ({exc}); {imported} entries before it were imported, and importing "
        "the file again continues from there"
    )


async def _replay_batch(state: _Replay, unit: _Unit) -> None:
    journal, first = state.journal, unit.entries[0]
    if await journal.entry(first.op_id) is not None:  # the memory this file came from
        state.result.present += len(unit.entries)
        return
    before = await journal.last_seq()
    source = next((e.after.source for e in unit.entries if e.after is not None), Source())
    ops: list[MemoryOp] = []
    for index, entry in enumerate(unit.entries):
        try:
            ops.append(_op(entry, state.records))
        except InvalidInputError as exc:
            raise _RefusedError(index, str(exc)) from None
    batch = Batch(
        ops=ops, scope=first.scope, actor=first.actor, source=source,
        at=first.at, idempotency_key=f"import:{first.batch_id}", max_text_chars=state.max_text_chars,
        batch_id=first.batch_id,
    )  # fmt: skip
    result = await journal.submit(batch)
    if result.refused:
        refused = result.refused[0]
        raise _RefusedError(next((i for i, op in enumerate(ops) if op is refused.op), 0), refused.reason)
    for original, stored in zip(unit.entries, result.applied, strict=True):
        _remember(state, original, stored, new=stored.seq > before)


async def _replay_undo(state: _Replay, unit: _Unit) -> None:
    journal, original = state.journal, unit.entries[0]
    assert original.undo_of is not None
    if await journal.entry(original.op_id) is not None:
        state.result.present += 1
        return
    target = state.ops.get(original.undo_of, original.undo_of)
    record = original.after or original.before
    assert record is not None
    for entry in await journal.entries_for(state.records.get(record.id, record.id)):
        if entry.undo_of == target:  # replayed by an earlier import
            _remember(state, original, entry, new=False)
            return
    stored = await journal.undo(UndoRequest(op_id=target, scope=original.scope, actor=original.actor, at=original.at))
    _remember(state, original, stored, new=True)


def _remember(state: _Replay, original: JournalEntry, stored: JournalEntry, *, new: bool) -> None:
    state.ops[original.op_id] = stored.op_id
    for old, now in ((original.after, stored.after), (original.before, stored.before)):
        if old is not None and now is not None:
            state.records[old.id] = now.id
    if new:
        state.result.added += 1
    else:
        state.result.present += 1


def _op(entry: JournalEntry, records: dict[UUID, UUID]) -> MemoryOp:
    """The op that makes the same change again: the same record id and exact text and metadata."""
    op, before, after = entry.op, entry.before, entry.after
    match op:
        case AddOp():
            assert after is not None
            return AddOp(text=after.text, kind=after.kind, metadata=dict(after.metadata), record_id=after.id,
                         dedupe=False)  # fmt: skip
        case UpdateOp():
            assert before is not None and after is not None
            return UpdateOp(record_id=records.get(op.record_id, op.record_id), text=after.text,
                            metadata=dict(after.metadata), expected_version=before.version)  # fmt: skip
        case DeleteOp():
            assert before is not None
            return DeleteOp(record_id=records.get(op.record_id, op.record_id), expected_version=before.version)
        case NoopOp():
            return NoopOp(record_id=records.get(op.record_id, op.record_id) if op.record_id else None)
        case _:
            return op
