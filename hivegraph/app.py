"""Wiring: build every backend from settings and run teams with them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from hivegraph.agents.base import Agent
from hivegraph.agents.distiller import LearnResult, ProcedureDistiller
from hivegraph.agents.manager import MemoryManager
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import ConfigError, GraphError
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.patterns import pipeline
from hivegraph.graphs.state import RecalledState, TeamState, TurnState, WrittenState
from hivegraph.memory.episodic import EpisodicMemory
from hivegraph.memory.keyword import KeywordIndex
from hivegraph.memory.procedural import ProceduralMemory
from hivegraph.memory.retrieval import HybridRetriever
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import VectorIndex
from hivegraph.memory.types import Scope, Source
from hivegraph.models.base import ChatModel
from hivegraph.models.tokens import TokenCounter
from hivegraph.registry import CHAT_MODELS, CHECKPOINTERS, JOURNALS, VECTOR_STORES, check_backends


@dataclass
class TeamRun:
    """The outcome of one team run."""

    run_id: str
    task: str
    turns: list[TurnState]
    recalled: dict[str, list[RecalledState]]
    written: list[WrittenState]
    refused: list[str]


@dataclass
class Team:
    """A compiled team graph plus the backends its nodes use."""

    graph: CompiledStateGraph[TeamState, TeamContext, TeamState, TeamState]
    app: Hivegraph
    agents: dict[str, Agent]
    scope: Scope

    async def run(self, task: str, *, run_id: str | None = None) -> TeamRun:
        """Run the team on `task`; the run is checkpointed under `run_id`, which becomes this scope's.

        Raises:
            KeyScopeError: `run_id` was used by another scope (which one is not said).

        """
        run_id = run_id or uuid.uuid4().hex
        await self.app.store.claim_run(run_id, scope=self.scope)
        return await self._invoke({"task": task, "turns": []}, run_id)

    async def learn(self, run: TeamRun, *, success: bool) -> LearnResult:
        """Tell the team how a run went: procedures it used are scored, a successful run is distilled (Memp)."""
        trajectory = [("user", run.task)] + [(turn["agent"], turn["content"]) for turn in run.turns]
        used = [UUID(m["id"]) for ms in run.recalled.values() for m in ms if m["kind"] == "procedural"]
        return await self.app.distiller.learn(
            self.app.procedures, run.task, trajectory, success=success, scope=self.scope,
            used=list(dict.fromkeys(used)), source=Source(run_id=run.run_id, agent="learn"),
        )  # fmt: skip

    async def resume(self, run_id: str) -> TeamRun:
        """Continue a checkpointed run of this scope from where it stopped.

        Raises:
            KeyScopeError: the run belongs to another scope (which one is not said).
            GraphError: this scope has no run with that id.

        """
        if not await self.app.store.claim_run(run_id, scope=self.scope, create=False):
            raise GraphError(f"no run {run_id!r} in scope {self.scope} to resume")
        return await self._invoke(None, run_id)

    async def _invoke(self, payload: TeamState | None, run_id: str) -> TeamRun:
        config: RunnableConfig = {"configurable": {"thread_id": run_id}}
        context = self.app.context(self.agents, scope=self.scope, run_id=run_id)
        state = cast(dict[str, Any], await self.graph.ainvoke(payload, config, context=context))  # pyright: ignore[reportUnknownMemberType]
        return TeamRun(
            run_id=run_id,
            task=state["task"],
            turns=state.get("turns", []),
            recalled=state.get("recalled", {}),
            written=state.get("written", []),
            refused=state.get("refused", []),
        )


@dataclass
class Hivegraph:
    """Every backend of one configuration, opened together and closed together."""

    settings: HivegraphSettings
    model: ChatModel
    store: MemoryStore
    retriever: HybridRetriever
    episodic: EpisodicMemory
    manager: MemoryManager
    counter: TokenCounter
    checkpointer: BaseCheckpointSaver[str]
    procedures: ProceduralMemory
    distiller: ProcedureDistiller

    def team(self, agents: Sequence[Agent], *, scope: Scope) -> Team:
        """A pipeline team of `agents` reading and writing memory in `scope`."""
        graph = pipeline(agents).compile(checkpointer=self.checkpointer)  # pyright: ignore[reportUnknownMemberType]
        return Team(graph=graph, app=self, agents={a.name: a for a in agents}, scope=scope)

    def context(self, agents: dict[str, Agent], *, scope: Scope, run_id: str) -> TeamContext:
        """The run-time context of one run."""
        return TeamContext(
            model=self.model, store=self.store, retriever=self.retriever, episodic=self.episodic,
            manager=self.manager, counter=self.counter,
            scope=scope, run_id=run_id, agents=agents,
        )  # fmt: skip


def keyword_index(store: MemoryStore) -> KeywordIndex:
    """The keyword projection `open_memory` attached to `store`.

    Raises:
        ConfigError: the store was built without one.

    """
    for projection in store.projections:
        if isinstance(projection, KeywordIndex):
            return projection
    raise ConfigError("this memory store has no keyword index; open it with open_memory()")


@asynccontextmanager
async def open_memory(settings: HivegraphSettings, *, catch_up: bool = True) -> AsyncGenerator[MemoryStore, None]:
    """The configured memory store (vector index + journal), caught up with its journal.

    With `catch_up=False` the store is not opened (`MemoryStore.open`): the
    stored indexes stay exactly as found, not caught up, re-derived or repaired,
    and the in-process keyword index stays empty. `verify` and `rebuild` need that.

    Raises:
        ConfigError: a backend name is unknown or a setting is invalid.
        BackendUnavailableError: a configured server cannot be reached.

    """
    check_backends(settings)
    index: VectorIndex = VECTOR_STORES.load(settings.vector_store.backend).from_settings(settings)
    try:
        journal = JOURNALS.load(settings.journal.backend).from_settings(settings)
    except BaseException:
        await index.aclose()
        raise
    store = MemoryStore(
        index, journal=journal, projections=[KeywordIndex()], max_text_chars=settings.memory.max_text_chars
    )
    try:
        yield await store.open() if catch_up else store
    finally:
        await store.aclose()


@asynccontextmanager
async def open_hivegraph(
    settings: HivegraphSettings | None = None, *, model: ChatModel | None = None
) -> AsyncGenerator[Hivegraph, None]:
    """Open every configured backend; `model` replaces the configured chat model (tests use this).

    Raises:
        ConfigError: a backend name is unknown or a setting is invalid.
        BackendUnavailableError: a configured server cannot be reached.

    """
    settings = settings or load_settings()
    check_backends(settings)
    async with AsyncExitStack() as stack:
        chat = model
        if chat is None:
            chat = CHAT_MODELS.load(settings.model.provider).from_settings(settings)
            stack.push_async_callback(chat.aclose)
        store = await stack.enter_async_context(open_memory(settings))
        checkpointer = await stack.enter_async_context(CHECKPOINTERS.load(settings.checkpointer.backend)(settings))
        policy = settings.memory
        manager = MemoryManager(
            chat, store, neighbours=policy.manager_neighbours, max_candidates=policy.max_candidates,
            max_retries=settings.model.max_retries,
        )  # fmt: skip
        counter = TokenCounter(settings.model.model)
        retriever = HybridRetriever(store, keyword_index(store), counter=counter)
        yield Hivegraph(
            settings=settings, model=chat, store=store, manager=manager, counter=counter, checkpointer=checkpointer,
            retriever=retriever, episodic=EpisodicMemory(store, retriever),
            procedures=ProceduralMemory(
                store, min_uses=policy.procedural_min_uses, deprecate_below=policy.procedural_deprecate_below
            ),
            distiller=ProcedureDistiller(chat, max_trajectory_chars=policy.max_trajectory_chars),
        )  # fmt: skip
