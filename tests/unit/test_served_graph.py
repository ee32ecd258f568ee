"""Team graphs as LangGraph's server runs them: compiled by the server, with its store and serializable context."""

from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from hivegraph.agents import Agent
from hivegraph.errors import GraphError
from hivegraph.graphs.patterns import pipeline, supervisor
from hivegraph.graphs.state import TeamState
from hivegraph.memory.types import Scope
from hivegraph.server import ServedContext, ServedGraph, hivegraph_checkpointer, hivegraph_server_store, served_graph
from tests.unit.test_team_graph import SCOPE, agents, team_model, unit_settings

Compiled = CompiledStateGraph[TeamState, ServedContext, TeamState, TeamState]


def compiled(graph: ServedGraph, store: BaseStore) -> Compiled:
    """As the server compiles an exported graph: its own checkpointer and store."""
    return graph.compile(checkpointer=InMemorySaver(), store=store)  # pyright: ignore[reportUnknownMemberType]


async def run(graph: Compiled, task: str, thread: str, context: ServedContext | None = None) -> dict[str, Any]:
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    return await graph.ainvoke({"task": task, "turns": []}, config, context=context)  # pyright: ignore[reportUnknownMemberType]


async def test_served_pipeline_runs_on_the_store_app_and_writes_memory_under_the_thread(tmp_path: Path) -> None:
    members = agents()
    async with hivegraph_server_store(unit_settings(tmp_path), model=team_model()) as store:
        await store.aput(("users", "ada", "teams", "t", "facts"), "diet", {"text": "Ada is allergic to peanuts"})
        graph = compiled(served_graph(pipeline(members), members, scope=SCOPE), store)
        state = await run(graph, "Plan a dinner without peanuts.", "thread-1", ServedContext())
        records = await store.memory.journal.records(scope=SCOPE)
    assert [t["agent"] for t in state["turns"]] == ["planner", "writer"]
    assert any("peanuts" in m["text"] for m in state["recalled"]["planner"])  # the item put through the store
    assert state["written"] and {w["record_id"] for w in state["written"]} <= {str(r.id) for r in records}
    assert {r.source.run_id for r in records if r.kind == "episodic"} == {"thread-1"}
    assert (graph.get_context_jsonschema() or {})["properties"].keys() == {"user_id", "team_id"}


async def test_context_fields_replace_the_team_scope(tmp_path: Path) -> None:
    members = agents()
    async with hivegraph_server_store(unit_settings(tmp_path), model=team_model()) as store:
        graph = compiled(served_graph(pipeline(members), members, scope=SCOPE), store)
        await run(graph, "Plan a lunch.", "thread-2", ServedContext(user_id="bob"))
        bobs = await store.memory.journal.records(scope=Scope(user_id="bob", team_id="t"))
        adas = await store.memory.journal.records(scope=Scope(user_id="ada"))
    assert {r.source.run_id for r in bobs if r.kind == "episodic"} == {"thread-2"} and not adas


async def test_served_supervisor_keeps_its_routes(tmp_path: Path) -> None:
    router, workers = Agent(name="lead", instructions="You route."), agents()
    async with hivegraph_server_store(unit_settings(tmp_path), model=team_model()) as store:
        graph = compiled(served_graph(supervisor(router, workers, max_turns=1), [router, *workers], scope=SCOPE), store)
        with pytest.raises(Exception, match="Route"):  # the router ran, with a model that has no route reply
            await run(graph, "Plan.", "thread-3")
    assert set(graph.get_graph().nodes) >= {"lead", "planner", "writer", "consolidate"}


async def test_a_store_that_is_not_hivegraphs_is_refused() -> None:
    members = agents()
    graph = compiled(served_graph(pipeline(members), members, scope=SCOPE), InMemoryStore())
    with pytest.raises(GraphError, match="hivegraph_server_store"):
        await run(graph, "Plan.", "x")


async def test_checkpointer_factory_opens_the_configured_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEGRAPH_DATA_DIR", str(tmp_path))
    async with hivegraph_checkpointer() as saver:
        assert type(saver).__name__ == "AsyncSqliteSaver"
    assert (tmp_path / "checkpoints.sqlite").is_file()
