"""Kill -9 trials shared by the graph backends' tests: a writer process streaming batches, killed mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hivegraph.memory.graph import GraphStore
from hivegraph.memory.graph.conformance import ADA

ROOT = Path(__file__).resolve().parents[2]
STREAMER = """
import asyncio, importlib, sys
from itertools import pairwise
from hivegraph.memory.graph.conformance import edge, task

async def main(backend: str, path: str, size: int, first: int) -> None:
    module, _, name = backend.partition(":")
    graph = getattr(importlib.import_module(module), name)(path)
    for seq in range(first, first + 100_000):
        ids = [f"b{seq}-{i}" for i in range(size)]
        await graph.upsert([task(i) for i in ids], [edge("SIMILAR", a, b) for a, b in pairwise(ids)], seq=seq)
        print(seq, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""
"""Opens the graph class `module:name` on a path and upserts batches of `size` tasks in a chain, one per seq
from `first` on, printing each seq once acknowledged."""


def stream_and_kill(backend: str, path: Path, size: int, first: int, fraction: float) -> list[int]:
    """Stream into `backend` from seq `first`, SIGKILL it `fraction` of a batch after an ack; the seqs acked."""
    argv = [sys.executable, "-c", STREAMER, backend, str(path), str(size), str(first)]
    streamer = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert streamer.stdout is not None
    acknowledged = [int(streamer.stdout.readline() or 0) for _ in range(3)]
    started = time.monotonic()
    acknowledged += [int(streamer.stdout.readline() or 0) for _ in range(5)]
    time.sleep((time.monotonic() - started) / 5 * fraction)
    os.kill(streamer.pid, signal.SIGKILL)
    rest, err = streamer.communicate(timeout=30)
    assert streamer.returncode == -signal.SIGKILL and 0 not in acknowledged, err
    return acknowledged + [int(line) for line in rest.split()]


async def expect_whole_batches(graph: GraphStore, acknowledged: list[int], size: int) -> None:
    """Every acknowledged batch is there whole, and any other batch is whole or absent, never half there."""
    for seq in range(1, acknowledged[-1] + 3):
        ids = [f"b{seq}-{i}" for i in range(size)]
        found = len(await graph.get_nodes(ids, scope=ADA))
        chained = len(await graph.neighbours([ids[0]], scope=ADA, hops=4))
        if seq in acknowledged:
            assert (found, chained) == (size, 4), f"acknowledged batch {seq}"
        else:
            assert (found, chained) in [(size, 4), (0, 0)], f"batch {seq} is half there"
    counts = await graph.counts()
    assert counts.nodes % size == 0
    assert counts.edges == counts.nodes // size * (size - 1)
