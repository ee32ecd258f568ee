"""The journal as source of truth: history, undo, points in time, catch-up and rebuild."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hivegraph.errors import MemoryStoreError, OpNotFoundError, ScopeViolationError
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import AddOp, DeleteOp, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder

ADA = Scope(user_id="ada")
T0 = datetime(2030, 1, 1, tzinfo=UTC)


async def texts(store: MemoryStore, query: str = "Ada") -> list[str]:
    return [h.text for h in await store.search(query, scope=ADA, k=10)]


async def test_every_op_is_journaled_with_before_after_actor_and_time(memory_store: MemoryStore) -> None:
    add = (await memory_store.apply([AddOp(text="Ada likes tea")], scope=ADA, actor="alice", now=T0)).applied[0]
    rid = add.after.id if add.after else None
    assert rid is not None
    upd = await memory_store.apply([UpdateOp(record_id=rid, text="Ada likes coffee")], scope=ADA, actor="bob")
    entries = await memory_store.journal.read()
    assert [(e.seq, e.op.event, e.actor) for e in entries] == [(1, "ADD", "alice"), (2, "UPDATE", "bob")]
    assert entries[0].at == T0 and entries[0].before is None and entries[0].scope == ADA
    assert entries[1].before is not None and entries[1].before.text == "Ada likes tea"
    assert entries[1].after is not None and entries[1].after.text == "Ada likes coffee"
    assert entries[1].op_id == upd.applied[0].op_id


async def test_undo_of_an_update_restores_the_previous_text(memory_store: MemoryStore) -> None:
    record = await memory_store.add("Ada lives in Lisbon", scope=ADA)
    update = await memory_store.apply([UpdateOp(record_id=record.id, text="Ada lives in Porto")], scope=ADA, actor="m")
    undo = await memory_store.undo(update.applied[0].op_id, scope=ADA)
    assert undo.undo_of == update.applied[0].op_id
    current = await memory_store.get(record.id, scope=ADA)
    assert current is not None and current.text == "Ada lives in Lisbon" and current.version == 3
    assert await texts(memory_store) == ["Ada lives in Lisbon"]
    history = await memory_store.history(record.id, scope=ADA)
    assert [v.text for v in history.versions] == ["Ada lives in Lisbon", "Ada lives in Porto", "Ada lives in Lisbon"]
    assert [e.undo_of for e in history.entries] == [None, None, update.applied[0].op_id]


async def test_undo_of_add_and_delete_and_of_an_undo(memory_store: MemoryStore) -> None:
    add = (await memory_store.apply([AddOp(text="Ada likes tea")], scope=ADA, actor="m")).applied[0]
    undo_add = await memory_store.undo(add.op_id, scope=ADA)
    assert await texts(memory_store) == []
    await memory_store.undo(undo_add.op_id, scope=ADA)  # redo
    assert await texts(memory_store) == ["Ada likes tea"]
    assert add.after is not None
    deleted = await memory_store.apply([DeleteOp(record_id=add.after.id)], scope=ADA, actor="m")
    assert await texts(memory_store) == []
    await memory_store.undo(deleted.applied[0].op_id, scope=ADA)
    assert await texts(memory_store) == ["Ada likes tea"]


async def test_undo_refusals(memory_store: MemoryStore) -> None:
    record = await memory_store.add("Ada likes tea", scope=ADA)
    first = await memory_store.apply([UpdateOp(record_id=record.id, text="Ada likes coffee")], scope=ADA, actor="m")
    await memory_store.apply([UpdateOp(record_id=record.id, text="Ada likes water")], scope=ADA, actor="m")
    with pytest.raises(MemoryStoreError, match="changed after op"):
        await memory_store.undo(first.applied[0].op_id, scope=ADA)
    with pytest.raises(OpNotFoundError):
        await memory_store.undo(uuid.uuid4(), scope=ADA)
    last = (await memory_store.journal.read())[-1]
    with pytest.raises(ScopeViolationError):
        await memory_store.undo(last.op_id, scope=Scope(user_id="bob"))
    await memory_store.undo(last.op_id, scope=ADA)
    with pytest.raises(MemoryStoreError, match="already undone"):
        await memory_store.undo(last.op_id, scope=ADA)
    assert [r.text for r in await memory_store.list(scope=ADA)] == ["Ada likes coffee"]


async def test_reads_at_a_point_in_time(memory_store: MemoryStore) -> None:
    add = await memory_store.apply([AddOp(text="Ada lives in Lisbon")], scope=ADA, actor="m", now=T0)
    rid = add.applied[0].after.id  # type: ignore[union-attr]
    later = T0 + timedelta(days=10)
    await memory_store.apply([UpdateOp(record_id=rid, text="Ada lives in Porto")], scope=ADA, actor="m", now=later)
    at = await memory_store.get(rid, scope=ADA, as_of=T0 + timedelta(days=1))
    assert at is not None and at.text == "Ada lives in Lisbon"
    assert await memory_store.get(rid, scope=ADA, as_of=T0 - timedelta(days=1)) is None
    now = await memory_store.get(rid, scope=ADA)
    assert now is not None and now.text == "Ada lives in Porto"
    assert [r.text for r in await memory_store.list(scope=ADA, as_of=later)] == ["Ada lives in Porto"]


async def test_refused_ops_are_not_journaled(memory_store: MemoryStore) -> None:
    await memory_store.apply([DeleteOp(record_id=uuid.uuid4()), AddOp(text="")], scope=ADA, actor="m")
    assert await memory_store.journal.read() == []


async def test_a_new_process_replays_what_the_index_missed(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    store = await MemoryStore(InMemorySpace(HashEmbedder()), journal=journal).open()
    await store.add("Ada likes tea", scope=ADA)
    await store.add("Ada likes jazz", scope=ADA)
    await journal.aclose()
    # an in-memory index starts empty in a new store: it is re-derived from the journal, once
    reopened = SqliteJournal(tmp_path / "journal.sqlite")
    fresh = MemoryStore(InMemorySpace(HashEmbedder()), journal=reopened)
    assert await fresh.vectors.counts() == (0, 0)
    assert await fresh.catch_up() == 2
    assert sorted(await texts(fresh)) == ["Ada likes jazz", "Ada likes tea"]
    assert await fresh.catch_up() == 0
    assert await fresh.vectors.counts() == (2, 2)


async def test_rebuild_re_derives_the_index(memory_store: MemoryStore) -> None:
    record = await memory_store.add("Ada likes tea", scope=ADA)
    await memory_store.apply([UpdateOp(record_id=record.id, text="Ada likes coffee")], scope=ADA, actor="m")
    await memory_store.vectors.reset()  # the index is lost
    assert await texts(memory_store) == []
    assert await memory_store.rebuild() == 2
    assert await texts(memory_store) == ["Ada likes coffee"]
    assert await memory_store.vectors.counts() == (2, 1)  # the closed version is kept, in history


async def test_update_merges_metadata_and_undo_restores_it(memory_store: MemoryStore) -> None:
    add = await memory_store.apply([AddOp(text="brew tea", metadata={"uses": 0, "lang": "en"})], scope=ADA, actor="m")
    rid = add.applied[0].after.id  # type: ignore[union-attr]
    op = UpdateOp(record_id=rid, text="brew tea", metadata={"uses": 1})
    upd = await memory_store.apply([op], scope=ADA, actor="m")
    current = await memory_store.get(rid, scope=ADA)
    assert current is not None and current.metadata == {"uses": 1, "lang": "en"} and current.version == 2
    await memory_store.undo(upd.applied[0].op_id, scope=ADA)
    restored = await memory_store.get(rid, scope=ADA)
    assert restored is not None and restored.metadata == {"uses": 0, "lang": "en"}


async def test_search_at_a_point_in_time(memory_store: MemoryStore) -> None:
    add = await memory_store.apply([AddOp(text="Ada lives in Lisbon")], scope=ADA, actor="m", now=T0)
    rid = add.applied[0].after.id  # type: ignore[union-attr]
    later = T0 + timedelta(days=10)
    await memory_store.apply([UpdateOp(record_id=rid, text="Ada lives in Porto")], scope=ADA, actor="m", now=later)

    async def at(when: datetime) -> list[str]:
        return [h.text for h in await memory_store.search("Ada lives", scope=ADA, as_of=when)]

    assert await at(T0 + timedelta(days=1)) == ["Ada lives in Lisbon"]
    assert await at(later) == ["Ada lives in Porto"]
    assert await at(T0 - timedelta(seconds=1)) == []
    assert await memory_store.search("Ada lives", scope=Scope(user_id="bob"), as_of=later) == []


async def test_an_idempotent_batch_replayed_writes_nothing_twice(memory_store: MemoryStore) -> None:
    ops = [AddOp(text="user: hello", kind="episodic", dedupe=False), AddOp(text="Ada likes tea")]
    first = await memory_store.apply(ops, scope=ADA, actor="m", idempotency_key="run-1:episodes")
    again = await memory_store.apply(ops, scope=ADA, actor="m", idempotency_key="run-1:episodes")
    assert [e.op_id for e in again.applied] == [e.op_id for e in first.applied]
    assert len(await memory_store.journal.read()) == 2
    other = await memory_store.apply(ops[:1], scope=ADA, actor="m", idempotency_key="run-2:episodes")
    assert other.applied[0].after is not None  # another run's event is a new event, even with the same text
    assert len(await memory_store.list(scope=ADA, kinds=["episodic"])) == 2


async def test_a_wiped_persistent_index_is_re_derived_on_open(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    space = InMemorySpace(HashEmbedder())
    space.persistent = True  # type: ignore[misc]  # stand in for an index whose files were deleted
    store = await MemoryStore(space, journal=journal).open()
    await store.add("Ada likes tea", scope=ADA)
    assert await journal.cursor("vector") == 1
    await store.vectors.reset()
    reopened = await MemoryStore(space, journal=journal).open()
    assert await texts(reopened) == ["Ada likes tea"]
