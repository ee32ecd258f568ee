"""The findings of the concurrency and hostile-input review, each as a test against `MemoryStore`.

Every test here failed on the store as it was (ops planned outside the journal transaction,
versions written with INSERT OR REPLACE, keys not bound to scopes, lax input).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from hivegraph.errors import BackendUnavailableError, ConflictError, InvalidInputError, KeyScopeError
from hivegraph.memory.episodic import Turn
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import IndexOp, IndexResult, IndexUpsertOp, QueryCache, check_collection_name
from hivegraph.memory.stores.inmemory import InMemorySpace, InMemoryVectorIndex
from hivegraph.memory.types import AddOp, DeleteOp, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder

ADA = Scope(user_id="ada")
ALICE = Scope(user_id="alice")
BOB = Scope(user_id="bob")


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> MemoryStore:
    store = MemoryStore(InMemorySpace(HashEmbedder()), journal=SqliteJournal(tmp_path / "j.sqlite"))
    return await store.open()


async def test_concurrent_updates_are_serialised_and_none_is_lost(sqlite_store: MemoryStore) -> None:
    record = await sqlite_store.add("Ada likes tea", scope=ADA)
    texts = ["Ada likes coffee", "Ada likes water"]
    results = await asyncio.gather(
        *(sqlite_store.apply([UpdateOp(record_id=record.id, text=t)], scope=ADA, actor="w") for t in texts)
    )
    moves = sorted((r.applied[0].before.version, r.applied[0].after.version) for r in results)  # type: ignore[union-attr]
    assert moves == [(1, 2), (2, 3)]  # not both "1 -> 2"
    history = await sqlite_store.history(record.id, scope=ADA)
    assert {v.text for v in history.versions} == {"Ada likes tea", *texts}


async def test_an_update_that_read_a_stale_version_is_a_reported_conflict(sqlite_store: MemoryStore) -> None:
    record = await sqlite_store.add("Ada likes tea", scope=ADA)
    ops = [
        UpdateOp(record_id=record.id, text=f"Ada likes {drink}", expected_version=1) for drink in ("coffee", "water")
    ]
    results = await asyncio.gather(*(sqlite_store.apply([op], scope=ADA, actor="w") for op in ops))
    assert sorted(len(r.applied) for r in results) == [0, 1]
    assert [c.code for r in results for c in r.refused] == ["conflict"]


async def test_a_deleted_record_is_never_revived_by_a_concurrent_update(sqlite_store: MemoryStore) -> None:
    for n in range(6):
        record = await sqlite_store.add(f"fact {n}", scope=ADA)
        update, delete = await asyncio.gather(
            sqlite_store.apply([UpdateOp(record_id=record.id, text=f"fact {n}!")], scope=ADA, actor="u"),
            sqlite_store.apply([DeleteOp(record_id=record.id)], scope=ADA, actor="d"),
        )
        assert delete.applied, "a DELETE without an expected version always applies"
        assert await sqlite_store.get(record.id, scope=ADA) is None
        assert not update.applied or update.applied[0].seq < delete.applied[0].seq
        assert record.id not in {h.record_id for h in await sqlite_store.search(f"fact {n}", scope=ADA, k=10)}


async def test_concurrent_identical_adds_make_one_record(sqlite_store: MemoryStore) -> None:
    records = await asyncio.gather(*(sqlite_store.add("Ada is allergic to peanuts", scope=ADA) for _ in range(4)))
    assert len({r.id for r in records}) == 1
    assert len(await sqlite_store.list(scope=ADA)) == 1


async def test_sixteen_writers_leave_the_index_in_step_with_the_journal(sqlite_store: MemoryStore) -> None:
    seeds = [await sqlite_store.add(f"shared fact {n}", scope=ADA) for n in range(4)]

    async def writer(w: int) -> None:
        for step in range(12):
            target = seeds[(w + step) % len(seeds)].id
            op = DeleteOp(record_id=target) if (w + step) % 7 == 0 else UpdateOp(record_id=target, text=f"w{w} s{step}")
            await sqlite_store.apply([op, AddOp(text=f"note {w % 3}")], scope=ADA, actor=f"w{w}")

    await asyncio.gather(*(writer(w) for w in range(16)))
    report = await sqlite_store.verify()
    assert report.clean, report.lines()
    closed = [(e.before.id, e.before.version) for e in await sqlite_store.journal.read() if e.before is not None]
    assert len(closed) == len(set(closed))  # no version closed twice
    current_ids = {r.id for r in await sqlite_store.list(scope=ADA)}
    for hit in await sqlite_store.search("shared fact w1", scope=ADA, k=50):
        assert hit.record_id in current_ids  # a search never returns what get() does not


class _FailingIndex(InMemoryVectorIndex):
    """A collection whose writes fail while its space is down, like a Chroma server that went away."""

    def __init__(self, space: _FailingSpace, queries: QueryCache) -> None:
        super().__init__(space.embedder, queries=queries)
        self.space = space

    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        if self.space.down and any(isinstance(op, IndexUpsertOp) for op in ops):
            raise BackendUnavailableError("chroma", "no Chroma server answers")
        return await super().abatch(ops)


class _FailingSpace(InMemorySpace):
    """A space whose collections' writes fail while `down` is set."""

    down = False

    def collection(self, name: str) -> InMemoryVectorIndex:
        found = self._collections.get(name)
        if found is None:
            found = _FailingIndex(self, self._queries)
            self._collections[check_collection_name(name)] = found
        return found


async def test_a_journaled_write_succeeds_when_the_index_is_down_and_is_indexed_later(tmp_path: Path) -> None:
    space = _FailingSpace(HashEmbedder())
    store = await MemoryStore(space, journal=SqliteJournal(tmp_path / "j.sqlite")).open()
    space.down = True
    record = await store.add("Ada likes tea", scope=ADA)  # acknowledged: in the journal
    assert store.lagging is not None and await store.vectors.counts() == (0, 0)
    space.down = False
    hits = await store.search("Ada likes tea", scope=ADA)
    assert [h.record_id for h in hits] == [record.id] and store.lagging is None
    assert await store.vectors.counts() == (1, 1)  # one copy: the caller had no reason to retry


async def test_an_idempotency_key_belongs_to_the_scope_that_used_it(sqlite_store: MemoryStore) -> None:
    await sqlite_store.apply([AddOp(text="Alice's bank PIN is 4321")], scope=ALICE, actor="a", idempotency_key="k1")
    with pytest.raises(KeyScopeError) as info:
        await sqlite_store.apply([AddOp(text="Bob's note")], scope=BOB, actor="b", idempotency_key="k1")
    assert "alice" not in str(info.value) and "4321" not in str(info.value)
    assert await sqlite_store.list(scope=BOB) == []


async def test_two_undos_of_one_op_accept_one(sqlite_store: MemoryStore) -> None:
    record = await sqlite_store.add("Ada likes tea", scope=ADA)
    update = await sqlite_store.apply([UpdateOp(record_id=record.id, text="Ada likes coffee")], scope=ADA, actor="w")
    outcomes = await asyncio.gather(
        *(sqlite_store.undo(update.applied[0].op_id, scope=ADA) for _ in range(2)), return_exceptions=True
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["ConflictError", "JournalEntry"]


async def test_undoing_an_add_after_undoing_its_update(sqlite_store: MemoryStore) -> None:
    added = await sqlite_store.apply([AddOp(text="Ada likes tea")], scope=ADA, actor="w")
    record = added.applied[0].after
    assert record is not None
    update = await sqlite_store.apply([UpdateOp(record_id=record.id, text="Ada likes coffee")], scope=ADA, actor="w")
    with pytest.raises(ConflictError):
        await sqlite_store.undo(added.applied[0].op_id, scope=ADA)
    await sqlite_store.undo(update.applied[0].op_id, scope=ADA)
    await sqlite_store.undo(added.applied[0].op_id, scope=ADA)
    assert await sqlite_store.list(scope=ADA) == []


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: AddOp(text="x", metadata={"score": float("nan")}), "metadata.score"),
        (lambda: AddOp(text="x", metadata={"score": float("inf")}), "metadata.score"),
        (lambda: AddOp(text="x", metadata={"nested": {"a": 1}}), "metadata.nested"),  # type: ignore[dict-item]
        (lambda: AddOp(text="x", metadata={"n": 2**70}), "metadata.n"),
        (lambda: AddOp(text="x", metadata={f"k{n}": n for n in range(65)}), "metadata"),
        (lambda: AddOp(text="broken \udc80 text"), "text"),
        (lambda: Scope(user_id="\udc80"), "scope.user_id"),
        (lambda: Scope(user_id=""), "scope.user_id"),
        (
            lambda: Turn(
                speaker="a", text="b", occurred_at=datetime(2026, 1, 1).astimezone(), metadata={"x": float("nan")}
            ),
            "metadata.x",
        ),
    ],
)
def test_unstorable_values_are_refused_naming_the_field(build: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        build()  # type: ignore[operator]
    assert info.value.field == field


async def test_wrong_argument_types_are_clear_errors(sqlite_store: MemoryStore) -> None:
    with pytest.raises(InvalidInputError, match="scope: must be a Scope, not dict"):
        await sqlite_store.add("Ada likes tea", scope={"user_id": "ada"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="as_of: must be timezone-aware"):
        await sqlite_store.list(scope=ADA, as_of=datetime(2026, 1, 1))


async def test_a_value_that_slips_past_validation_is_refused_and_the_store_goes_on(tmp_path: Path) -> None:
    store = await MemoryStore(InMemorySpace(HashEmbedder()), journal=SqliteJournal(tmp_path / "j")).open()
    poisoned = AddOp.model_construct(text="score", metadata={"score": float("nan")}, kind="semantic", dedupe=True)
    result = await store.apply([poisoned], scope=ADA, actor="x")
    assert [r.code for r in result.refused] == ["invalid"] and not result.applied
    await store.add("Ada likes tea", scope=ADA)  # every later write still works
    await store.aclose()
    reopened = await MemoryStore(InMemorySpace(HashEmbedder()), journal=SqliteJournal(tmp_path / "j")).open()
    assert [r.text for r in await reopened.list(scope=ADA)] == ["Ada likes tea"]
    assert (await reopened.verify()).clean
    await reopened.aclose()
