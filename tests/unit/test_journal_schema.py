"""The SQL schema itself refuses what would be a lost update, whatever code writes to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegraph.memory.journal import Batch
from hivegraph.memory.journal_codec import OPEN_US
from hivegraph.memory.journal_sql import SqlConn, UniqueViolationError
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.types import AddOp, Scope

ADA = Scope(user_id="ada")
INSERT = (
    "INSERT INTO hg_versions(record_id, version, kind, hash, created_us, valid_from_us, valid_to_us, body)"
    " VALUES (?, ?, 'semantic', 'h', 0, 0, ?, '{}')"
)


@pytest.mark.parametrize(("version", "valid_to"), [(2, OPEN_US), (1, 5)], ids=["second-open-version", "same-version"])
async def test_the_schema_refuses_a_second_open_version_or_a_version_twice(
    tmp_path: Path, version: int, valid_to: int
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    added = await journal.submit(Batch(ops=[AddOp(text="Ada likes tea")], scope=ADA, actor="t"))
    record = added.applied[0].after
    assert record is not None

    def sneak(conn: SqlConn) -> int:
        return conn.run(INSERT, (str(record.id), version, valid_to))

    with pytest.raises(UniqueViolationError):
        await journal._write(sneak)  # pyright: ignore[reportPrivateUsage] - bypassing the planner is the point
    assert [(v.version, v.is_current) for v in await journal.records(scope=ADA, all_versions=True)] == [(1, True)]
    await journal.aclose()
