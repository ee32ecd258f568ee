"""One process at a time on an embedded Chroma folder: an exclusive `flock`, counted per process.

Chroma's embedded `PersistentClient` is not made for several processes: writers
in different processes corrupt its HNSW segments. `lock_embedded(path)` takes
an exclusive, non-blocking `fcntl.flock` on `<path>/hivegraph.lock` and writes
the holder's pid into it; another process gets `BackendUnavailableError` at
once. The kernel drops the lock when the holder exits, even on `kill -9`.

Within one process, chromadb shares one system per folder, so opens of the same
(resolved) folder share one lock: `EmbeddedLock.release` of the last holder
unlocks. That count is process-wide by nature, so it lives in a module-level
table guarded by a thread lock; a forked child starts with an empty table (the
parent's lock is the parent's).
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from hivegraph.errors import BackendUnavailableError, MemoryStoreError

__all__ = ["LOCK_FILE", "EmbeddedLock", "lock_embedded"]

LOCK_FILE = "hivegraph.lock"


@dataclass
class _Held:
    fd: int
    count: int


_HELD: dict[Path, _Held] = {}
_guard = threading.Lock()


class EmbeddedLock:
    """One share, in this process, of the lock on an embedded Chroma folder."""

    def __init__(self, folder: Path) -> None:
        """Record a share already counted in the process table (use `lock_embedded`)."""
        self.folder = folder
        """The resolved folder the lock guards."""
        self._released = False

    def release(self) -> None:
        """Give up this share; the last share of the process unlocks. Idempotent."""
        if self._released:
            return
        self._released = True
        with _guard:
            held = _HELD.get(self.folder)
            if held is None:
                return
            held.count -= 1
            if held.count == 0:
                del _HELD[self.folder]
                _unlock(held.fd)


def lock_embedded(path: str | Path) -> EmbeddedLock:
    """Lock the embedded Chroma folder `path` (created if missing) for this process.

    Raises:
        BackendUnavailableError: another process holds the folder.
        MemoryStoreError: the folder or its lock file cannot be created.

    """
    folder = Path(path).resolve()
    with _guard:
        held = _HELD.get(folder)
        if held is None:
            _HELD[folder] = _Held(fd=_lock(folder), count=1)
        else:
            held.count += 1
    return EmbeddedLock(folder)


def _lock(folder: Path) -> int:
    """An open descriptor of the folder's lock file, locked, with this pid written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise MemoryStoreError(f"cannot create the Chroma lock file in {folder}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        holder = _holder(fd)
        os.close(fd)
        raise _in_use(folder, holder) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _unlock(fd: int) -> None:
    os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _holder(fd: int) -> int | None:
    """The pid written in the lock file, if it reads as one."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _in_use(folder: Path, holder: int | None) -> BackendUnavailableError:
    who = f"another process (pid {holder})" if holder is not None else "another process"
    return BackendUnavailableError(
        "chroma",
        f"the embedded Chroma store at {folder} is in use by {who}; embedded Chroma is for one "
        f"process at a time. To share it, run a Chroma server (`chroma run --path {folder}`) and "
        "set `vector_store.chroma.mode: http` (with its host and port) in every process",
    )


def _forget_after_fork() -> None:
    """In a forked child, the parent's locks are not the child's: close the copies, keep them locked."""
    global _guard  # another thread may have held it at the fork
    _guard = threading.Lock()
    for held in _HELD.values():
        os.close(held.fd)  # closing a copy does not unlock; the parent still holds its descriptor
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
