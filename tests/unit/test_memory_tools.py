import json
import uuid

from hivegraph.memory.facade import Memory
from hivegraph.memory.types import Scope
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
