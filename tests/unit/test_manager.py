import asyncio
import json

import pytest

from hivegraph.agents.manager import MemoryManager, independent_groups
from hivegraph.errors import UnexpectedModelOutput
from hivegraph.memory.facade import Memory
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import AddOp, MemoryRecord, NoopOp, Scope, UpdateOp
from hivegraph.models.base import Message, user
from hivegraph.models.testing import FunctionModel, RequestInfo, ScriptedModel

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
CHAT = [user("I moved from Lisbon to Porto last month, and I now prefer green tea.")]


def facts(*items: str) -> str:
    return json.dumps({"facts": list(items)})


def decision(*ops: tuple[str, int | None, str]) -> str:
    return json.dumps({"ops": [{"event": e, "id": i, "text": t} for e, i, t in ops]})


async def current_texts(store: MemoryStore, scope: Scope = ADA) -> list[str]:
    return sorted(r.text for r in await store.list(scope=scope))


async def test_first_facts_are_added_without_a_decision_call(memory_store: MemoryStore, memory: Memory) -> None:
    model = ScriptedModel([facts("Ada lives in Porto", "Ada prefers green tea")])
    result = await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    assert result.model_calls == 1 and len(model.requests) == 1
    assert [type(op) for op in result.ops] == [AddOp, AddOp]
    assert await current_texts(memory_store) == ["Ada lives in Porto", "Ada prefers green tea"]
    assert model.requests[0].output_schema is not None


async def test_aliases_are_mapped_back_to_record_ids(memory_store: MemoryStore, memory: Memory) -> None:
    lisbon = await memory_store.add("Ada lives in Lisbon", scope=ADA)
    await memory_store.add("Ada prefers black tea", scope=ADA)
    model = ScriptedModel([facts("Ada lives in Porto"), decision(("UPDATE", 0, "Ada lives in Porto"))])
    result = await MemoryManager(model, memory, neighbours=1).consolidate(CHAT, scope=ADA)
    assert result.ops == [UpdateOp(record_id=lisbon.id, text="Ada lives in Porto", expected_version=1)]
    prompt = model.requests[1].messages[-1].content
    assert "[0] Ada lives in Lisbon" in prompt and str(lisbon.id) not in prompt
    assert await current_texts(memory_store) == ["Ada lives in Porto", "Ada prefers black tea"]
    history = await memory_store.history(lisbon.id, scope=ADA)
    assert [r.text for r in history.versions] == ["Ada lives in Lisbon", "Ada lives in Porto"]


async def test_hallucinated_id_is_retried_with_feedback(memory_store: MemoryStore, memory: Memory) -> None:
    lisbon = await memory_store.add("Ada lives in Lisbon", scope=ADA)
    model = ScriptedModel(
        [facts("Ada lives in Porto"), decision(("UPDATE", 7, "Ada lives in Porto")),
         decision(("UPDATE", 0, "Ada lives in Porto"))]
    )  # fmt: skip
    result = await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    assert result.ops == [UpdateOp(record_id=lisbon.id, text="Ada lives in Porto", expected_version=1)]
    feedback = model.requests[2].messages[-1].content
    assert "ops.0.UPDATE.id" in feedback and "7 is not one of the listed memories (valid: 0)" in feedback


@pytest.mark.parametrize(
    ("name", "bad_reply"),
    [
        ("hallucinated id", decision(("DELETE", 42, ""))),
        ("unknown op name", json.dumps({"ops": [{"event": "MERGE", "id": 0, "text": "x"}]})),
        ("malformed json", '{"ops": [{"event": "ADD", "id": null, "text": "Ada lives'),
        ("empty output", ""),
        ("update without id", decision(("UPDATE", None, "Ada lives in Porto"))),
    ],
)
async def test_invalid_decision_raises_after_retries_and_changes_nothing(
    memory_store: MemoryStore, memory: Memory, name: str, bad_reply: str
) -> None:
    await memory_store.add("Ada lives in Lisbon", scope=ADA)
    model = ScriptedModel([facts("Ada lives in Porto")] + [bad_reply] * 3, max_retries=2)
    with pytest.raises(UnexpectedModelOutput) as info:
        await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    assert info.value.body == bad_reply, name
    assert len(info.value.errors) == 3
    assert len(model.requests) == 4
    assert await current_texts(memory_store) == ["Ada lives in Lisbon"]


def update_with_id(raw_id: object, text: str) -> str:
    """An UPDATE decision whose id is any JSON value, not only an integer alias."""
    return json.dumps({"ops": [{"event": "UPDATE", "id": raw_id, "text": text}]})


LAX_IDS = [pytest.param(True, id="boolean"), pytest.param("0", id="string"), pytest.param(1.0, id="float")]
"""Ids a lax parser would coerce to a listed alias (true and 1.0 to 1, "0" to 0)."""


async def two_memories(store: MemoryStore) -> tuple[MemoryRecord, MemoryRecord]:
    """Lisbon (alias 0 for a fact about Porto) and black tea (alias 1), so every coerced id names a real memory."""
    return await store.add("Ada lives in Lisbon", scope=ADA), await store.add("Ada prefers black tea", scope=ADA)


@pytest.mark.parametrize("raw_id", LAX_IDS)
async def test_an_id_that_is_not_a_json_integer_is_retried_not_coerced(
    memory_store: MemoryStore, memory: Memory, raw_id: object
) -> None:
    lisbon, _ = await two_memories(memory_store)
    model = ScriptedModel(
        [facts("Ada lives in Porto"), update_with_id(raw_id, "Ada prefers green tea"),
         decision(("UPDATE", 0, "Ada lives in Porto"))]
    )  # fmt: skip
    result = await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    shown = model.requests[1].messages[-1].content
    assert "[0] Ada lives in Lisbon" in shown and "[1] Ada prefers black tea" in shown
    assert "valid integer" in model.requests[2].messages[-1].content
    assert result.ops == [UpdateOp(record_id=lisbon.id, text="Ada lives in Porto", expected_version=1)]
    assert await current_texts(memory_store) == ["Ada lives in Porto", "Ada prefers black tea"]


@pytest.mark.parametrize("raw_id", LAX_IDS)
async def test_ids_that_are_never_json_integers_raise_and_change_nothing(
    memory_store: MemoryStore, memory: Memory, raw_id: object
) -> None:
    await two_memories(memory_store)
    bad_reply = update_with_id(raw_id, "Ada prefers green tea")
    model = ScriptedModel([facts("Ada lives in Porto")] + [bad_reply] * 3, max_retries=2)
    with pytest.raises(UnexpectedModelOutput) as info:
        await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    assert info.value.body == bad_reply and len(info.value.errors) == 3 and len(model.requests) == 4
    assert await current_texts(memory_store) == ["Ada lives in Lisbon", "Ada prefers black tea"]
    assert [e.op.event for e in await memory_store.journal.read()] == ["ADD", "ADD"]


async def test_the_decision_schema_lists_only_the_aliases_shown(memory_store: MemoryStore, memory: Memory) -> None:
    await two_memories(memory_store)
    model = ScriptedModel([facts("Ada lives in Porto"), decision(("NOOP", 0, ""))])
    await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    schema = model.requests[1].output_schema
    assert schema is not None and schema.strict
    defs = schema.json_schema["$defs"]
    branches = [
        defs[ref["$ref"].rsplit("/", 1)[-1]] for ref in schema.json_schema["properties"]["ops"]["items"]["anyOf"]
    ]
    by_event = {b["properties"]["event"]["const"]: b for b in branches}
    assert sorted(by_event) == ["ADD", "DELETE", "NOOP", "UPDATE"]
    shown = {"type": "integer", "enum": [0, 1]}

    def ids(event: str) -> object:
        return {k: v for k, v in by_event[event]["properties"]["id"].items() if k not in ("title", "default")}

    assert ids("UPDATE") == ids("DELETE") == shown
    assert ids("NOOP") == {"anyOf": [shown, {"type": "null"}]}
    assert ids("ADD") == {"type": "null"}
    assert by_event["ADD"]["properties"]["text"]["minLength"] == 1
    assert by_event["UPDATE"]["properties"]["text"]["minLength"] == 1
    assert all(b["required"] == ["event", "id", "text"] and b["additionalProperties"] is False for b in branches)
    assert "discriminator" not in json.dumps(schema.json_schema), "sent as a plain anyOf for every grammar backend"


@pytest.mark.parametrize("bad_reply", ["", "not json", '{"facts": "one"}', '{"facts": ["' + "x" * 400 + '"]}'])
async def test_invalid_extraction_raises_and_changes_nothing(
    memory_store: MemoryStore, memory: Memory, bad_reply: str
) -> None:
    model = ScriptedModel([bad_reply] * 2, max_retries=1)
    with pytest.raises(UnexpectedModelOutput):
        await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    assert await memory_store.list(scope=ADA) == []


async def test_exact_duplicate_short_circuits_without_a_model_call(memory_store: MemoryStore, memory: Memory) -> None:
    tea = await memory_store.add("Ada prefers green tea", scope=ADA)
    model = ScriptedModel([facts("ada prefers  GREEN tea")])
    result = await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    assert result.ops == [NoopOp(record_id=tea.id)] and result.model_calls == 1
    assert await current_texts(memory_store) == ["Ada prefers green tea"]


async def test_other_scopes_are_never_shown_nor_reachable(memory_store: MemoryStore, memory: Memory) -> None:
    bobs = await memory_store.add("Bob lives in Porto", scope=BOB)
    await memory_store.add("Ada lives in Lisbon", scope=ADA)
    model = ScriptedModel(
        [facts("Ada lives in Porto"), decision(("UPDATE", 1, "Ada lives in Porto")),
         decision(("ADD", None, "Ada lives in Porto"))]
    )  # fmt: skip
    result = await MemoryManager(model, memory).consolidate(CHAT, scope=ADA)
    shown = model.requests[1].messages[-1].content
    assert "Bob" not in shown and "[1]" not in shown
    # alias 1 would have been a foreign record
    assert "1 is not one of the listed memories" in model.requests[2].messages[-1].content
    assert result.ops == [AddOp(text="Ada lives in Porto")]
    assert await memory_store.get(bobs.id, scope=BOB) == bobs


async def test_refused_ops_are_reported(memory_store: MemoryStore, memory: Memory) -> None:
    bobs = await memory_store.add("Bob lives in Porto", scope=BOB)
    manager = MemoryManager(ScriptedModel([]), memory)
    result = await manager.memory.apply([UpdateOp(record_id=bobs.id, text="x")], scope=ADA, actor=manager.name)
    assert result.applied == [] and "not inside scope user_id=ada" in result.refused[0].reason


async def test_independent_candidates_are_decided_concurrently_in_one_journal_batch(
    memory_store: MemoryStore,
    memory: Memory,
) -> None:
    lisbon = await memory_store.add("Ada lives in Lisbon", scope=ADA)
    violin = await memory_store.add("Ada plays the violin", scope=ADA)
    in_flight, peak = 0, 0

    async def reply(messages: list[Message], info: RequestInfo) -> str:
        nonlocal in_flight, peak
        assert info.output_schema is not None
        if info.output_schema.name == "ExtractedFacts":
            return facts("Ada lives in Porto", "Ada plays the cello")
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        new = "Ada lives in Porto" if "Lisbon" in messages[-1].content else "Ada plays the cello"
        return decision(("UPDATE", 0, new))

    model = FunctionModel(reply)
    result = await MemoryManager(model, memory, neighbours=1).consolidate(CHAT, scope=ADA)
    assert result.model_calls == 3 and peak == 2
    shown = sorted(r.messages[-1].content for r in model.requests[1:])
    assert "Lisbon" in shown[0] and "violin" not in shown[0]
    assert "violin" in shown[1] and "Lisbon" not in shown[1]
    assert sorted(map(str, result.ops)) == sorted(
        map(str, [UpdateOp(record_id=lisbon.id, text="Ada lives in Porto", expected_version=1),
                  UpdateOp(record_id=violin.id, text="Ada plays the cello", expected_version=1)])
    )  # fmt: skip
    assert len({entry.batch_id for entry in result.applied}) == 1  # one journal transaction


def test_candidates_sharing_a_neighbour_are_grouped() -> None:
    a, b, c = (MemoryRecord(text=t) for t in ("a", "b", "c"))
    groups = independent_groups(["f1", "f2", "f3", "f4"], [[a], [b], [a, b], [c]])
    assert [(fs, sorted(r.text for r in rs)) for fs, rs in groups] == [
        (["f1", "f2", "f3"], ["a", "b"]),
        (["f4"], ["c"]),
    ]
    assert independent_groups(["x"], [[]]) == [(["x"], [])]
