"""Kill -9 trials: writer processes SIGKILLed at random moments lose and double nothing they acknowledged.

Each trial starts 2 or 3 worker processes (`benchmarks.memory_load worker`, two
writers each) on a new SQLite journal and a new collection of one Chroma
server. Every worker prints each op id as it is acknowledged (flushed). Once
all have opened the memory, each is SIGKILLed at its own random moment
(seeded). The memory is then reopened here and checked
(`benchmarks.memory_load.check_memory`): every op id printed as acknowledged
is in the journal, nothing is duplicated, the journal invariants hold, and
`verify` is clean once the projections caught up (and again after `open`).

Usage (starts its own Chroma server unless `--chroma HOST:PORT` is given)::

    .venv/bin/python benchmarks/faults.py --trials 100 [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/faults.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory_load import (
    Backend,
    LoadReport,
    WorkerProcess,
    WriterLog,
    check_memory,
    chroma_address,
    start_together,
    stop,
    table,
    write_json,
)

WRITERS_PER_PROCESS = 2
KILL_WITHIN_S = (0.05, 1.5)
"""Each worker is killed this many seconds (uniformly at random) after all have opened the memory and started."""
RUN_CAP_S = 60.0
"""A worker that is never killed stops writing after this long (it should be killed long before)."""
UNBOUNDED_OPS = 1_000_000


async def kill_trial(host: str, port: int, folder: Path, *, seed: int) -> LoadReport:
    """One trial on a new journal in `folder` and a new collection; the collection is dropped afterwards."""
    rng = random.Random(f"kill:{seed}")
    backend = Backend(host, port, f"kill-{uuid.uuid4().hex}", f"sqlite:{folder / 'journal.sqlite'}")
    names = [f"k{n}" for n in range(rng.choice((2, 3)))]
    started = time.perf_counter()
    workers = await start_together(backend, folder, names, writers=WRITERS_PER_PROCESS, ops=UNBOUNDED_OPS,
                                   seed=seed * 10, duration_s=RUN_CAP_S)  # fmt: skip
    try:
        await kill_at_random(workers, rng)
    finally:
        stop(workers)
    log = WriterLog()
    for worker in workers:
        log.merge(worker.log())
        if worker.process.returncode != -signal.SIGKILL:
            log.errors.append(f"worker exited with {worker.process.returncode}:\n{worker.stderr_tail()}")
    report = await check_reopened(backend, log)
    report.wall_s = time.perf_counter() - started
    return report


async def kill_at_random(workers: Sequence[WorkerProcess], rng: random.Random) -> None:
    """SIGKILL each worker at its own random moment within `KILL_WITHIN_S`."""
    moments = sorted((rng.uniform(*KILL_WITHIN_S), n) for n in range(len(workers)))
    start = time.monotonic()
    for at, n in moments:
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        os.kill(workers[n].process.pid, signal.SIGKILL)


async def check_reopened(backend: Backend, log: WriterLog) -> LoadReport:
    """Reopen the memory, catch it up and check it; then `open` it and verify again."""
    store = backend.store()
    try:
        replayed = await store.catch_up()
        report = await check_memory(store, log)
        report.caught_up = int(replayed > 0)
        await store.open()
        after_open = await store.verify()
        report.violations += [f"verify after open: {line}" for line in after_open.lines()]
    finally:
        await store.vectors.reset()
        await store.aclose()
    return report


async def run_trials(host: str, port: int, folder: Path, *, trials: int, seed: int) -> LoadReport:
    """`trials` kill trials, each in a subfolder of `folder`; their summed report."""
    total = LoadReport()
    for trial in range(trials):
        total.add(await kill_trial(host, port, folder / f"trial-{trial}", seed=seed + trial))
    return total


async def run(args: argparse.Namespace) -> LoadReport:
    """Run the trials and print their table."""
    with tempfile.TemporaryDirectory(prefix="hivegraph-faults-") as tmp, chroma_address(args.chroma, Path(tmp)) as at:
        total = await run_trials(*at, Path(tmp), trials=args.trials, seed=args.seed)
    print(table(f"kill -9 trials (2-3 worker processes, {WRITERS_PER_PROCESS} writers each, SQLite)", total))
    for line in [*total.violations, *total.errors][:20]:
        print("  ", line)
    if args.json:
        write_json(args.json, total)
    return total


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chroma", default=None, help="HOST:PORT of a Chroma server (default: start one)")
    parser.add_argument("--json", default=None, help="also write the report as JSON to this path")
    report = asyncio.run(run(parser.parse_args(argv)))
    sys.exit(1 if report.violations or report.errors or report.lost or report.duplicated else 0)


if __name__ == "__main__":
    main()
