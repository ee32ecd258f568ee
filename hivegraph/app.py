"""Wiring: build every backend from settings and run teams with them.

`open_memory` (re-exported from `hivegraph.memory.facade`) opens the memory alone.
"""

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
from hivegraph.errors import GraphError
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.patterns import pipeline
from hivegraph.graphs.state import RecalledState, TeamState, TurnState, WrittenState
from hivegraph.memory.facade import Memory, open_memory
from hivegraph.memory.types import Scope, Source
from hivegraph.models.base import ChatModel
from hivegraph.registry import CHAT_MODELS, CHECKPOINTERS, check_backends

__all__ = ["Hivegraph", "Team", "TeamRun", "open_hivegraph", "open_memory"]


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
        await self.app.memory.store.claim_run(run_id, scope=self.scope)
        return await self._invoke({"task": task, "turns": []}, run_id)

    async def learn(self, run: TeamRun, *, success: bool) -> LearnResult:
        """Tell the team how a run went: procedures it used are scored, a successful run is distilled (Memp)."""
        trajectory = [("user", run.task)] + [(turn["agent"], turn["content"]) for turn in run.turns]
        used = [UUID(m["id"]) for ms in run.recalled.values() for m in ms if m["kind"] == "procedural"]
        return await self.app.distiller.learn(
            self.app.memory.procedural, run.task, trajectory, success=success, scope=self.scope,
            used=list(dict.fromkeys(used)), source=Source(run_id=run.run_id, agent="learn"),
        )  # fmt: skip

    async def resume(self, run_id: str) -> TeamRun:
        """Continue a checkpointed run of this scope from where it stopped.

        Raises:
            KeyScopeError: the run belongs to another scope (which one is not said).
            GraphError: this scope has no run with that id.

        """
        if not await self.app.memory.store.claim_run(run_id, scope=self.scope, create=False):
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
    """One configuration opened: the chat model, the memory, the manager and the checkpointer."""

    settings: HivegraphSettings
    model: ChatModel
    memory: Memory
    manager: MemoryManager
    checkpointer: BaseCheckpointSaver[str]
    distiller: ProcedureDistiller

    def team(self, agents: Sequence[Agent], *, scope: Scope) -> Team:
        """A pipeline team of `agents` reading and writing memory in `scope`."""
        graph = pipeline(agents).compile(checkpointer=self.checkpointer)  # pyright: ignore[reportUnknownMemberType]
        return Team(graph=graph, app=self, agents={a.name: a for a in agents}, scope=scope)

    def context(self, agents: dict[str, Agent], *, scope: Scope, run_id: str) -> TeamContext:
        """The run-time context of one run."""
        return TeamContext(
            model=self.model, memory=self.memory, manager=self.manager, scope=scope, run_id=run_id, agents=agents
        )


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
        memory = await stack.enter_async_context(open_memory(settings))
        checkpointer = await stack.enter_async_context(CHECKPOINTERS.load(settings.checkpointer.backend)(settings))
        policy = settings.memory
        manager = MemoryManager(
            chat, memory, neighbours=policy.manager_neighbours, max_candidates=policy.max_candidates,
            max_retries=settings.model.max_retries,
        )  # fmt: skip
        yield Hivegraph(
            settings=settings, model=chat, memory=memory, manager=manager, checkpointer=checkpointer,
            distiller=ProcedureDistiller(chat, max_trajectory_chars=policy.max_trajectory_chars),
        )  # fmt: skip
