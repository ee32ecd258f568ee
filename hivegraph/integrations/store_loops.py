"""Event-loop helpers for a store's synchronous methods, which run its async batch from any thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["off_loop", "running_loop"]

T = TypeVar("T")


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def off_loop(here: asyncio.AbstractEventLoop | None, run: Callable[[], T]) -> T:
    """`run()` here when this thread runs no loop, else in a worker thread (a running loop cannot be re-entered)."""
    if here is None:
        return run()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivegraph-store") as pool:
        return pool.submit(run).result()
