"""Benchmark the offline MiniLM embedder on LoCoMo sentences.

Embeds N sentences (split from LoCoMo conversation turns) and prints, for each
way of padding a batch, sentences per second and CPU-seconds per 1,000
sentences, with the ratio to the embedder's own path:

- `embedder`: `MiniLMEmbedder.embed` (batches of similar length, each padded to its longest),
- `longest`: batches in data order, each padded to its longest text,
- `pad-256`: batches in data order, each padded to 256 tokens (what a fixed-length export does).

All three give the same vectors (checked). CPU time is the whole process's
(onnxruntime and the tokenizer's threads included).

    .venv/bin/python benchmarks/embedder.py --data ../shared/data/locomo/locomo_dev.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hivegraph.models.minilm import MiniLMEmbedder, MiniLMRuntime

DEFAULT_DATA = (Path(__file__).parents[1] / ".." / "shared" / "data" / "locomo" / "locomo_dev.json").resolve()


def load_sentences(path: Path, n: int) -> list[str]:
    """The first `n` distinct sentences (3 words or more) of the conversations' turns."""
    if not path.is_file():
        sys.exit(f"LoCoMo data not found at {path}; pass --data PATH (see shared/data/README.md)")
    samples = json.loads(path.read_text(encoding="utf-8"))
    sentences: dict[str, None] = {}
    for sample in samples:
        conversation = sample["conversation"]
        for key in sorted(conversation, key=_session_number):
            if not key.startswith("session_") or not isinstance(conversation[key], list):
                continue
            for turn in conversation[key]:
                for sentence in re.split(r"(?<=[.!?])\s+", turn["text"].strip()):
                    if len(sentence.split()) >= 3:
                        sentences[sentence] = None
                if len(sentences) >= n:
                    return list(sentences)[:n]
    return list(sentences)


def _session_number(key: str) -> int:
    match = re.fullmatch(r"session_(\d+)", key)
    return int(match.group(1)) if match else 0


def in_data_order(runtime: MiniLMRuntime, batch_size: int, pad_to: int | None) -> Callable[[list[str]], np.ndarray]:
    """Embed in data order, padding each batch to its longest or to `pad_to`."""

    def embed(texts: list[str]) -> np.ndarray:
        ids = runtime.tokenize(texts)
        starts = range(0, len(ids), batch_size)
        parts = [runtime.embed_ids(ids[i : i + batch_size], pad_to=pad_to) for i in starts]
        return np.concatenate(parts)

    return embed


def measure(
    embed: Callable[[list[str]], Sequence[Sequence[float]] | np.ndarray], texts: list[str]
) -> tuple[float, float, np.ndarray]:
    """Wall seconds, CPU seconds and the vectors of one run."""
    cpu, wall = time.process_time(), time.perf_counter()
    vectors = np.asarray(embed(texts), dtype=np.float32)
    return time.perf_counter() - wall, time.process_time() - cpu, vectors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON (locomo_dev.json)")
    parser.add_argument("-n", type=int, default=1000, help="sentences to embed (default 1000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    args = parser.parse_args(argv)

    texts = load_sentences(args.data, args.n)
    embedder = MiniLMEmbedder(batch_size=args.batch_size, intra_op_threads=args.threads)
    started = time.perf_counter()
    runtime = embedder.runtime
    load_s = time.perf_counter() - started
    lengths = [len(ids) for ids in runtime.tokenize(texts)]
    print(f"{len(texts)} sentences, tokens per sentence: mean {np.mean(lengths):.1f}, max {max(lengths)}")
    print(f"load (verify files, onnxruntime session, tokenizer): {load_s:.2f} s; "
          f"batch size {args.batch_size}, {args.threads} thread(s)\n")  # fmt: skip

    runs = {
        "embedder": embedder.embed,
        "longest": in_data_order(runtime, args.batch_size, None),
        "pad-256": in_data_order(runtime, args.batch_size, 256),
    }
    results = {name: measure(fn, texts) for name, fn in runs.items()}
    base_wall, base_cpu, base_vectors = results["embedder"]
    print(f"{'padding':<10} {'sent/s':>9} {'CPU-s/1000':>11} {'wall x':>7} {'CPU x':>6} {'max |diff|':>11}")
    for name, (wall, cpu, vectors) in results.items():
        diff = float(np.abs(vectors - base_vectors).max())
        print(f"{name:<10} {len(texts) / wall:>9.1f} {cpu * 1000 / len(texts):>11.2f} "
              f"{wall / base_wall:>7.2f} {cpu / base_cpu:>6.2f} {diff:>11.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
