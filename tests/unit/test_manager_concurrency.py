"""The manager against other writers: what it decided about a memory is never applied over a newer version."""

import json

import pytest

from hivegraph.agents.manager import MemoryManager
from hivegraph.memory.facade import Memory
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import DeleteOp, MemoryRecord, Scope, UpdateOp
from hivegraph.models.base import Message, user
from hivegraph.models.testing import FunctionModel, RequestInfo

ADA = Scope(user_id="ada")
CHAT = [user("I moved from Lisbon to Porto last month.")]


def reply_after(
    store: MemoryStore, shown: MemoryRecord, concurrent: UpdateOp | DeleteOp, decision: str
) -> FunctionModel:
    """A model that extracts one fact, and while deciding lets another writer apply `concurrent` first."""

    async def reply(messages: list[Message], info: RequestInfo) -> str:
        assert info.output_schema is not None
        if info.output_schema.name == "ExtractedFacts":
            return json.dumps({"facts": ["Ada lives in Porto"]})
        assert f"[0] {shown.text}" in messages[-1].content
        result = await store.apply([concurrent], scope=ADA, actor="other_agent")
        assert result.refused == []
        return decision

    return FunctionModel(reply)


@pytest.mark.parametrize("event", ["UPDATE", "DELETE"])
async def test_a_decision_about_a_record_changed_meanwhile_is_refused_as_a_conflict(
    memory_store: MemoryStore, memory: Memory, event: str
) -> None:
    lisbon = await memory_store.add("Ada lives in Lisbon", scope=ADA)
    newer = UpdateOp(record_id=lisbon.id, text="Ada lives in Braga")
    decision = json.dumps({"ops": [{"event": event, "id": 0, "text": "Ada lives in Porto"}]})
    model = reply_after(memory_store, lisbon, newer, decision)
    result = await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    assert result.applied == []
    assert [(r.op, r.code) for r in result.refused] == [(result.ops[0], "conflict")]
    assert "at version 2, not 1" in result.refused[0].reason
    current = await memory_store.get(lisbon.id, scope=ADA)
    assert current is not None and (current.text, current.version) == ("Ada lives in Braga", 2)


async def test_an_update_of_a_record_deleted_meanwhile_is_a_conflict_not_a_resurrection(
    memory_store: MemoryStore,
    memory: Memory,
) -> None:
    lisbon = await memory_store.add("Ada lives in Lisbon", scope=ADA)
    decision = json.dumps({"ops": [{"event": "UPDATE", "id": 0, "text": "Ada lives in Porto"}]})
    model = reply_after(memory_store, lisbon, DeleteOp(record_id=lisbon.id), decision)
    result = await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    assert result.applied == [] and [r.code for r in result.refused] == ["conflict"]
    assert await memory_store.list(scope=ADA) == []


async def test_ops_decided_before_a_concurrent_write_are_refused_when_applied(
    memory_store: MemoryStore, memory: Memory
) -> None:
    lisbon = await memory_store.add("Ada lives in Lisbon", scope=ADA)
    decision = json.dumps({"ops": [{"event": "UPDATE", "id": 0, "text": "Ada lives in Porto"}]})
    manager = MemoryManager(FunctionModel(lambda messages, info: decision), memory)
    ops, calls = await manager.decide(["Ada lives in Porto"], scope=ADA)
    assert calls == 1 and ops == [UpdateOp(record_id=lisbon.id, text="Ada lives in Porto", expected_version=1)]
    await memory_store.apply([UpdateOp(record_id=lisbon.id, text="Ada lives in Braga")], scope=ADA, actor="other")
    result = await memory_store.apply(ops, scope=ADA, actor=manager.name)
    assert result.applied == [] and [r.code for r in result.refused] == ["conflict"]
    assert [r.text for r in await memory_store.list(scope=ADA)] == ["Ada lives in Braga"]
