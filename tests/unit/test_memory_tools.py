import json
import uuid

from hivegraph.agents.acting import ActLimits, act
from hivegraph.memory.facade import Memory
from hivegraph.memory.types import Scope
from hivegraph.models.base import user
from hivegraph.models.testing import ScriptedModel
from hivegraph.tools import memory_tools

ADA = Scope(user_id="ada")


async def test_remember_search_forget_round_trip(memory: Memory) -> None:
    tools = {t.name: t for t in memory_tools(memory, scope=ADA, actor="planner", run_id="r1")}
    added = json.loads(await tools["remember"].ainvoke({"text": "Ada is allergic to peanuts"}))
    found = json.loads(await tools["search_memory"].ainvoke({"query": "peanuts allergy"}))
    assert [f["id"] for f in found] == [added["id"]]
    (record,) = await memory.store.list(scope=ADA)
    assert record.source.agent == "planner" and record.source.run_id == "r1"
    assert json.loads(await tools["forget"].ainvoke({"memory_id": added["id"]})) == {"forgotten": added["id"]}
    assert json.loads(await tools["search_memory"].ainvoke({"query": "peanuts"})) == []


async def test_tools_stay_inside_their_scope(memory: Memory) -> None:
    bobs = await memory.add("Bob likes jazz", scope=Scope(user_id="bob"))
    tools = {t.name: t for t in memory_tools(memory, scope=ADA)}
    assert json.loads(await tools["search_memory"].ainvoke({"query": "jazz"})) == []
    refused = json.loads(await tools["forget"].ainvoke({"memory_id": str(bobs.id)}))
    assert "not inside scope user_id=ada" in refused["error"] and "bob" not in refused["error"]
    unknown = json.loads(await tools["forget"].ainvoke({"memory_id": str(uuid.uuid4())}))
    assert "no current memory record" in unknown["error"]
    assert "not a memory id" in json.loads(await tools["forget"].ainvoke({"memory_id": "7"}))["error"]


def raw_call(tool: str, arguments: str) -> str:
    """A constrained action whose arguments are raw JSON text (a model may write what `json.dumps` never would)."""
    return f'{{"action": "call", "tool": "{tool}", "arguments": {arguments}}}'


async def test_hostile_tool_arguments_are_refused_by_name_and_store_nothing(memory: Memory) -> None:
    tools = memory_tools(memory, scope=ADA, actor="planner")
    model = ScriptedModel([
        raw_call("remember", r'{"text": "Ada \ud800 likes tea"}'),  # a lone surrogate
        raw_call("search_memory", '{"query": "tea", "k": NaN}'),
        raw_call("remember", json.dumps({"text": "x" * 2001})),
        raw_call("remember", '{"text": 5}'),
        raw_call("forget", '{"memory_id": "../../etc/passwd"}'),
        json.dumps({"action": "answer", "answer": "done"}),
    ])  # fmt: skip
    acted = await act(model, [user("Remember that Ada likes tea.")], tools, limits=ActLimits(max_steps=5))
    results = [(u.tool, u.ok, u.result) for u in acted.tool_uses]
    assert [ok for _, ok, _ in results] == [False, False, False, False, True]
    assert "text: Input should be a valid string, unable to parse raw data as a unicode string" in results[0][2]
    assert "k: Input should be a finite number" in results[1][2]
    assert "text: String should have at most 2000 characters" in results[2][2]
    assert "text: Input should be a valid string" in results[3][2]
    assert "is not a memory id" in json.loads(results[4][2])["error"]
    assert all("errors.pydantic.dev" not in r for _, _, r in results), "feedback stays short for the model"
    assert "invalid arguments" in model.requests[1].messages[-1].content
    assert acted.answer == "done" and await memory.store.list(scope=ADA) == []
