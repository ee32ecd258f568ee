"""hivegraph teams on LangGraph's own server (`langgraph dev`, langgraph-api).

LangGraph's server compiles each graph of `langgraph.json` itself, with its own
checkpointer and store, and hands a run nothing but serializable config and
context. A team's nodes need live objects (the chat model, the memory, the
memory manager: a `TeamContext`), so three pieces meet in `langgraph.json`:

- `store.path` = `hivegraph.server.hivegraph_server_store`: opens hivegraph once
  per server process from its settings (`HIVEGRAPH_CONFIG`, `hivegraph.yaml`,
  `HIVEGRAPH_*`) and yields a `ServerStore`: the memory as LangGraph's
  `BaseStore` (so `runtime.store` and the server's `/store` API read and write
  hivegraph memory), carrying the opened `Hivegraph` app.
- `checkpointer.path` = `hivegraph.server.hivegraph_checkpointer`: the configured
  checkpointer (`checkpointer.backend`: SQLite by default, PostgreSQL on the server profile).
- each graph is `served_graph(team_graph, agents, scope=...)`: the team's
  `StateGraph`, exported without a checkpointer or store of its own, whose
  context is `ServedContext` (plain data a client may send) and whose nodes
  build the run's `TeamContext` from `runtime.store`'s app, the thread id (the
  run id: memory written by a run names its thread) and the context's scope.

So the server runs the same nodes, memory and checkpoints as `Team.run`; a
thread is a hivegraph run id, claimed by the team's scope on its first step.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.runtime import Runtime

from hivegraph.agents.base import Agent
from hivegraph.app import Hivegraph, open_hivegraph
from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import GraphError
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.patterns import TeamGraph
from hivegraph.graphs.state import TeamState
from hivegraph.integrations.langgraph_store import HivegraphStore
from hivegraph.memory.types import Scope
from hivegraph.models.base import ChatModel
from hivegraph.registry import CHECKPOINTERS

__all__ = [
    "ServedContext",
    "ServedGraph",
    "ServerStore",
    "hivegraph_checkpointer",
    "hivegraph_server_store",
    "served_graph",
]

_TeamNode = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ServedContext:
    """What a client may send as a run's `context`: the scope fields that replace the team's own."""

    user_id: str | None = None
    """The user the run works for (default: the team scope's)."""
    team_id: str | None = None
    """The team scope (default: the one the graph was served with)."""


ServedGraph = StateGraph[TeamState, ServedContext, TeamState, TeamState]


class ServerStore(HivegraphStore):
    """hivegraph memory as the server's `BaseStore`, carrying the opened app that served graphs run with."""

    def __init__(self, app: Hivegraph) -> None:
        """Serve `app.memory` as items (semantic records, namespaces mapped to scopes).

        Args:
            app: The opened hivegraph app; its memory is the store's.

        """
        super().__init__(app.memory)
        self.app = app


@asynccontextmanager
async def hivegraph_server_store(
    settings: HivegraphSettings | None = None, *, model: ChatModel | None = None
) -> AsyncGenerator[ServerStore]:
    """Open hivegraph (memory, chat model, memory manager) for a server process; `store.path` in `langgraph.json`.

    The app's own checkpointer is kept in memory and never used: the server
    checkpoints through `checkpointer.path` (`hivegraph_checkpointer`).

    Args:
        settings: The configuration (default: `load_settings()`, as the server calls it with no arguments).
        model: Replaces the configured chat model (tests use this).

    Raises:
        ConfigError: the configuration is invalid or names an unknown backend.
        BackendUnavailableError: a configured server cannot be reached.

    """
    settings = settings or load_settings()
    unused = settings.checkpointer.model_copy(update={"backend": "memory"})
    async with open_hivegraph(settings.model_copy(update={"checkpointer": unused}), model=model) as app:
        yield ServerStore(app)


@asynccontextmanager
async def hivegraph_checkpointer() -> AsyncGenerator[BaseCheckpointSaver[str]]:
    """The configured checkpointer (`checkpointer.backend`), opened on entry; `checkpointer.path` in `langgraph.json`.

    Raises:
        ConfigError: the configuration is invalid or names an unknown backend.
        BackendUnavailableError: the checkpointer's server cannot be reached.

    """
    settings = load_settings()
    async with CHECKPOINTERS.load(settings.checkpointer.backend)(settings) as saver:
        yield saver


def served_graph(graph: TeamGraph, agents: Sequence[Agent], *, scope: Scope) -> ServedGraph:
    """`graph` for LangGraph's server: the same nodes and edges, run with a `TeamContext` built per step.

    Each node that reads the run-time context gets the `TeamContext` of its run:
    the app of the `ServerStore` the server passes as `runtime.store`, `agents`,
    `scope` with the run's `ServedContext` fields applied, and the thread id as
    the run id. The result is not compiled: the server compiles it with its own
    checkpointer and store.

    Args:
        graph: A team graph (`pipeline`, `supervisor`, `debate` or one written with hivegraph's nodes).
        agents: The agents its nodes run.
        scope: The team's memory scope.

    Raises:
        GraphError: two agents share a name.

    """
    by_name = {a.name: a for a in agents}
    if len(by_name) != len(agents):
        raise GraphError(f"agent names must be unique; got {[a.name for a in agents]}")
    served = cast(ServedGraph, copy.copy(graph))
    served.context_schema = ServedContext
    served.nodes = dict(graph.nodes)  # pyright: ignore[reportAttributeAccessIssue] - a copy, not the team graph's
    for name, spec in graph.nodes.items():
        node = _team_node(spec.runnable)
        if node is None:
            continue
        del served.nodes[name]
        kept: Any = spec  # the node's options, as `add_node` takes them (langgraph leaves some generic)
        served.add_node(  # pyright: ignore[reportUnknownMemberType] - langgraph overloads
            name, _with_team_context(node, by_name, scope), metadata=kept.metadata, input_schema=kept.input_schema,
            retry_policy=kept.retry_policy, cache_policy=kept.cache_policy, destinations=kept.ends or None,
            defer=kept.defer, timeout=kept.timeout, trace_policy=kept.trace_policy,
        )  # fmt: skip
    return served


def _team_node(runnable: object) -> _TeamNode | None:
    """The async node function behind a node's runnable when it reads the run-time context, else None."""
    fn = getattr(runnable, "afunc", None)
    if fn is None or "runtime" not in inspect.signature(fn).parameters:
        return None
    return cast(_TeamNode, fn)


def _with_team_context(node: _TeamNode, agents: dict[str, Agent], scope: Scope) -> _TeamNode:
    async def served(state: TeamState, config: RunnableConfig, *, runtime: Runtime[ServedContext]) -> Any:
        context = await team_context(runtime, config, agents, scope)
        return await node(state, runtime=cast("Runtime[Any]", runtime).override(context=context))

    served.__name__ = node.__name__
    return served


async def team_context(
    runtime: Runtime[ServedContext], config: RunnableConfig, agents: dict[str, Agent], scope: Scope
) -> TeamContext:
    """The `TeamContext` of a served run: the store's app, the thread as run id, the context's scope fields.

    Raises:
        GraphError: the server's store is not a `ServerStore`, or the run has no thread.
        KeyScopeError: the thread id is another scope's run id.

    """
    store = runtime.store
    if not isinstance(store, ServerStore):
        raise GraphError(
            "a served hivegraph team needs the server's store to be hivegraph's: set store.path to "
            f"'hivegraph.server.hivegraph_server_store' in langgraph.json (got {type(store).__name__})"
        )
    run_id = config.get("configurable", {}).get("thread_id")
    if not run_id:
        raise GraphError("a served hivegraph team runs on a thread (its id is the run id)")
    asked = runtime.context or ServedContext()
    scope = scope.model_copy(update={k: v for k, v in vars(asked).items() if v is not None})
    await store.app.memory.store.claim_run(str(run_id), scope=scope)
    return store.app.context(agents, scope=scope, run_id=str(run_id))
