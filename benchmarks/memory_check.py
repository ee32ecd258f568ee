"""The invariants a journal must keep under concurrent writers, checked after the fact.

`check_memory` reads the journal and the projections of a store that writers
(`benchmarks.memory_load`) used, against the `WriterLog` of what they were told:

- every op acknowledged is in the journal (`lost`), and no op id is there twice;
- sequence numbers are 1..n; replaying the entries in order, every entry closes
  exactly the open version of its record (so no version is closed twice, no
  acknowledged DELETE is overwritten by a concurrent UPDATE) and opens a newer
  version than any before it; an UPDATE or DELETE closes its `expected_version`;
- no deduplicated ADD opened a record while one with the same scope, kind and
  text hash was open (`duplicated`);
- the versions table agrees with the replay (at most one open version a record);
- `MemoryStore.verify` is clean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import AddOp, DeleteOp, MemoryRecord, Scope, UpdateOp

EXPECTED_REFUSALS = frozenset({"conflict", "not_found", "batch", "undo_conflict"})
"""Refusal codes that concurrency explains; any other is reported as unexpected."""


@dataclass
class WriterLog:
    """What writers were told: acknowledged op ids, refusals by code, and unexpected errors."""

    acked: list[UUID] = field(default_factory=list[UUID])
    refused: Counter[str] = field(default_factory=Counter[str])
    errors: list[str] = field(default_factory=list[str])

    def merge(self, other: WriterLog) -> None:
        """Add `other`'s records to this log."""
        self.acked += other.acked
        self.refused.update(other.refused)
        self.errors += other.errors


@dataclass
class LoadReport:
    """The counts of one or more runs, and every invariant violation found (empty when all held)."""

    trials: int = 0
    acked: int = 0
    lost: int = 0
    duplicated: int = 0
    conflicts: int = 0
    refused: dict[str, int] = field(default_factory=dict[str, int])
    errors: list[str] = field(default_factory=list[str])
    verify_clean: int = 0
    caught_up: int = 0
    """Trials whose reopened memory had journal entries to project (a writer died between journal and index)."""
    violations: list[str] = field(default_factory=list[str])
    wall_s: float = 0.0

    @property
    def unexpected_refusals(self) -> dict[str, int]:
        """Refusals that concurrency does not explain (scope, invalid)."""
        return {code: n for code, n in self.refused.items() if code not in EXPECTED_REFUSALS}

    def add(self, other: LoadReport) -> None:
        """Add `other`'s counts and findings to this report."""
        self.trials += other.trials
        self.acked += other.acked
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.conflicts += other.conflicts
        self.refused = dict(Counter(self.refused) + Counter(other.refused))
        self.errors += other.errors
        self.verify_clean += other.verify_clean
        self.caught_up += other.caught_up
        self.violations += other.violations
        self.wall_s += other.wall_s


class _Replay:
    """The journal's entries replayed in order, checking each against the state before it."""

    def __init__(self) -> None:
        self.open: dict[UUID, int] = {}
        self.latest: dict[UUID, int] = {}
        self.closed: set[tuple[UUID, int]] = set()
        self.by_text: dict[tuple[str, str, str], set[UUID]] = {}
        self.violations: list[str] = []
        self.duplicates = 0

    def apply(self, entry: JournalEntry) -> None:
        if entry.before is not None:
            self._close(entry, entry.before)
        if entry.after is not None:
            self._open(entry, entry.after)
        op = entry.op
        if isinstance(op, UpdateOp | DeleteOp) and entry.undo_of is None and op.expected_version is not None:
            closed = entry.before.version if entry.before is not None else None
            if closed != op.expected_version:
                self.violations.append(f"seq {entry.seq}: closed version {closed}, expected {op.expected_version}")

    def _close(self, entry: JournalEntry, before: MemoryRecord) -> None:
        key = (before.id, before.version)
        if key in self.closed:
            self.violations.append(f"seq {entry.seq}: version {before.version_id} closed twice")
        self.closed.add(key)
        if self.open.get(before.id) != before.version:
            now = self.open.get(before.id)
            self.violations.append(
                f"seq {entry.seq} ({entry.op.event}): closes {before.version_id}, but the open version is {now}"
            )
            return
        del self.open[before.id]
        self.by_text.get(_text_key(before), set()).discard(before.id)

    def _open(self, entry: JournalEntry, after: MemoryRecord) -> None:
        if after.id in self.open:
            self.violations.append(f"seq {entry.seq}: opens {after.version_id} while {self.open[after.id]} is open")
        if after.version <= self.latest.get(after.id, 0):
            self.violations.append(f"seq {entry.seq}: version {after.version_id} is not newer than the last")
        same = self.by_text.setdefault(_text_key(after), set())
        if isinstance(entry.op, AddOp) and entry.op.dedupe and entry.undo_of is None and same:
            self.duplicates += 1
            self.violations.append(f"seq {entry.seq}: ADD opened {after.id} beside current duplicate {sorted(same)}")
        same.add(after.id)
        self.open[after.id] = after.version
        self.latest[after.id] = max(after.version, self.latest.get(after.id, 0))


def _text_key(record: MemoryRecord) -> tuple[str, str, str]:
    return (record.scope.model_dump_json(exclude_none=True), record.kind, record.hash)


def _check_versions(versions: Sequence[MemoryRecord], replay: _Replay) -> list[str]:
    """The versions table against the replay: at most one open version a record, the same ones open."""
    problems: list[str] = []
    open_count = Counter(v.id for v in versions if v.is_current)
    problems += [f"record {rid} has {n} open versions" for rid, n in open_count.items() if n > 1]
    table_open = {v.id: v.version for v in versions if v.is_current}
    if table_open != replay.open:
        problems.append(f"open versions differ from the replay: {len(table_open)} in the table, {len(replay.open)}")
    opened = {(rid, n) for rid, latest in replay.latest.items() for n in range(1, latest + 1)}
    stray = {(v.id, v.version) for v in versions} - opened
    problems += [f"version {rid}:{n} in the table was never opened by an entry" for rid, n in sorted(stray)]
    return problems


async def check_memory(store: MemoryStore, log: WriterLog) -> LoadReport:
    """Check every invariant of the module docstring on `store` after writers whose log is `log`."""
    entries = await store.journal.read()
    replay = _Replay()
    for entry in entries:
        replay.apply(entry)
    violations = list(replay.violations)
    if [e.seq for e in entries] != list(range(1, len(entries) + 1)):
        violations.append("sequence numbers are not 1..n")
    journaled = Counter(e.op_id for e in entries)
    twice = [op_id for op_id, n in journaled.items() if n > 1]
    violations += [f"op {op_id} is journaled twice" for op_id in twice]
    lost = [op_id for op_id in set(log.acked) if op_id not in journaled]
    violations += [f"acknowledged op {op_id} is not in the journal" for op_id in lost]
    violations += _check_versions(await store.journal.records(scope=Scope(), all_versions=True), replay)
    verified = await store.verify()
    violations += [f"verify: {line}" for line in verified.lines()]
    return LoadReport(
        trials=1,
        acked=len(log.acked),
        lost=len(lost),
        duplicated=replay.duplicates + len(twice),
        conflicts=log.refused["conflict"] + log.refused["undo_conflict"],
        refused=dict(log.refused),
        errors=list(log.errors),
        verify_clean=int(verified.clean),
        violations=violations,
    )
