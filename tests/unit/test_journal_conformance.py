"""The journal conformance suite against the in-memory reference and SQLite (in memory and on disk).

PostgreSQL runs the same suite in tests/integration/test_postgres_journal.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegraph.memory.journal import Journal
from hivegraph.memory.journal_conformance import JOURNAL_CHECKS, journal_checks
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.journal_sqlite import SqliteJournal


@pytest.mark.parametrize("name", journal_checks(persistent=False))
async def test_inmemory_journal(name: str) -> None:
    async def open_journal() -> Journal:
        return InMemoryJournal()

    await JOURNAL_CHECKS[name](open_journal)


@pytest.mark.parametrize("name", journal_checks(persistent=True))
async def test_sqlite_journal(name: str, tmp_path: Path) -> None:
    async def open_journal() -> Journal:
        return SqliteJournal(tmp_path / "journal.sqlite")

    await JOURNAL_CHECKS[name](open_journal)


@pytest.mark.parametrize("name", journal_checks(persistent=False))
async def test_sqlite_in_memory_journal(name: str) -> None:
    async def open_journal() -> Journal:
        return SqliteJournal(":memory:")

    await JOURNAL_CHECKS[name](open_journal)
