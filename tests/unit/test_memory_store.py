from datetime import UTC, datetime

import pytest

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import AddOp, DeleteOp, NoopOp, Scope, Source, UpdateOp

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")


async def test_add_then_search_inside_scope(memory_store: MemoryStore) -> None:
    record = await memory_store.add("Ada lives in Lisbon", scope=ADA, source=Source(run_id="r1"))
    hits = await memory_store.search("where does Ada live", scope=ADA)
    assert [h.record_id for h in hits] == [record.id]
    assert hits[0].loaded.source.run_id == "r1"
    assert hits[0].loaded.scope == ADA


async def test_a_read_never_crosses_scope(memory_store: MemoryStore) -> None:
    await memory_store.add("Ada lives in Lisbon", scope=ADA)
    assert await memory_store.search("Ada lives in Lisbon", scope=BOB) == []
    assert await memory_store.list(scope=BOB) == []
    narrower = Scope(user_id="ada", agent_id="planner")
    assert await memory_store.search("Ada lives in Lisbon", scope=narrower) == []


async def test_update_closes_the_old_version_and_keeps_it(memory_store: MemoryStore) -> None:
    record = await memory_store.add("Ada lives in Lisbon", scope=ADA)
    when = datetime(2030, 1, 1, tzinfo=UTC)
    result = await memory_store.apply(
        [UpdateOp(record_id=record.id, text="Ada lives in Porto")], scope=ADA, actor="t", now=when
    )
    assert not result.refused
    current = await memory_store.get(record.id, scope=ADA)
    assert current is not None and current.text == "Ada lives in Porto" and current.version == 2
    history = await memory_store.history(record.id, scope=ADA)
    assert [e.op.event for e in history.entries] == ["ADD", "UPDATE"]
    assert [(r.version, r.text, r.valid_to) for r in history.versions] == [
        (1, "Ada lives in Lisbon", when),
        (2, "Ada lives in Porto", None),
    ]
    assert [h.text for h in await memory_store.search("Ada lives", scope=ADA)] == ["Ada lives in Porto"]


async def test_delete_closes_and_hides_but_history_remains(memory_store: MemoryStore) -> None:
    record = await memory_store.add("Ada likes tea", scope=ADA)
    result = await memory_store.apply([DeleteOp(record_id=record.id)], scope=ADA, actor="t")
    assert len(result.applied) == 1
    assert await memory_store.get(record.id, scope=ADA) is None
    assert await memory_store.search("tea", scope=ADA) == []
    (closed,) = (await memory_store.history(record.id, scope=ADA)).versions
    assert closed.text == "Ada likes tea" and closed.valid_to is not None


async def test_update_of_another_scope_is_refused_and_changes_nothing(memory_store: MemoryStore) -> None:
    bobs = await memory_store.add("Bob lives in Oslo", scope=BOB)
    result = await memory_store.apply([UpdateOp(record_id=bobs.id, text="hacked")], scope=ADA, actor="t")
    assert result.applied == []
    assert "not inside scope user_id=ada" in result.refused[0].reason
    assert "bob" not in result.refused[0].reason and result.refused[0].code == "scope"
    assert (await memory_store.get(bobs.id, scope=BOB)) == bobs


async def test_unknown_id_and_oversized_text_are_refused_not_applied(memory_store: MemoryStore) -> None:
    record = await memory_store.add("Ada likes tea", scope=ADA)
    import uuid

    ops = [
        DeleteOp(record_id=uuid.uuid4()),
        AddOp(text="x" * 501),
        AddOp(text="   "),
        UpdateOp(record_id=record.id, text="Ada likes green tea"),
    ]
    result = await memory_store.apply(ops, scope=ADA, actor="t")
    reasons = [r.reason for r in result.refused]
    assert "no current memory record" in reasons[0]
    assert "501 characters, over the limit of 500" in reasons[1]
    assert "empty" in reasons[2]
    assert [a.op for a in result.applied] == [ops[3]]
    assert [r.text for r in await memory_store.list(scope=ADA)] == ["Ada likes green tea"]


async def test_exact_duplicate_add_is_a_noop(memory_store: MemoryStore) -> None:
    first = await memory_store.add("Ada likes tea", scope=ADA)
    again = await memory_store.apply([AddOp(text="  ada LIKES tea ")], scope=ADA, actor="t")
    assert again.applied[0].op == NoopOp(record_id=first.id)
    assert len(await memory_store.list(scope=ADA)) == 1
    # the same text in another scope is a different memory
    await memory_store.add("Ada likes tea", scope=BOB)
    assert len(await memory_store.list(scope=BOB)) == 1


async def test_one_batch_never_changes_a_record_twice(memory_store: MemoryStore) -> None:
    record = await memory_store.add("Ada likes tea", scope=ADA)
    ops = [UpdateOp(record_id=record.id, text="Ada likes coffee"), DeleteOp(record_id=record.id)]
    result = await memory_store.apply(ops, scope=ADA, actor="t")
    assert len(result.applied) == 1 and "already changed by this batch" in result.refused[0].reason
    assert (await memory_store.get(record.id, scope=ADA)) is not None


async def test_add_raises_on_refusal(memory_store: MemoryStore) -> None:
    with pytest.raises(MemoryStoreError, match="over the limit"):
        await memory_store.add("y" * 600, scope=ADA)
