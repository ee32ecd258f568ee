"""Concurrent writers on one memory, and the invariants the journal must keep under them.

Writers (asyncio tasks, in one process or several) make a seeded random mix of
ADD (identical texts from a small pool, deduplicated), UPDATE and DELETE with
the `expected_version` of a fresh `get`, and undos of their own earlier ops,
over the few oldest current records, so they overlap heavily. Every
acknowledged op id is recorded (a worker process prints each one, flushed, as
it is acknowledged). `check_memory` then reads the journal and the projections:

- every op acknowledged is in the journal (`lost`), and no op id is there twice;
- sequence numbers are 1..n; replaying the entries in order, every entry closes
  exactly the open version of its record (so no version is closed twice, no
  acknowledged DELETE is overwritten by a concurrent UPDATE) and opens a newer
  version than any before it; an UPDATE or DELETE closes its `expected_version`;
- no deduplicated ADD opened a record while one with the same scope, kind and
  text hash was open (`duplicated`);
- the versions table agrees with the replay (at most one open version a record);
- `MemoryStore.verify` is clean.

Usage (starts its own Chroma server unless `--chroma HOST:PORT` is given)::

    .venv/bin/python benchmarks/memory_load.py --writers 16 --processes 4 --ops 40
    .venv/bin/python benchmarks/memory_load.py --writers 16 --processes 1 --journal postgres --dsn "host=..."

`--writers` is the total; with `--processes N` each process runs `writers / N`
of them on its own `MemoryStore`. A worker process alone is
`python -m benchmarks.memory_load worker ...` (run from the repository root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from uuid import UUID

from pydantic import SecretStr

from hivegraph.config import PostgresSettings
from hivegraph.errors import BackendUnavailableError, ConflictError, MemoryStoreError
from hivegraph.memory.journal import Journal, JournalEntry
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.chroma import ChromaVectorIndex
from hivegraph.memory.types import AddOp, DeleteOp, MemoryOp, MemoryRecord, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]
SCOPE = Scope(team_id="load")
FACTS = (
    "the team meets on Mondays",
    "the build runs on two cores",
    "Ada owns the journal",
    "Bob reviews the Chroma code",
    "releases happen on Fridays",
    "the staging database is PostgreSQL",
    "lunch is at noon",
    "the office plant needs water",
)
HOT = 6
"""Writers change only the oldest few current records, so they collide."""
EXPECTED_REFUSALS = frozenset({"conflict", "not_found", "batch", "undo_conflict"})
"""Refusal codes that concurrency explains; any other is reported as unexpected."""
THINK_S = 0.01
"""Longest pause between reading a record and writing it (a decision being made)."""
CHROMA_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 60.0
"""How long worker processes may take to open the memory."""


@dataclass(frozen=True)
class Backend:
    """Where the memory lives: a collection on a Chroma server and a journal (`sqlite:PATH` or `postgres:DSN`)."""

    host: str
    port: int
    collection: str
    journal: str

    def args(self) -> list[str]:
        """The worker command-line options that open this backend."""
        return ["--chroma", f"{self.host}:{self.port}", "--collection", self.collection, "--journal", self.journal]

    def open_journal(self) -> Journal:
        """A new handle on the journal."""
        kind, _, where = self.journal.partition(":")
        if kind == "sqlite":
            from hivegraph.memory.journal_sqlite import SqliteJournal

            return SqliteJournal(where)
        if kind == "postgres":
            from hivegraph.memory.journal_postgres import PostgresJournal

            return PostgresJournal(PostgresSettings(dsn=SecretStr(where)))
        raise ValueError(f"journal must be sqlite:PATH or postgres:DSN, not {self.journal!r}")

    def store(self) -> MemoryStore:
        """A new `MemoryStore` on this backend (not opened: `await store.open()` catches it up)."""
        index = ChromaVectorIndex.http(
            self.host, self.port, collection=self.collection, embedder=HashEmbedder(), timeout_s=CHROMA_TIMEOUT_S
        )
        return MemoryStore(index, journal=self.open_journal())


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


Listener = Callable[[str, str], None]
"""Called with (`ack`, op id), (`refused`, code) or (`error`, message) as each happens."""


def _ignore(_kind: str, _value: str) -> None:
    return None


class Writer:
    """One writer: a seeded random mix of ADD, UPDATE, DELETE and undo on the shared records."""

    def __init__(self, store: MemoryStore, name: str, rng: random.Random, listener: Listener = _ignore) -> None:
        self.store = store
        self.name = name
        self.rng = rng
        self.listener = listener
        self.log = WriterLog()
        self._undoable: list[UUID] = []
        self._n = 0

    async def run(self, *, ops: int, deadline: float | None = None) -> WriterLog:
        """Make `ops` steps (or fewer, if `deadline` on the monotonic clock passes first)."""
        for _ in range(ops):
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                await self.step()
            except (MemoryStoreError, BackendUnavailableError) as exc:
                self._note("error", f"{type(exc).__name__}: {exc}")
        return self.log

    async def step(self) -> None:
        """One random op."""
        self._n += 1
        roll = self.rng.random()
        if roll < 0.35:
            await self.add()
        elif roll < 0.60:
            await self.update()
        elif roll < 0.80:
            await self.delete()
        else:
            await self.undo()

    async def add(self) -> None:
        """ADD a pool fact (now and then two in one batch, possibly the same one twice)."""
        count = 2 if self.rng.random() < 0.15 else 1
        await self._apply([AddOp(text=self.rng.choice(FACTS)) for _ in range(count)])

    async def update(self) -> None:
        """UPDATE one of the oldest records, at the version a fresh `get` saw (now and then at any version)."""
        fresh = await self._target()
        if fresh is not None:
            text = f"{fresh.text.split(' #')[0]} #{self.name}.{self._n}"
            await self._apply([UpdateOp(record_id=fresh.id, text=text, expected_version=self._expected(fresh))])

    async def delete(self) -> None:
        """DELETE one of the oldest records, at the version a fresh `get` saw (now and then at any version)."""
        fresh = await self._target()
        if fresh is not None:
            await self._apply([DeleteOp(record_id=fresh.id, expected_version=self._expected(fresh))])

    async def undo(self) -> None:
        """Undo one of this writer's recent ops (an ADD when it has none)."""
        if not self._undoable:
            await self.add()
            return
        op_id = self.rng.choice(self._undoable[-5:])
        try:
            entry = await self.store.undo(op_id, scope=SCOPE, actor=self.name)
        except ConflictError:
            self._note("refused", "undo_conflict")
            return
        self._ack(entry)

    async def _target(self) -> MemoryRecord | None:
        current = await self.store.list(scope=SCOPE)
        if not current:
            return None
        picked = self.rng.choice(current[:HOT])
        fresh = await self.store.get(picked.id, scope=SCOPE)
        await asyncio.sleep(self.rng.random() * THINK_S)  # a decision takes time: others write meanwhile
        return fresh

    def _expected(self, fresh: MemoryRecord) -> int | None:
        return None if self.rng.random() < 0.1 else fresh.version

    async def _apply(self, ops: Sequence[MemoryOp]) -> None:
        result = await self.store.apply(ops, scope=SCOPE, actor=self.name)
        for entry in result.applied:
            self._ack(entry)
        for refusal in result.refused:
            self._note("refused", refusal.code)

    def _ack(self, entry: JournalEntry) -> None:
        self._note("ack", str(entry.op_id))
        if entry.before is not None or entry.after is not None:
            self._undoable.append(entry.op_id)

    def _note(self, kind: str, value: str) -> None:
        if kind == "ack":
            self.log.acked.append(UUID(value))
        elif kind == "refused":
            self.log.refused[value] += 1
        else:
            self.log.errors.append(value)
        self.listener(kind, value)


async def run_writers(
    store: MemoryStore,
    *,
    writers: int,
    ops: int,
    seed: int,
    prefix: str = "w",
    duration_s: float | None = None,
    listener: Listener = _ignore,
) -> WriterLog:
    """Run `writers` concurrent writers on `store`, each making `ops` steps; their merged log."""
    deadline = time.monotonic() + duration_s if duration_s is not None else None
    crew = [Writer(store, f"{prefix}{n}", random.Random(f"{seed}:{prefix}{n}"), listener) for n in range(writers)]
    logs = await asyncio.gather(*(w.run(ops=ops, deadline=deadline) for w in crew))
    merged = WriterLog()
    for log in logs:
        merged.merge(log)
    return merged


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


@dataclass
class WorkerProcess:
    """A worker process, its stdout (one line per event, flushed) and its stderr, both files."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def events(self) -> list[tuple[str, str]]:
        """The (kind, value) lines it printed so far: `ready`, `ack`, `refused`, `error`, `done`."""
        lines = self.out.read_text(errors="replace").splitlines() if self.out.exists() else []
        return [(kind, value) for kind, _, value in (line.partition(" ") for line in lines)]

    def log(self) -> WriterLog:
        """What its writers were told, as far as it printed."""
        log = WriterLog()
        for kind, value in self.events():
            if kind == "ack":
                log.acked.append(UUID(value))
            elif kind == "refused":
                log.refused[value] += 1
            elif kind == "error":
                log.errors.append(value)
        return log

    def stderr_tail(self) -> str:
        """The end of its stderr, for failure messages."""
        return self.err.read_text(errors="replace")[-3000:] if self.err.exists() else ""


def start_worker(
    backend: Backend,
    folder: Path,
    *,
    name: str,
    writers: int,
    ops: int,
    seed: int,
    duration_s: float | None = None,
    gate: Path | None = None,
) -> WorkerProcess:
    """Start `python -m benchmarks.memory_load worker` (from the repository root) with its output in `folder`.

    With a `gate`, the worker opens the memory, prints `ready` and waits for that file to exist before writing.
    """
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    command = [
        sys.executable, "-m", "benchmarks.memory_load", "worker", *backend.args(), "--writers", str(writers),
        "--ops", str(ops), "--seed", str(seed), "--prefix", f"{name}-w",
        *(["--duration", str(duration_s)] if duration_s is not None else []),
        *(["--gate", str(gate)] if gate is not None else []),
    ]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=stderr)
    return WorkerProcess(process, out, err)


def stop(workers: Sequence[WorkerProcess]) -> None:
    """Kill the workers still running and reap every one."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait()


async def wait_ready(workers: Sequence[WorkerProcess], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until every worker printed `ready` (it has opened the memory).

    Raises:
        RuntimeError: a worker exited first, or `timeout_s` passed.

    """
    deadline = time.monotonic() + timeout_s
    while not all(("ready", "") in worker.events() for worker in workers):
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.process.returncode}:\n{worker.stderr_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not ready after {timeout_s} s")
        await asyncio.sleep(0.05)


async def start_together(
    backend: Backend,
    folder: Path,
    names: Sequence[str],
    *,
    writers: int,
    ops: int,
    seed: int,
    duration_s: float | None = None,
) -> list[WorkerProcess]:
    """Start one worker per name, wait until all have opened the memory, then let them all write at once.

    The workers create the journal together (a fresh file or database), and write at the same moment, so
    that they collide as much as they can.
    """
    gate = folder / "go"
    workers = [
        start_worker(backend, folder, name=name, writers=writers, ops=ops, seed=seed + n, duration_s=duration_s,
                     gate=gate)
        for n, name in enumerate(names)
    ]  # fmt: skip
    try:
        await wait_ready(workers)
    except BaseException:
        stop(workers)
        raise
    gate.touch()
    return workers


async def run_processes(
    backend: Backend, folder: Path, *, processes: int, writers: int, ops: int, seed: int, timeout_s: float = 600
) -> WriterLog:
    """Run `processes` worker processes of `writers` writers each to completion; their merged log.

    Raises:
        RuntimeError: a worker failed or did not finish within `timeout_s`.

    """
    names = [f"p{n}" for n in range(processes)]
    workers = await start_together(backend, folder, names, writers=writers, ops=ops, seed=seed)
    try:
        for worker in workers:
            await asyncio.to_thread(worker.process.wait, timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"a worker did not finish within {timeout_s} s") from exc
    finally:
        stop(workers)
    log = WriterLog()
    for worker in workers:
        if worker.process.returncode != 0 or ("done", "") not in worker.events():
            raise RuntimeError(f"worker exited with {worker.process.returncode}:\n{worker.stderr_tail()}")
        log.merge(worker.log())
    return log


def _emit(kind: str, value: str) -> None:
    print(kind, value, flush=True)


async def worker_main(args: argparse.Namespace) -> None:
    """A worker process: open the memory, print `ready`, run the writers (printing each event), print `done`."""
    host, _, port = str(args.chroma).rpartition(":")
    store = await Backend(host, int(port), args.collection, args.journal).store().open()
    _emit("ready", "")
    try:
        await _wait_for(args.gate)
        await run_writers(
            store, writers=args.writers, ops=args.ops, seed=args.seed, prefix=args.prefix,
            duration_s=args.duration, listener=_emit,
        )  # fmt: skip
    finally:
        await store.aclose()
    _emit("done", "")


async def _wait_for(gate: str | None, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while gate is not None and not Path(gate).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"gate {gate} did not open within {timeout_s} s")
        await asyncio.sleep(0.02)


async def load_trial(
    host: str, port: int, folder: Path, *, journal: str | None, writers: int, processes: int, ops: int, seed: int
) -> LoadReport:
    """One run of `writers` writers (in `processes` processes) on a fresh collection, checked afterwards."""
    backend = Backend(host, port, f"load-{uuid.uuid4().hex}", journal or f"sqlite:{folder / 'journal.sqlite'}")
    started = time.perf_counter()
    if processes == 1:
        store = await backend.store().open()
        log = await run_writers(store, writers=writers, ops=ops, seed=seed)
    else:
        log = await run_processes(backend, folder, processes=processes, writers=writers // processes, ops=ops,
                                  seed=seed)  # fmt: skip
        store = backend.store()
    wall_s = time.perf_counter() - started
    try:
        await store.catch_up()
        report = await check_memory(store, log)
    finally:
        await store.index.drop()
        await store.aclose()
    report.wall_s = wall_s
    return report


@contextmanager
def chroma_address(address: str | None, folder: Path) -> Generator[tuple[str, int]]:
    """`address` (HOST:PORT) if given, else a `chroma run` server started in `folder` for the duration."""
    if address:
        host, _, port = address.rpartition(":")
        yield host, int(port)
        return
    if str(ROOT) not in sys.path:  # run as `python benchmarks/memory_load.py`
        sys.path.insert(0, str(ROOT))
    from tests.fixtures.chroma_server import free_port, running_chroma_server

    with running_chroma_server(folder / "chroma", free_port()) as server:
        yield server.host, server.port


TABLE_COLUMNS = ("trials", "ops acked", "lost", "duplicated", "conflicts", "other refusals", "verify clean",
                 "caught up", "violations", "errors", "wall s")  # fmt: skip


def table(label: str, report: LoadReport) -> str:
    """`report` as a two-line table headed by `label`."""
    other = sum(n for code, n in report.refused.items() if code not in ("conflict", "undo_conflict"))
    values = (report.trials, report.acked, report.lost, report.duplicated, report.conflicts, other,
              f"{report.verify_clean}/{report.trials}", report.caught_up, len(report.violations), len(report.errors),
              f"{report.wall_s:.1f}")  # fmt: skip
    widths = [max(len(c), len(str(v))) for c, v in zip(TABLE_COLUMNS, values, strict=True)]
    head = " | ".join(c.rjust(w) for c, w in zip(TABLE_COLUMNS, widths, strict=True))
    row = " | ".join(str(v).rjust(w) for v, w in zip(values, widths, strict=True))
    return f"{label}\n{head}\n{row}"


def write_json(path: str, report: LoadReport) -> None:
    """Write `report` (with its refusal codes and findings) as JSON."""
    Path(path).write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")


async def bench_main(args: argparse.Namespace) -> LoadReport:
    """Run `--trials` load trials and print their table."""
    total = LoadReport()
    journal = f"postgres:{args.dsn}" if args.journal == "postgres" else None
    with tempfile.TemporaryDirectory(prefix="hivegraph-load-") as tmp, chroma_address(args.chroma, Path(tmp)) as at:
        for trial in range(args.trials):
            folder = Path(tmp) / f"trial-{trial}"
            folder.mkdir()
            total.add(await load_trial(*at, folder, journal=journal, writers=args.writers,
                                       processes=args.processes, ops=args.ops, seed=args.seed + trial))  # fmt: skip
    label = f"{args.writers} writers in {args.processes} process(es), {args.ops} steps each, journal {args.journal}"
    print(table(label, total))
    for line in [*total.violations, *total.errors][:20]:
        print("  ", line)
    if args.json:
        write_json(args.json, total)
    return total


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Options of the benchmark, or of a `worker` process when the first argument is `worker`."""
    if argv and argv[0] == "worker":
        worker = argparse.ArgumentParser(prog="memory_load worker", description="One worker process.")
        worker.add_argument("--chroma", required=True, help="HOST:PORT of the Chroma server")
        worker.add_argument("--collection", required=True)
        worker.add_argument("--journal", required=True, help="sqlite:PATH or postgres:DSN")
        worker.add_argument("--writers", type=int, default=4)
        worker.add_argument("--ops", type=int, default=50, help="steps per writer")
        worker.add_argument("--seed", type=int, default=0)
        worker.add_argument("--prefix", default="w", help="writer names start with this (seeds depend on it)")
        worker.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
        worker.add_argument("--gate", default=None, help="after opening, wait for this file to exist")
        return worker.parse_args(argv[1:], namespace=argparse.Namespace(command="worker"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=16, help="writers in all")
    parser.add_argument("--processes", type=int, default=1, help="processes the writers are split over")
    parser.add_argument("--ops", type=int, default=40, help="steps per writer")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--journal", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--dsn", default=None, help="PostgreSQL DSN (with --journal postgres)")
    parser.add_argument("--chroma", default=None, help="HOST:PORT of a Chroma server (default: start one)")
    parser.add_argument("--json", default=None, help="also write the report as JSON to this path")
    args = parser.parse_args(argv, namespace=argparse.Namespace(command="bench"))
    if args.journal == "postgres" and not args.dsn:
        parser.error("--journal postgres needs --dsn")
    if args.journal == "postgres" and args.trials > 1:
        parser.error("--journal postgres runs one trial (each needs a fresh database)")
    if args.writers % args.processes:
        parser.error("--writers must be a multiple of --processes")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "worker":
        asyncio.run(worker_main(args))
        return
    report = asyncio.run(bench_main(args))
    sys.exit(1 if report.violations or report.lost or report.duplicated else 0)


if __name__ == "__main__":
    main()
