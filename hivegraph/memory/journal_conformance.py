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

The read-path checks (`versions`, `keyword_search`, `turns`, `facet_values`,
`events`) test properties every backend shares, not scores: backends rank
differently (BM25 in memory and in SQLite's FTS5, `ts_rank` in PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hivegraph.errors import ConflictError, KeyScopeError
from hivegraph.memory.journal import Batch, BatchResult, Journal, TurnKey, UndoRequest
from hivegraph.memory.journal_codec import micros
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import (
    AddOp,
    DeleteOp,
    LinkOp,
    MemoryKind,
    MemoryOp,
    MemoryRecord,
    NoopOp,
    Scalar,
    Scope,
    UnlinkOp,
    UpdateOp,
)
from hivegraph.models.tokens import TokenCounter

OpenJournal = Callable[[], Awaitable[Journal]]
"""Opens the journal under test; every call opens the same location."""
JournalCheck = Callable[[OpenJournal], Awaitable[None]]

JOURNAL_CHECKS: dict[str, JournalCheck] = {}
"""Every check, by name."""
PERSISTENCE_CHECKS = frozenset(
    {"survives_reopen", "two_handles_serialise_writers", "another_handle_searches_what_one_wrote"}
)
"""Checks that need a journal another handle can open again."""

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
ADA_PLANNER = Scope(user_id="ada", agent_id="planner")
PLANNER = Scope(agent_id="planner")
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
async def check_links_are_records_counted_by_kind_and_never_keyword_searched(open_journal: OpenJournal) -> None:
    """A LINK opens a `link` version (again: NOOP; new weight: UPDATE); UNLINK closes it; counts filter by kind."""
    async with _opened(open_journal) as journal:
        ends = [
            (await _submit(journal, AddOp(text=f"similar task {n}", kind="query"))).applied[0].after for n in (1, 2)
        ]
        a, b = (end.id for end in ends if end is not None)
        made = await _submit(journal, LinkOp(source=a, target=b, relation="SIMILAR", weight=0.5))
        again = await _submit(journal, LinkOp(source=a, target=b, relation="SIMILAR", weight=0.5))
        moved = await _submit(journal, LinkOp(source=a, target=b, relation="SIMILAR", weight=0.8))
        link = made.applied[0].after
        assert link is not None, f"LINK opened no version ({made.refused})"
        _expect((link.kind, link.metadata["source"], link.metadata["weight"]), ("link", str(a), 0.5), "the link")
        _expect(isinstance(again.applied[0].op, NoopOp), True, "the same link again is a NOOP")
        _expect(moved.applied[0].after is not None and moved.applied[0].after.version, 2, "a new weight is a version")
        _expect(await journal.counts(kinds=["link"]), (2, 1), "link versions")
        _expect(await journal.counts(kinds=["query", "semantic"]), (2, 2), "query versions")
        _expect(await journal.counts(kinds=[]), (0, 0), "no kinds")
        found = await journal.keyword_search(tokenize("similar SIMILAR"), scope=ADA)
        _expect(
            sorted(found)[0][0].split(":")[0] in (str(a), str(b)) and len(found), 2, "only the tasks match, no link"
        )
        gone = await _submit(journal, UnlinkOp(source=a, target=b, relation="SIMILAR"))
        _expect(gone.applied[0].before is not None and gone.applied[0].before.valid_to is not None, True, "closed")
        _expect(await journal.counts(kinds=["link"]), (2, 0), "no open link")
        missing = await _submit(journal, UnlinkOp(source=a, target=b, relation="SIMILAR"))
        _expect([r.code for r in missing.refused], ["not_found"], "unlinking twice")


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


async def _event(
    journal: Journal, text: str, *, scope: Scope = ADA, session: str | None = "s1", turn: int | None = None,
    at: datetime | None = None, speaker: str | None = None, kind: MemoryKind = "episodic",
) -> MemoryRecord:  # fmt: skip
    """An event as episodic memory writes it (not de-duplicated), with the well-known metadata keys."""
    given = {"session_id": session, "turn": turn, "speaker": speaker, "occurred_at": at.timestamp() if at else None}
    metadata: dict[str, Scalar] = {key: value for key, value in given.items() if value is not None}
    result = await _submit(journal, AddOp(text=text, kind=kind, metadata=metadata, dedupe=False), scope=scope)
    after = result.applied[0].after
    assert after is not None, f"ADD of {text!r} opened no version ({result.refused})"
    return after


async def _found(journal: Journal, query: str, scope: Scope, **filters: object) -> list[str]:
    """The version ids a keyword search for `query` (tokenized) finds, best first."""
    return [v for v, _ in await journal.keyword_search(tokenize(query), scope=scope, **filters)]  # type: ignore[arg-type]


@_check
async def check_keyword_search_stays_in_scope(open_journal: OpenJournal) -> None:
    """A search sees the records whose scope has every field its scope sets; the empty scope sees all."""
    async with _opened(open_journal) as journal:
        scopes = {
            "ada": ADA, "ada/planner": ADA_PLANNER, "bob": BOB, "planner": PLANNER,
            "ada/team": Scope(user_id="ada", team_id="crew"), "bob/planner": Scope(user_id="bob", agent_id="planner"),
        }  # fmt: skip
        ids = {name: (await _add(journal, f"{name} harbor note", scope=s)).version_id for name, s in scopes.items()}
        nothing: set[str] = set()

        async def seen(scope: Scope) -> set[str]:
            return {name for name, v in ids.items() if v in await _found(journal, "harbor", scope)}

        _expect(await seen(ADA), {"ada", "ada/planner", "ada/team"}, "Ada's search")
        _expect(await seen(BOB), {"bob", "bob/planner"}, "Bob's search")
        _expect(await seen(ADA_PLANNER), {"ada/planner"}, "Ada's planner's search")
        _expect(await seen(PLANNER), {"ada/planner", "planner", "bob/planner"}, "any planner's search")
        _expect(await seen(Scope()), set(scopes), "the global search")
        _expect(await seen(Scope(user_id="carol")), nothing, "a stranger's search")
        _expect(await seen(Scope(user_id="ada", run_id="r9")), nothing, "a run with no records")


@_check
async def check_keyword_search_finds_current_versions_only(open_journal: OpenJournal) -> None:
    """An UPDATE makes the old text unfindable and the new one findable; DELETE removes; undo restores."""
    async with _opened(open_journal) as journal:
        record = await _add(journal, "Ada keeps a falcon")
        update = await _submit(journal, UpdateOp(record_id=record.id, text="Ada keeps an owl"))
        _expect(await _found(journal, "falcon", ADA), [], "the old text after the UPDATE")
        _expect(await _found(journal, "owl", ADA), [f"{record.id}:2"], "the new text after the UPDATE")
        deleted = await _submit(journal, DeleteOp(record_id=record.id))
        _expect(await _found(journal, "owl", ADA), [], "the text after the DELETE")
        await journal.undo(UndoRequest(op_id=deleted.applied[0].op_id, scope=ADA, actor="check"))
        _expect(await _found(journal, "owl", ADA), [f"{record.id}:3"], "the text after undoing the DELETE")
        _expect(await _found(journal, "falcon", ADA), [], "the old text still")
        await journal.undo(UndoRequest(op_id=update.applied[0].op_id, scope=ADA, actor="check"))
        _expect(await _found(journal, "falcon keeps", ADA), [f"{record.id}:4"], "the text after undoing the UPDATE")


@_check
async def check_keyword_search_filters_kinds_and_event_time(open_journal: OpenJournal) -> None:
    """Kinds filter; a time range is inclusive at both ends and leaves out versions without an event time."""
    async with _opened(open_journal) as journal:
        times = [T0 + timedelta(hours=n) for n in range(3)]
        events = [(await _event(journal, f"picnic {n}", turn=n, at=at)).version_id for n, at in enumerate(times)]
        fact = (await _add(journal, "picnic basket")).version_id
        _expect(set(await _found(journal, "picnic", ADA)), {*events, fact}, "no filter")
        _expect(set(await _found(journal, "picnic", ADA, kinds=["semantic"])), {fact}, "semantic only")
        both = set(await _found(journal, "picnic", ADA, kinds=["semantic", "episodic"]))
        _expect(both, {*events, fact}, "both kinds")
        _expect(await _found(journal, "picnic", ADA, kinds=["procedural"]), [], "a kind with no records")
        first, last = micros(times[0]), micros(times[2])
        _expect(set(await _found(journal, "picnic", ADA, since_us=first, until_us=last)), set(events), "inclusive")
        _expect(set(await _found(journal, "picnic", ADA, since_us=first + 1)), set(events[1:]), "after the first")
        _expect(set(await _found(journal, "picnic", ADA, until_us=last - 1)), set(events[:2]), "before the last")
        _expect(await _found(journal, "picnic", ADA, since_us=last + 1), [], "after every event")


@_check
async def check_keyword_search_ranks_and_limits(open_journal: OpenJournal) -> None:
    """More query terms matched ranks higher; scores fall; `k` limits; nothing shared, no terms or k <= 0: []."""
    async with _opened(open_journal) as journal:
        for n in range(6):
            await _add(journal, f"filler note number {n} about the weather")
        both = (await _add(journal, "kayak paddle lesson")).version_id
        one = (await _add(journal, "kayak rental desk")).version_id
        found = await journal.keyword_search(tokenize("kayak paddle"), scope=ADA)
        _expect([v for v, _ in found], [both, one], "two terms above one")
        _expect(found[0][1] > found[1][1] > 0, True, f"scores fall and are positive ({found})")
        _expect([v for v, _ in await journal.keyword_search(tokenize("kayak paddle"), scope=ADA, k=1)], [both], "k=1")
        _expect(await journal.keyword_search(tokenize("kayak"), scope=ADA, k=0), [], "k=0")
        _expect(await journal.keyword_search([], scope=ADA), [], "no terms")
        _expect(await journal.keyword_search(tokenize("zeppelin"), scope=ADA), [], "a term absent everywhere")
        _expect(await journal.keyword_search(["kayak paddle", '"', "KAYAK", "*"], scope=ADA), [], "not index terms")
        repeated = await journal.keyword_search(["kayak", "kayak", "paddl"], scope=ADA)
        _expect([v for v, _ in repeated], [both, one], "repeated terms")


@_check
async def check_versions_reads_open_and_closed_versions_with_tokens(open_journal: OpenJournal) -> None:
    """`versions` returns closed versions too, with token counts of the journal's encoding; skips unknown ids."""
    async with _opened(open_journal) as journal:
        record = await _add(journal, "Ada prefers the window seat on long flights")
        await _submit(journal, UpdateOp(record_id=record.id, text="Ada prefers the aisle seat"))
        first, second = f"{record.id}:1", f"{record.id}:2"
        asked = [first, second, f"{record.id}:9", f"{UUID(int=5)}:1", "junk", f"{record.id}:x", f"{record.id}:-1", ""]
        found = await journal.versions(asked)
        _expect(sorted(found), [first, second], "versions found")
        _expect(found[first].record.valid_to is not None and found[second].record.is_current, True, "open and closed")
        _expect(found[first].record.text, "Ada prefers the window seat on long flights", "the closed version's text")
        counter = TokenCounter(encoding_name=journal.token_encoding)
        counts = {v: counter.count(stored.record.text) for v, stored in found.items()}
        _expect({v: stored.tokens for v, stored in found.items()}, counts, "token counts")
        _expect(await journal.versions([]), {}, "no ids")


@_check
async def check_turns_are_found_in_their_exact_scope(open_journal: OpenJournal) -> None:
    """`turns` finds the current version at (exact scope, session, turn), passing kinds and time filters."""
    async with _opened(open_journal) as journal:
        at = [T0 + timedelta(minutes=n) for n in range(3)]
        planner = [await _event(journal, f"planner turn {n}", scope=ADA_PLANNER, turn=n, at=at[n]) for n in range(3)]
        own = await _event(journal, "Ada's own turn", turn=0, at=at[0])
        other = await _event(journal, "second session", session="s2", turn=1, at=at[1])
        keys = [TurnKey(ADA_PLANNER, "s1", 1), TurnKey(ADA, "s1", 0), TurnKey(ADA, "s1", 1), TurnKey(ADA, "s2", 1),
                TurnKey(ADA_PLANNER, "s2", 1), TurnKey(BOB, "s1", 0), TurnKey(ADA_PLANNER, "s1", 7)]  # fmt: skip
        found = await journal.turns(keys)
        want = {keys[0]: planner[1].version_id, keys[1]: own.version_id, keys[3]: other.version_id}
        _expect({k: s.record.version_id for k, s in found.items()}, want, "exact-scope turns")
        counter = TokenCounter(encoding_name=journal.token_encoding)
        _expect(found[keys[1]].tokens, counter.count(own.text), "token count")
        _expect(await journal.turns(keys, kinds=["semantic"]), {}, "another kind")
        late = await journal.turns(keys, since_us=micros(at[1]))
        _expect(sorted(s.record.version_id for s in late.values()), sorted([planner[1].version_id, other.version_id]),
                "since the second minute")  # fmt: skip
        updated = await _submit(journal, UpdateOp(record_id=own.id, text="Ada's revised turn"))
        after = updated.applied[0].after
        assert after is not None
        _expect((await journal.turns([keys[1]]))[keys[1]].record.version_id, after.version_id, "the current version")
        await _submit(journal, DeleteOp(record_id=own.id))
        _expect(await journal.turns([keys[1]]), {}, "a deleted turn")


@_check
async def check_facet_values_and_events(open_journal: OpenJournal) -> None:
    """Facet values are distinct and sorted, in scope; events come by (time, session, turn, record id)."""
    async with _opened(open_journal) as journal:
        early, late = T0, T0 + timedelta(hours=1)
        b1 = await _event(journal, "b one", session="b", turn=1, at=early, speaker="Mel")
        a2 = await _event(journal, "a two", session="a", turn=2, at=early, speaker="Caroline")
        a1 = await _event(journal, "a one", session="a", turn=1, at=early, speaker="Mel")
        loose = await _event(journal, "no session", session=None, at=early, speaker="Zed")
        last = await _event(journal, "later", session="a", turn=0, at=late, speaker="Ann", scope=ADA_PLANNER)
        await _event(journal, "no time", session="c", turn=0, speaker="Nobody")
        await _event(journal, "Bob's", scope=BOB, session="z", turn=0, at=early, speaker="Bobby")
        await _add(journal, "a plain fact")
        _expect(
            await journal.facet_values("speaker", scope=ADA), ["Ann", "Caroline", "Mel", "Nobody", "Zed"], "speakers"
        )
        _expect(await journal.facet_values("session_id", scope=ADA), ["a", "b", "c"], "sessions")
        _expect(await journal.facet_values("speaker", scope=ADA_PLANNER), ["Ann"], "the planner's speakers")
        _expect(await journal.facet_values("speaker", scope=ADA, kinds=["semantic"]), [], "another kind")
        order = [loose, a1, a2, b1, last]
        _expect([r.id for r in await journal.events(scope=ADA)], [r.id for r in order], "event order")
        _expect([r.id for r in await journal.events(scope=ADA, session_id="a")], [a1.id, a2.id, last.id], "one session")
        window = await journal.events(scope=ADA, since_us=micros(late), until_us=micros(late))
        _expect([r.id for r in window], [last.id], "an exact time range")
        _expect(await journal.events(scope=ADA, kinds=["semantic"]), [], "facts have no event time")
        _expect([r.id for r in await journal.events(scope=ADA_PLANNER)], [last.id], "the planner's events")
        await _submit(journal, DeleteOp(record_id=last.id), scope=ADA_PLANNER)
        _expect(await journal.facet_values("speaker", scope=ADA_PLANNER), [], "speakers of deleted events")


@_check
async def check_another_handle_searches_what_one_wrote(open_journal: OpenJournal) -> None:
    """The keyword index is in the journal: another handle (a process) sees each write at once, and after reopening."""
    async with _opened(open_journal) as first, _opened(open_journal) as second:
        record = await _add(first, "Ada collects vinyl records")
        _expect(await _found(second, "vinyl", ADA), [record.version_id], "seen by the other handle")
        await _submit(second, UpdateOp(record_id=record.id, text="Ada collects stamps"))
        _expect(await _found(first, "vinyl", ADA), [], "the update seen by the first handle")
    async with _opened(open_journal) as journal:
        _expect(await _found(journal, "stamps", ADA), [f"{record.id}:2"], "after reopening")
        both = [f"{record.id}:1", f"{record.id}:2"]
        _expect(sorted(await journal.versions(both)), both, "versions after reopening")
