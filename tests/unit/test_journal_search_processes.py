"""Two processes write to one SQLite journal while a third searches it: the keyword index is the journal's.

Every acknowledged write is findable afterwards, no closed version is, and no search ever sees two
versions of one record (a search reads one snapshot, and the index changes in the writes' transactions).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import Scope
from tests.unit.test_journal_read_schema import assert_text_stats_agree

ADA = Scope(user_id="ada")
ROUNDS = 24
WRITER = textwrap.dedent(
    """
    import asyncio, json, sys
    from hivegraph.memory.journal import Batch
    from hivegraph.memory.journal_sqlite import SqliteJournal
    from hivegraph.memory.types import AddOp, Scope, UpdateOp

    async def main(path, name, rounds):
        journal = SqliteJournal(path)
        ada = Scope(user_id="ada")
        for n in range(rounds):
            added = await journal.submit(Batch(ops=[AddOp(text=f"note {name}q{n}a")], scope=ada, actor=name))
            record = added.applied[0].after
            print(json.dumps({"opened": record.version_id, "text": record.text}), flush=True)
            if n % 2:
                op = UpdateOp(record_id=record.id, text=f"note {name}q{n}b")
                after = (await journal.submit(Batch(ops=[op], scope=ada, actor=name))).applied[0].after
                print(json.dumps({"closed": record.version_id, "text": record.text}), flush=True)
                print(json.dumps({"opened": after.version_id, "text": after.text}), flush=True)
        await journal.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)
SEARCHER = textwrap.dedent(
    """
    import asyncio, os, sys
    from hivegraph.memory.journal_sqlite import SqliteJournal
    from hivegraph.memory.types import Scope

    async def main(path, stop):
        journal = SqliteJournal(path)
        searches, problems = 0, []
        while not os.path.exists(stop) or searches == 0:
            found = [v for v, _ in await journal.keyword_search(["note"], scope=Scope(user_id="ada"), k=1000)]
            records = [v.rsplit(":", 1)[0] for v in found]
            if len(records) != len(set(records)):
                problems.append(f"two versions of one record in one search: {sorted(found)}")
            missing = set(found) - set(await journal.versions(found))
            if missing:
                problems.append(f"found but unreadable: {sorted(missing)}")
            searches += 1
        print(searches, problems, flush=True)
        await journal.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_writers_in_two_processes_and_a_searcher_agree_with_the_journal(tmp_path: Path) -> None:
    path, stop = tmp_path / "journal.sqlite", tmp_path / "stop"
    await SqliteJournal(path).aclose()  # created before the processes start, so none of them migrates it

    def start(script: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)

    searcher = start(SEARCHER, str(path), str(stop))
    writers = [start(WRITER, str(path), name, str(ROUNDS)) for name in ("w1", "w2")]
    started = time.monotonic()
    logs = [writer.communicate(timeout=60)[0] for writer in writers]
    stop.touch()
    report = searcher.communicate(timeout=30)[0]
    assert [w.returncode for w in writers] == [0, 0] and searcher.returncode == 0
    assert time.monotonic() - started < 20

    events = [json.loads(line) for log in logs for line in log.splitlines()]
    closed = {e["closed"]: e["text"] for e in events if "closed" in e}
    current = {e["opened"]: e["text"] for e in events if "opened" in e and e["opened"] not in closed}
    assert len(current) == 2 * ROUNDS and len(closed) == ROUNDS  # every write acknowledged
    journal = SqliteJournal(path)
    for version_id, text in current.items():
        assert [v for v, _ in await journal.keyword_search(tokenize(text)[-1:], scope=ADA)] == [version_id]
    for text in closed.values():
        assert await journal.keyword_search(tokenize(text)[-1:], scope=ADA) == []
    found = await journal.keyword_search(["note"], scope=ADA, k=1000)
    assert {v for v, _ in found} == set(current)
    searches, problems = report.split(" ", 1)
    assert int(searches) > 0 and problems.strip() == "[]"
    await journal.aclose()
    assert_text_stats_agree(path)
