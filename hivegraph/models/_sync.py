"""Run coroutines from synchronous code on one long-lived background event loop.

Clients that are cached per event loop (HTTP connection pools, semaphores)
stay valid across `run_sync` calls because every call runs on the same loop,
in a daemon thread started on first use (and again after a fork).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion and return its result, from synchronous code.

    Raises:
        RuntimeError: called while an event loop is running in this thread;
            await the async method instead.

    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError(
            f"{_name(coro)} was called through a synchronous wrapper from inside a running "
            "event loop; await the async method instead"
        )
    future = asyncio.run_coroutine_threadsafe(coro, _background_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            thread = threading.Thread(target=_loop.run_forever, name="hivegraph-sync-loop", daemon=True)
            thread.start()
        return _loop


def _name(coro: Coroutine[Any, Any, Any]) -> str:
    return getattr(coro, "__qualname__", type(coro).__name__)
