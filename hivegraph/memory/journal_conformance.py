"""One conformance suite that every `Journal` must pass: in-memory, SQLite, PostgreSQL.

Each check is an async function that takes an `OpenJournal` (a callable that
opens the journal under test at one location; calling it again opens the same
location) and raises `AssertionError` on a deviation from the reference
(`InMemoryJournal`). A test module parametrises over backends::

    @pytest.mark.parametrize("name", journal_checks(persistent=True))
    async def test_sqlite(name: str, tmp_path: Path) -> None:
        await JOURNAL_CHECKS[name](lambda: open_sqlite(tmp_path))

Concurrency checks run many `submit` calls at once on one journal object and
on two objects opened on the same location, so a journal whose transactions do
not exclude each other fails them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hivegraph.errors import ConflictError, KeyScopeError
from hivegraph.memory.journal import Batch, BatchResult, Journal, UndoRequest
from hivegraph.memory.types import AddOp, DeleteOp, MemoryOp, MemoryRecord, NoopOp, Scope, UpdateOp

OpenJournal = Callable[[], Awaitable[Journal]]
"""Opens the journal under test; every call opens the same location."""
JournalCheck = Callable[[OpenJournal], Awaitable[None]]

JOURNAL_CHECKS: dict[str, JournalCheck] = {}
"""Every check, by name."""
PERSISTENCE_CHECKS = frozenset({"survives_reopen", "two_handles_serialise_writers"})
"""Checks that need a journal another handle can open again."""

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
WRITERS = 8


def journal_checks(*, persistent: bool) -> list[str]:
    """The names of the checks that apply to a journal (persistence checks need `persistent`)."""
    return [name for name in JOURNAL_CHECKS if persistent or name not in PERSISTENCE_CHECKS]


def _check(fn: JournalCheck) -> JournalCheck:
    JOURNAL_CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


@asynccontextmanager
async def _opened(open_journal: OpenJournal) -> AsyncGenerator[Journal]:
    journal = await open_journal()
    try:
        yield journal
    finally:
        await journal.aclose()


def _expect(got: object, want: object, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


async def _submit(journal: Journal, *ops: MemoryOp, scope: Scope = ADA, at: datetime = T0, key: str | None = None
                  ) -> BatchResult:  # fmt: skip
    return await journal.submit(Batch(ops=list(ops), scope=scope, actor="check", at=at, idempotency_key=key))


async def _add(journal: Journal, text: str, *, scope: Scope = ADA, at: datetime = T0) -> MemoryRecord:
    result = await _submit(journal, AddOp(text=text), scope=scope, at=at)
    after = result.applied[0].after
    assert after is not None, f"ADD of {text!r} opened no version ({result.refused})"
    return after


@_check
async def check_batch_is_appended_in_order_with_one_batch_id(open_journal: OpenJournal) -> None:
    """A batch's entries get consecutive sequence numbers and one batch id; `read` pages them in order."""
    async with _opened(open_journal) as journal:
        result = await _submit(journal, AddOp(text="one"), AddOp(text="two"), AddOp(text="three"))
        _expect([e.seq for e in result.applied], [1, 2, 3], "sequence numbers")
        _expect(len({e.batch_id for e in result.applied}), 1, "batch ids")
        _expect([e.op_id for e in await journal.read()], [e.op_id for e in result.applied], "read order")
        _expect([e.seq for e in await journal.read(after=1, limit=1)], [2], "read after 1, limit 1")
        _expect(await journal.last_seq(), 3, "last seq")


@_check
async def check_refused_ops_are_reported_and_not_journaled(open_journal: OpenJournal) -> None:
    """Refused ops come back with a code and leave no entry; the accepted ops of the batch are journaled."""
    async with _opened(open_journal) as journal:
        missing = UUID(int=7)
        result = await _submit(journal, AddOp(text="kept"), UpdateOp(record_id=missing, text="x"), AddOp(text="kept"))
        _expect(len(result.applied), 1, "applied")
        _expect([r.code for r in result.refused], ["not_found", "batch"], "refusal codes")
        _expect(await journal.last_seq(), 1, "journal length")


@_check
async def check_bad_values_are_refused_not_journaled(open_journal: OpenJournal) -> None:
    """NaN metadata and lone surrogates that bypass validation are refused as `invalid`, naming the field."""
    async with _opened(open_journal) as journal:
        nan = AddOp.model_construct(text="score", metadata={"score": float("nan")})
        surrogate = AddOp.model_construct(text="bad \udc80 text", metadata={})
        record = await _add(journal, "kept")
        infinite = UpdateOp.model_construct(record_id=record.id, text="x", metadata={"n": float("inf")})
        result = await _submit(journal, nan, surrogate, infinite, AddOp(text="fine"))
        _expect([r.code for r in result.refused], ["invalid", "invalid", "invalid"], "refusal codes")
        _expect("metadata.score" in result.refused[0].reason, True, "NaN refusal names the field")
        _expect(await journal.last_seq(), 2, "journal length")


@_check
async def check_update_closes_one_version_and_opens_the_next(open_journal: OpenJournal) -> None:
    """UPDATE closes the open version at the op's time and opens the next; history keeps both."""
    async with _opened(open_journal) as journal:
        record = await _add(journal, "Ada likes tea")
        later = T0 + timedelta(seconds=5)
        await _submit(journal, UpdateOp(record_id=record.id, text="Ada likes coffee", expected_version=1), at=later)
        versions = await journal.records(scope=ADA, all_versions=True)
        _expect([(v.version, v.text) for v in versions], [(1, "Ada likes tea"), (2, "Ada likes coffee")], "versions")
        _expect(versions[0].valid_to, later, "closed at the update's time")
        _expect([v.version for v in await journal.records(scope=ADA)], [2], "current versions")
        _expect(await journal.counts(), (2, 1), "counts")


@_check
async def check_as_of_boundaries_are_exact(open_journal: OpenJournal) -> None:
    """`as_of` is exact to the microsecond: `valid_from` inclusive, `valid_to` exclusive."""
    async with _opened(open_journal) as journal:
        record = await _add(journal, "Ada lives in Lisbon")
        moved = T0 + timedelta(microseconds=1)
        await _submit(journal, UpdateOp(record_id=record.id, text="Ada lives in Porto"), at=moved)
        one = timedelta(microseconds=1)

        async def texts(at: datetime) -> list[str]:
            return [r.text for r in await journal.records(scope=ADA, as_of=at)]

        _expect(await texts(T0 - one), [], "before the ADD")
        _expect(await texts(T0), ["Ada lives in Lisbon"], "at the ADD")
        _expect(await texts(moved), ["Ada lives in Porto"], "at the UPDATE")
        _expect((await journal.records(scope=ADA))[0].created_at, T0, "timestamps round-trip exactly")


@_check
async def check_stale_expected_version_is_a_conflict(open_journal: OpenJournal) -> None:
    """An op whose `expected_version` is no longer current is refused as a conflict."""
    async with _opened(open_journal) as journal:
        record = await _add(journal, "Ada likes tea")
        await _submit(journal, UpdateOp(record_id=record.id, text="Ada likes coffee", expected_version=1))
        result = await _submit(journal, UpdateOp(record_id=record.id, text="Ada likes water", expected_version=1))
        _expect([r.code for r in result.refused], ["conflict"], "refusal codes")
        await _submit(journal, DeleteOp(record_id=record.id))
        stale = await _submit(journal, DeleteOp(record_id=record.id, expected_version=2))
        _expect([r.code for r in stale.refused], ["conflict"], "delete of a deleted record with a version")
        plain = await _submit(journal, DeleteOp(record_id=record.id))
        _expect([r.code for r in plain.refused], ["not_found"], "delete of a deleted record")


@_check
async def check_other_scopes_records_are_refused_without_naming_the_owner(open_journal: OpenJournal) -> None:
    """Ops on another scope's records are refused, naming only the caller's scope; reads stay in scope."""
    async with _opened(open_journal) as journal:
        bobs = await _add(journal, "Bob's PIN is 4321", scope=BOB)
        result = await _submit(journal, UpdateOp(record_id=bobs.id, text="hacked"), DeleteOp(record_id=bobs.id))
        _expect([r.code for r in result.refused], ["scope", "scope"], "refusal codes")
        _expect("bob" in result.refused[0].reason, False, "the owner is not named")
        _expect(await journal.records(scope=ADA), [], "Ada sees nothing of Bob's")
        ada_agent = Scope(user_id="ada", agent_id="planner")
        await _add(journal, "planner note", scope=ada_agent)
        _expect(len(await journal.records(scope=ADA)), 1, "a user scope sees its agents' records")
        _expect(await journal.records(scope=Scope(user_id="ada", agent_id="writer")), [], "another agent's")


@_check
async def check_concurrent_updates_of_one_version_let_exactly_one_win(open_journal: OpenJournal) -> None:
    """Concurrent UPDATEs expecting one version: exactly one is applied, the others are conflicts."""
    async with _opened(open_journal) as journal:
        record = await _add(journal, "counter 0")
        ops = [UpdateOp(record_id=record.id, text=f"counter {n}", expected_version=1) for n in range(1, WRITERS + 1)]
        results = await asyncio.gather(*(_submit(journal, op) for op in ops))
        _expect(sum(len(r.applied) for r in results), 1, "winners")
        _expect(sorted({c.code for r in results for c in r.refused}), ["conflict"], "losers' refusals")
        _expect(len(await journal.records(scope=ADA, all_versions=True)), 2, "versions")


@_check
async def check_concurrent_update_and_delete_never_resurrect(open_journal: OpenJournal) -> None:
    """Of a concurrent UPDATE and DELETE exactly one wins; a won DELETE is never undone by the UPDATE."""
    async with _opened(open_journal) as journal:
        for n in range(4):
            record = await _add(journal, f"fact {n}")
            update, delete = await asyncio.gather(
                _submit(journal, UpdateOp(record_id=record.id, text=f"fact {n} revised", expected_version=1)),
                _submit(journal, DeleteOp(record_id=record.id, expected_version=1)),
            )
            _expect(len(update.applied) + len(delete.applied), 1, "exactly one of UPDATE and DELETE")
            current = await journal.records(scope=ADA, record_ids=[record.id])
            _expect(bool(current), bool(update.applied), "current iff the UPDATE won")


@_check
async def check_concurrent_identical_adds_store_one_record(open_journal: OpenJournal) -> None:
    """Concurrent identical ADDs with `dedupe` store one record; the others are NOOPs pointing at it."""
    async with _opened(open_journal) as journal:
        results = await asyncio.gather(
            *(_submit(journal, AddOp(text="Ada is allergic to peanuts")) for _ in range(WRITERS))
        )
        opened = [e.after for r in results for e in r.applied if e.after is not None]
        _expect(len(opened), 1, "records opened")
        noops = [e.op for r in results for e in r.applied if isinstance(e.op, NoopOp)]
        _expect({op.record_id for op in noops}, {opened[0].id}, "the others point at it")


@_check
async def check_concurrent_undos_of_one_op_accept_one(open_journal: OpenJournal) -> None:
    """Concurrent undos of one op: one is accepted, the others are conflicts."""
    async with _opened(open_journal) as journal:
        record = await _add(journal, "Ada likes tea")
        update = await _submit(journal, UpdateOp(record_id=record.id, text="Ada likes coffee"))
        request = UndoRequest(op_id=update.applied[0].op_id, scope=ADA, actor="check")
        outcomes = await asyncio.gather(*(journal.undo(request) for _ in range(4)), return_exceptions=True)
        _expect(sum(not isinstance(o, BaseException) for o in outcomes), 1, "undos accepted")
        _expect(all(isinstance(o, ConflictError) for o in outcomes if isinstance(o, BaseException)), True, "conflicts")
        _expect([r.text for r in await journal.records(scope=ADA)], ["Ada likes tea"], "restored text")


@_check
async def check_undo_of_an_add_after_its_update_was_undone(open_journal: OpenJournal) -> None:
    """An ADD can be undone once the UPDATE after it has been undone, and not before."""
    async with _opened(open_journal) as journal:
        added = await _submit(journal, AddOp(text="Ada likes tea"))
        record = added.applied[0].after
        assert record is not None
        update = await _submit(journal, UpdateOp(record_id=record.id, text="Ada likes coffee"))
        try:
            await journal.undo(UndoRequest(op_id=added.applied[0].op_id, scope=ADA, actor="check"))
        except ConflictError:
            pass
        else:
            raise AssertionError("undoing the ADD under a live UPDATE must be refused")
        await journal.undo(UndoRequest(op_id=update.applied[0].op_id, scope=ADA, actor="check"))
        await journal.undo(UndoRequest(op_id=added.applied[0].op_id, scope=ADA, actor="check"))
        _expect(await journal.records(scope=ADA), [], "nothing current")


@_check
async def check_idempotency_key_replays_and_belongs_to_its_scope(open_journal: OpenJournal) -> None:
    """A replayed key returns the journaled entries; another scope's use of it is refused and names no one."""
    async with _opened(open_journal) as journal:
        first = await _submit(journal, AddOp(text="Alice's PIN is 4321"), key="run-1:facts")
        again = await _submit(journal, AddOp(text="Alice's PIN is 4321"), key="run-1:facts")
        _expect([e.op_id for e in again.applied], [e.op_id for e in first.applied], "replayed entries")
        _expect(await journal.last_seq(), 1, "nothing written twice")
        try:
            await _submit(journal, AddOp(text="Bob's note"), scope=BOB, key="run-1:facts")
        except KeyScopeError as exc:
            _expect("ada" in str(exc), False, "the owner is not named")
        else:
            raise AssertionError("another scope's idempotency key must be refused")
        _expect(await journal.last_seq(), 1, "the refused batch wrote nothing")


@_check
async def check_claims_bind_keys_to_one_scope(open_journal: OpenJournal) -> None:
    """A claimed key (a run id) belongs to the scope that claimed it."""
    async with _opened(open_journal) as journal:
        _expect(await journal.claim("run:r1", ADA, create=False), False, "unclaimed, not created")
        _expect(await journal.claim("run:r1", ADA), True, "claimed")
        _expect(await journal.claim("run:r1", ADA, create=False), True, "owned")
        try:
            await journal.claim("run:r1", BOB, create=False)
        except KeyScopeError as exc:
            _expect("ada" in str(exc), False, "the owner is not named")
        else:
            raise AssertionError("another scope's run id must be refused")


@_check
async def check_cursors(open_journal: OpenJournal) -> None:
    """Projection cursors start at 0, advance, and are separate by name."""
    async with _opened(open_journal) as journal:
        _expect(await journal.cursor("vector"), 0, "a new cursor")
        await journal.advance("vector", 7)
        await journal.advance("vector", 9)
        _expect(await journal.cursor("vector"), 9, "advanced cursor")
        _expect(await journal.cursor("keyword"), 0, "cursors are separate")


@_check
async def check_projection_lock_excludes(open_journal: OpenJournal) -> None:
    """Holders of one projection lock never overlap."""
    async with _opened(open_journal) as journal:
        inside: list[int] = []
        overlaps: list[int] = []

        async def hold(n: int) -> None:
            async with journal.projection_lock("vector"):
                if inside:
                    overlaps.append(n)
                inside.append(n)
                await asyncio.sleep(0.01)
                inside.remove(n)

        await asyncio.gather(*(hold(n) for n in range(4)))
        _expect(overlaps, [], "holders inside at once")


@_check
async def check_survives_reopen(open_journal: OpenJournal) -> None:
    """Records and cursors are there after the journal is closed and opened again."""
    async with _opened(open_journal) as journal:
        record = await _add(journal, "Ada likes tea")
        await journal.advance("vector", 1)
    async with _opened(open_journal) as journal:
        _expect([r.id for r in await journal.records(scope=ADA)], [record.id], "records after reopening")
        _expect(await journal.cursor("vector"), 1, "cursor after reopening")
        _expect(await journal.unreadable(), [], "unreadable rows")


@_check
async def check_two_handles_serialise_writers(open_journal: OpenJournal) -> None:
    """Two handles on one location exclude each other: one winner, one deduplicated ADD, no gap in `seq`."""
    async with _opened(open_journal) as first, _opened(open_journal) as second:
        record = await _add(first, "counter 0")
        ops = [UpdateOp(record_id=record.id, text=f"counter {n}", expected_version=1) for n in range(WRITERS)]
        handles = [first, second] * (WRITERS // 2)
        results = await asyncio.gather(*(_submit(j, op) for j, op in zip(handles, ops, strict=True)))
        _expect(sum(len(r.applied) for r in results), 1, "winners across handles")
        adds = await asyncio.gather(*(_submit(j, AddOp(text="same fact")) for j in handles))
        _expect(sum(1 for r in adds for e in r.applied if e.after is not None), 1, "deduplicated across handles")
        _expect([e.seq for e in await second.read()], list(range(1, await first.last_seq() + 1)), "gapless seqs")
