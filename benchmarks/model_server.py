"""Benchmark the local vLLM server: start-up to first answer, first-token latency, decode speed.

Usage (the server must be prepared: `hivegraph model prepare`)::

    .venv/bin/python benchmarks/model_server.py [--port 18180] [--requests 5] [--max-tokens 64]

Settings come from `hivegraph.yaml` and `HIVEGRAPH_*` variables like everywhere else.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx

from hivegraph.config import load_settings
from hivegraph.models.server import ModelServer, ServerHandle

PROMPTS = [
    "Write a short paragraph about bees and how a hive works.",
    "Explain in a few sentences what a graph database is.",
    "List some tips for writing clear Python code.",
    "Describe a walk through a forest in autumn.",
    "What is long-term memory, and why do assistants need it?",
]


@dataclass
class Sample:
    prompt_tokens: int
    completion_tokens: int
    first_token_s: float
    total_s: float

    @property
    def decode_tps(self) -> float:
        decode_s = self.total_s - self.first_token_s
        return (self.completion_tokens - 1) / decode_s if self.completion_tokens > 1 and decode_s > 0 else 0.0


def chat(client: httpx.Client, handle: ServerHandle, prompt: str, *, max_tokens: int) -> Sample:
    body = {
        "model": handle.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    usage: dict[str, Any] = {}
    with client.stream("POST", f"{handle.url}/chat/completions", json=body) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if first is None and any(c["delta"].get("content") for c in chunk.get("choices", [])):
                first = time.perf_counter() - started
            usage = chunk.get("usage") or usage
    total = time.perf_counter() - started
    return Sample(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), first or total, total)


def report(startup_s: float | None, samples: list[Sample]) -> None:
    print(f"{'#':>2} {'prompt':>6} {'output':>6} {'first token s':>13} {'total s':>8} {'decode tok/s':>12}")
    for i, s in enumerate(samples, 1):
        print(
            f"{i:>2} {s.prompt_tokens:>6} {s.completion_tokens:>6} {s.first_token_s:>13.3f}"
            f" {s.total_s:>8.2f} {s.decode_tps:>12.1f}"
        )
    startup = f"{startup_s:.1f} s" if startup_s is not None else "n/a (already running)"
    print(f"start-up to first answer: {startup}")
    print(f"median first token: {statistics.median(s.first_token_s for s in samples):.3f} s")
    print(f"median decode: {statistics.median(s.decode_tps for s in samples):.1f} tokens/s")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the local vLLM server.")
    parser.add_argument("--port", type=int, default=18180)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    server = ModelServer(load_settings().model.server)
    already = any(h.port == args.port for h in server.status())
    started = time.perf_counter()
    handle = server.start(port=args.port)
    startup_s = None if already else time.perf_counter() - started
    try:
        with httpx.Client(timeout=600) as client:
            chat(client, handle, "Hi", max_tokens=4)  # warm-up, not counted
            prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.requests)]
            samples = [chat(client, handle, p, max_tokens=args.max_tokens) for p in prompts]
    finally:
        if not already:
            server.stop(port=args.port)
    report(startup_s, samples)


if __name__ == "__main__":
    main()
