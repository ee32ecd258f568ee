"""What every SQLite store of the embedded profile shares: WAL mode and recognising a busy database."""

from __future__ import annotations

import sqlite3
import time

BUSY_RETRIES = 5
"""Attempts after `busy_timeout` ran out before a locked database is reported."""


def enter_wal(db: sqlite3.Connection, *, deadline: float) -> None:
    """Switch to WAL mode, waiting while another process holds the lock (the switch fails at once, unlike writes)."""
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether `exc` says another connection holds the lock (worth waiting for), not that the database failed."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text
