"""Wiring: build every backend from settings and run teams with them.

`open_memory` (re-exported from `hivegraph.memory.facade`) opens the memory alone.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import ValidationError

from hivegraph.agents.base import Agent
from hivegraph.agents.distiller import LearnResult, ProcedureDistiller
from hivegraph.agents.manager import MemoryManager
from hivegraph.agents.reflector import Reflector, TrajectorySummarizer
from hivegraph.config import HivegraphSettings, ModelSettings, config_error, load_settings
from hivegraph.errors import GraphError
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.nodes import learn_in_gmemory
from hivegraph.graphs.patterns import TeamGraph, debate, pipeline, supervisor
from hivegraph.graphs.state import RecalledState, TeamState, TurnState, WrittenState
from hivegraph.memory.facade import Memory, open_memory
from hivegraph.memory.gmemory import GMemory, InsightChange
from hivegraph.memory.types import Scope, Source
from hivegraph.models._sync import run_sync
from hivegraph.models.base import ChatModel
from hivegraph.registry import CHAT_MODELS, CHECKPOINTERS, check_backends

__all__ = [
    "Hivegraph",
    "Team",
    "TeamLearned",
    "TeamRun",
    "TeamStep",
    "open_hivegraph",
    "open_hivegraph_sync",
    "open_memory",
]


@dataclass
class TeamRun:
    """The outcome of one team run."""

    run_id: str
    task: str
    turns: list[TurnState]
    recalled: dict[str, list[RecalledState]]
    written: list[WrittenState]
    refused: list[str]
    shown_insights: list[str] = field(default_factory=list[str])
    """The G-Memory insights the agents were shown (what `Team.learn` rescores)."""


@dataclass(frozen=True)
class TeamStep:
    """One node of a streamed run finished: its name and the state update it made."""

    run_id: str
    node: str
    update: dict[str, Any]


@dataclass
class TeamLearned(LearnResult):
    """What `Team.learn` did: the procedure part (Memp) and the G-Memory insights it rescored or revised."""

    insights: list[InsightChange] = field(default_factory=list[InsightChange])


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

    async def learn(self, run: TeamRun, *, success: bool) -> TeamLearned:
        """Tell the team how a run went.

        Procedures it used are scored and a successful run is distilled (Memp);
        with G-Memory on, the run's task gets its outcome, the insights the agents
        were shown gain or lose score, and the reflector revises the insights.
        Learning from the same run twice changes no score twice.
        """
        trajectory = [("user", run.task)] + [(turn["agent"], turn["content"]) for turn in run.turns]
        used = [UUID(m["id"]) for ms in run.recalled.values() for m in ms if m["kind"] == "procedural"]
        learned = await self.app.distiller.learn(
            self.app.memory.procedural, run.task, trajectory, success=success, scope=self.scope,
            used=list(dict.fromkeys(used)), source=Source(run_id=run.run_id, agent="learn"),
        )  # fmt: skip
        result = TeamLearned(**vars(learned))
        context = self.app.context(self.agents, scope=self.scope, run_id=run.run_id)
        if context.gmemory:
            result.insights = await learn_in_gmemory(
                context, run.task, run.turns, GMemory.task_id(self.scope, run.run_id),
                "success" if success else "failure", run.shown_insights,
            )  # fmt: skip
        return result

    async def resume(self, run_id: str) -> TeamRun:
        """Continue a checkpointed run of this scope from where it stopped.

        Raises:
            KeyScopeError: the run belongs to another scope (which one is not said).
            GraphError: this scope has no run with that id.

        """
        if not await self.app.memory.store.claim_run(run_id, scope=self.scope, create=False):
            raise GraphError(f"no run {run_id!r} in scope {self.scope} to resume")
        return await self._invoke(None, run_id)

    async def stream(self, task: str, *, run_id: str | None = None) -> AsyncIterator[TeamStep]:
        """Run the team on `task`, yielding each node's state update as soon as the node finishes."""
        run_id = run_id or uuid.uuid4().hex
        await self.app.memory.store.claim_run(run_id, scope=self.scope)
        config: RunnableConfig = {"configurable": {"thread_id": run_id}}
        context = self.app.context(self.agents, scope=self.scope, run_id=run_id)
        payload: TeamState = {"task": task, "turns": []}
        async for chunk in self.graph.astream(payload, config, context=context, stream_mode="updates"):  # pyright: ignore[reportUnknownMemberType]
            for node, update in cast(dict[str, Any], chunk).items():
                yield TeamStep(run_id=run_id, node=node, update=cast(dict[str, Any], update or {}))

    def run_sync(self, task: str, *, run_id: str | None = None) -> TeamRun:
        """`run` from synchronous code (on hivegraph's background event loop; see `open_hivegraph_sync`)."""
        return run_sync(self.run(task, run_id=run_id))

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
            shown_insights=state.get("shown_insights", []),
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
    reflector: Reflector | None = None
    """Draws G-Memory insights after tasks (None: G-Memory off, or no reflection)."""
    resources: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)
    """Closes what was opened after the backends (models from `chat_model`) when the `Hivegraph` closes."""
    _models: dict[str, ChatModel] = field(default_factory=dict[str, ChatModel], repr=False)

    def chat_model(self, overrides: Mapping[str, Any]) -> ChatModel:
        """A chat model for some agents: the `model` section with `overrides`, opened once and closed with the app.

        An agent given it talks to another model (or server) than the team's,
        e.g. `{"model": "qwen2.5-7b-instruct", "max_tokens": 512}`. Equal
        overrides share one client.

        Raises:
            ConfigError: an override names no model setting or has a wrong value (the field is named).

        """
        if not overrides:
            return self.model
        key = json.dumps(dict(overrides), sort_keys=True, default=str)
        if key not in self._models:
            merged = self.settings.model.model_dump() | dict(overrides)
            try:
                section = ModelSettings.model_validate(merged)
            except ValidationError as exc:
                raise config_error(exc, "agent ", field_prefix="model.") from None
            chat = CHAT_MODELS.load(section.provider).from_settings(self.settings.model_copy(update={"model": section}))
            self.resources.push_async_callback(chat.aclose)
            self._models[key] = chat
        return self._models[key]

    def team(self, agents: Sequence[Agent], *, scope: Scope) -> Team:
        """A pipeline team of `agents` (each acts once, in order) reading and writing memory in `scope`."""
        return self.team_of(pipeline(agents), agents, scope=scope)

    def supervisor_team(self, router: Agent, workers: Sequence[Agent], *, scope: Scope, max_turns: int = 6) -> Team:
        """A team in which `router` picks the worker who acts next, for at most `max_turns` worker turns."""
        return self.team_of(supervisor(router, workers, max_turns=max_turns), [router, *workers], scope=scope)

    def debate_team(self, proposers: Sequence[Agent], judge: Agent, *, scope: Scope, rounds: int = 1) -> Team:
        """A team whose proposers answer in parallel for `rounds` rounds before `judge` decides."""
        return self.team_of(debate(proposers, judge, rounds=rounds), [*proposers, judge], scope=scope)

    def team_of(self, graph: TeamGraph, agents: Sequence[Agent], *, scope: Scope) -> Team:
        """A team from a graph written by hand with hivegraph's nodes; `agents` are those its nodes run.

        Raises:
            GraphError: two agents share a name.

        """
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise GraphError(f"agent names must be unique; got {names}")
        compiled = graph.compile(checkpointer=self.checkpointer)  # pyright: ignore[reportUnknownMemberType]
        return Team(graph=compiled, app=self, agents={a.name: a for a in agents}, scope=scope)

    def context(self, agents: dict[str, Agent], *, scope: Scope, run_id: str) -> TeamContext:
        """The run-time context of one run."""
        config = self.settings.gmemory
        on = config.enabled and self.memory.graph is not None
        return TeamContext(
            model=self.model, memory=self.memory, manager=self.manager, scope=scope, run_id=run_id, agents=agents,
            gmemory=on, reflector=self.reflector if on else None, facts_from=self.settings.memory.facts_from,
            summarize=TrajectorySummarizer(self.model) if on and config.model_summaries else None,
        )  # fmt: skip


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
        app = Hivegraph(
            settings=settings, model=chat, memory=memory, manager=manager, checkpointer=checkpointer,
            distiller=ProcedureDistiller(chat, max_trajectory_chars=policy.max_trajectory_chars),
            reflector=Reflector(chat, memory, max_retries=settings.model.max_retries)
            if settings.gmemory.reflect else None,
        )  # fmt: skip
        stack.push_async_callback(app.resources.aclose)
        yield app


@contextmanager
def open_hivegraph_sync(
    settings: HivegraphSettings | None = None, *, model: ChatModel | None = None
) -> Generator[Hivegraph]:
    """`open_hivegraph` for synchronous code: the backends live on hivegraph's background event loop.

    Teams of the yielded `Hivegraph` run with `Team.run_sync`.
    """
    opened = open_hivegraph(settings, model=model)
    app = run_sync(opened.__aenter__())
    try:
        yield app
    except BaseException as exc:
        if not run_sync(opened.__aexit__(type(exc), exc, exc.__traceback__)):
            raise
    else:
        run_sync(opened.__aexit__(None, None, None))
