"""Concurrent writers on one memory, and the invariants the journal must keep under them.

Writers (asyncio tasks, in one process or several) make a seeded random mix of
ADD (identical texts from a small pool, deduplicated), UPDATE and DELETE with
the `expected_version` of a fresh `get`, and undos of their own earlier ops,
over the few oldest current records, so they overlap heavily. Every
acknowledged op id is recorded (a worker process prints each one, flushed, as
it is acknowledged). `benchmarks.memory_check.check_memory` then checks the
journal's invariants against what the writers were told.

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
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from uuid import UUID

from pydantic import SecretStr

if __package__ in (None, ""):  # run as `python benchmarks/memory_load.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory_check import LoadReport, WriterLog, check_memory
from hivegraph.config import PostgresSettings
from hivegraph.errors import BackendUnavailableError, ConflictError, MemoryStoreError
from hivegraph.memory.journal import Journal, JournalEntry
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.chroma import ChromaSpace
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
        space = ChromaSpace.http(
            self.host, self.port, prefix=self.collection, embedder=HashEmbedder(), timeout_s=CHROMA_TIMEOUT_S
        )
        return MemoryStore(space, journal=self.open_journal())


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
        await store.vectors.reset()
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
