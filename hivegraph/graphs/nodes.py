"""The nodes of a team graph: `recall`, one node per agent, and `consolidate`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from langgraph.runtime import Runtime

from hivegraph.agents.base import Agent, ContextBlock, Turn
from hivegraph.errors import PolicyViolationError
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.state import RecalledState, TeamState, ToolUseState, TurnState, WrittenState
from hivegraph.memory.condense import StepText
from hivegraph.memory.episodic import Turn as Episode
from hivegraph.memory.gmemory import InsightChange, Step
from hivegraph.memory.gmemory_types import GMemoryContext
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.procedural import Procedure, render
from hivegraph.memory.types import Scalar, Source, utcnow
from hivegraph.memory.vocabulary import Outcome
from hivegraph.models.base import Message, assistant, user
from hivegraph.models.tokens import TokenCounter, pack
from hivegraph.tools.policy import policy_tools

GMEMORY = "gmemory"
"""The kind of the recalled block that carries an agent's G-Memory context."""


class Node(Protocol):
    """A team-graph node: LangGraph passes the state and, by keyword, the run-time context."""

    __name__: str

    def __call__(self, state: TeamState, *, runtime: Runtime[TeamContext]) -> Awaitable[dict[str, Any]]:
        """Run the node and return the state update."""
        ...


async def recall(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Find every agent's memories for the task, each packed into that agent's token budget (concurrently).

    With G-Memory on, each agent also gets one block: the insights for its role
    and the condensed trajectories of similar tasks that succeeded.
    """
    ctx = runtime.context
    agents = list(ctx.agents.values())
    found = await asyncio.gather(*(_recall_records(agent, state["task"], ctx) for agent in agents))
    recalled = {agent.name: memories for agent, memories in zip(agents, found, strict=True)}
    if not _uses_gmemory(ctx, agents):
        return {"recalled": recalled}
    team = await ctx.memory.gmemory.retrieve(state["task"], scope=ctx.scope, summarize=ctx.summarize)
    shown: list[str] = []
    for agent in agents:
        shown += _add_gmemory(team, agent, recalled[agent.name])
    return {"recalled": recalled, "shown_insights": list(dict.fromkeys(shown))}


async def recall_for(agent: Agent, state: TeamState, ctx: TeamContext) -> dict[str, Any]:
    """The state update that puts `agent`'s memories (and its G-Memory block) in front of it, by its policy."""
    memories = await _recall_records(agent, state["task"], ctx)
    if not _uses_gmemory(ctx, [agent]):
        return {"recalled": {agent.name: memories}}
    team = await ctx.memory.gmemory.retrieve(state["task"], scope=ctx.scope, summarize=ctx.summarize)
    return {"recalled": {agent.name: memories}, "shown_insights": _add_gmemory(team, agent, memories)}


async def _recall_records(agent: Agent, task: str, ctx: TeamContext) -> list[RecalledState]:
    policy = agent.memory
    if not policy.read_kinds or policy.k < 1:
        return []
    scope = policy.scope_for(policy.read_scope, ctx.scope, agent.name)
    found = await ctx.memory.recall(task, scope=scope, k=2 * policy.k, kinds=policy.read_kinds)
    seen = [hit for hit in found.hits if policy.may_see(hit.loaded.scope, agent.name)][: policy.k]
    kept = pack(seen, policy.token_budget, count=lambda h: _tokens(h, ctx.memory.counter)).items
    return [_recalled(hit) for hit in kept]


def _uses_gmemory(ctx: TeamContext, agents: Sequence[Agent]) -> bool:
    return ctx.gmemory and any(agent.memory.gmemory for agent in agents)


def _add_gmemory(team: GMemoryContext, agent: Agent, memories: list[RecalledState]) -> list[str]:
    """Append `agent`'s G-Memory block to its memories; the ids of the insights it shows."""
    text = team.render(role=agent.name) if agent.memory.gmemory else ""
    if not text:
        return []
    top = team.tasks[0]
    memories.append(RecalledState(id=str(top.id), kind=GMEMORY, text=text, score=top.similarity, run_id=top.run_id))
    return [str(i.id) for i in team.insights_for(agent.name)]


def agent_node(agent: Agent, *, recall_first: bool = True) -> Node:
    """A node in which `agent` takes its step, seeing its memories and the team so far.

    With `recall_first` (the patterns' way) the agent recalls by its own policy
    at the start of every step; without it, it reads what a `recall` node put
    in the state.
    """

    async def step(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        ctx = runtime.context
        update: dict[str, Any] = await recall_for(agent, state, ctx) if recall_first else {}
        memories = update.get("recalled", state.get("recalled", {})).get(agent.name, [])
        step_index = len(state.get("turns", []))
        tools = (policy_tools(ctx.memory, agent.memory, team=ctx.scope, agent=agent.name, run_id=ctx.run_id,
                              step=step_index) if agent.memory.tools else [])  # fmt: skip
        turn = await agent.respond(
            task=state["task"], context=context_blocks(memories), transcript=transcript_of(state),
            default_model=ctx.model, extra_tools=tools,
        )  # fmt: skip
        refused = [f"{agent.name} step {step_index}: {use.result}" for use in turn.tool_uses
                   if use.result.startswith(PolicyViolationError.__name__)]  # fmt: skip
        return {**update, "turns": [turn_state(turn)], **({"refused": refused} if refused else {})}

    step.__name__ = agent.name
    return step


def context_blocks(memories: Sequence[RecalledState]) -> list[ContextBlock]:
    """Recalled memories as an agent's prompt shows them."""
    return [ContextBlock(id=m["id"], kind=m["kind"], text=m["text"], score=m["score"]) for m in memories]


def transcript_of(state: TeamState) -> list[Turn]:
    """The turns so far, as agents read them."""
    return [Turn(agent=t["agent"], content=t["content"]) for t in state.get("turns", [])]


def turn_state(turn: Turn) -> TurnState:
    """A turn as plain state data (tool calls included)."""
    uses = [ToolUseState(tool=u.tool, arguments=u.arguments, result=u.result, ok=u.ok, step=u.step)
            for u in turn.tool_uses]  # fmt: skip
    return TurnState(agent=turn.agent, content=turn.content, tool_uses=uses)


async def consolidate(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Write the run as episodic memory, let the memory manager update the facts, and record it in G-Memory.

    Every write is keyed by the run id and how many consolidations the run has
    done, so a resumed run that replays this step writes nothing twice, and a
    graph that consolidates twice in one run writes each time. G-Memory gets the task and its interaction graph; when
    the state carries an outcome, the insights shown are rescored and the
    reflector draws new ones.
    """
    ctx = runtime.context
    source = Source(run_id=ctx.run_id, agent="consolidate")
    turns = state.get("turns", [])
    done = state.get("consolidations", 0)
    key = ctx.run_id if done == 0 else f"{ctx.run_id}:{done}"
    recorded = await ctx.memory.episodic.record(
        episodes_of(state["task"], turns, utcnow()), scope=ctx.scope, session_id=ctx.run_id, actor="consolidate",
        source=source, idempotency_key=f"{key}:episodes",
    )  # fmt: skip
    written = [WrittenState(event="ADD", record_id=str(r.id), kind=r.kind, text=r.text) for r in recorded]
    refused: list[str] = []
    if ctx.manager is not None:
        managed = await ctx.manager.consolidate(
            _transcript(state["task"], turns if ctx.facts_from == "conversation" else []),
            scope=ctx.scope,
            source=source,
            idempotency_key=f"{key}:facts",
        )
        written += [_written(entry) for entry in managed.applied]
        refused += [f"{r.op.event}: {r.reason}" for r in managed.refused]
    if ctx.gmemory:
        written += await _record_in_gmemory(state, ctx, key)
    return {"written": written, "refused": refused, "consolidations": done + 1}


async def _record_in_gmemory(state: TeamState, ctx: TeamContext, key: str) -> list[WrittenState]:
    """Record the task and its interaction graph under `key`; with a known outcome, rescore and reflect.

    `key` is the run id for the run's first consolidation.
    """
    turns = state.get("turns", [])
    steps = [Step(agent=t["agent"], content=t["content"]) for t in turns]
    outcome = state.get("outcome")
    task = await ctx.memory.gmemory.record_task(
        state["task"], steps, scope=ctx.scope, run_id=key, outcome=outcome, actor="consolidate"
    )
    written = [WrittenState(event="ADD", record_id=str(task.task.id), kind=task.task.kind, text=task.task.text)]
    if outcome is not None:
        lesson = await learn_in_gmemory(
            ctx, state["task"], turns, task.task.id, outcome, state.get("shown_insights", [])
        )
        written += [_written(e) for change in lesson for e in change.entries if e.after is not None]
    return written


async def learn_in_gmemory(
    ctx: TeamContext, task: str, turns: Sequence[TurnState], task_id: UUID, outcome: Outcome, shown: Sequence[str]
) -> list[InsightChange]:
    """Set a recorded task's outcome, rescore the insights shown, and let the reflector revise the insights."""
    shown_ids = [UUID(i) for i in shown]
    if ctx.reflector is None:
        await ctx.memory.gmemory.set_outcome(task_id, outcome, scope=ctx.scope)
        return await ctx.memory.gmemory.reward(
            shown_ids, task_id=task_id, success=outcome == "success", scope=ctx.scope
        )
    steps = [StepText(t["agent"], t["content"], n) for n, t in enumerate(turns)]
    lesson = await ctx.reflector.learn(
        task, steps, outcome=outcome, task_id=task_id, scope=ctx.scope, shown=shown_ids, roles=list(ctx.agents)
    )
    return lesson.rewards + (lesson.reflection.changes if lesson.reflection is not None else [])


def episodes_of(task: str, turns: Sequence[TurnState], now: datetime) -> list[Episode]:
    """The run as episodic turns: the task, then each agent's tool calls and what it said.

    Each turn's metadata names where it came from: `agent`, `step` (the agent
    turn's index in the run) and `origin` (`task`, `message` or `tool_result`,
    with `tool` naming the tool).
    """
    said: list[tuple[str, str, dict[str, Scalar]]] = [("user", task, {"origin": "task"})]
    for n, turn in enumerate(turns):
        for use in turn.get("tool_uses", []):
            call = f"{use['tool']}({json.dumps(use['arguments'], sort_keys=True)})"
            text = f"called {call} -> {'' if use['ok'] else 'error: '}{use['result']}"
            said.append((turn["agent"], text, {"agent": turn["agent"], "step": n, "origin": "tool_result",
                                               "tool": use["tool"], "tool_step": use["step"]}))  # fmt: skip
        if turn["content"]:
            said.append((turn["agent"], turn["content"], {"agent": turn["agent"], "step": n, "origin": "message"}))
    return [Episode(speaker=who, text=text, occurred_at=now, turn=i, metadata=meta)
            for i, (who, text, meta) in enumerate(said)]  # fmt: skip


def _transcript(task: str, turns: list[TurnState]) -> list[Message]:
    return [user(task)] + [assistant(t["content"]).model_copy(update={"name": t["agent"]}) for t in turns]


def _tokens(hit: MemoryHit, counter: TokenCounter) -> int:
    """The hit's stored token count, unless it reads differently in a context (a procedure shows its steps)."""
    if hit.tokens is not None and hit.kind != "procedural":
        return hit.tokens
    return counter.count(context_text(hit))


def _recalled(hit: MemoryHit) -> RecalledState:
    record = hit.loaded
    return RecalledState(
        id=str(record.id), kind=record.kind, text=context_text(hit), score=hit.score, run_id=record.source.run_id
    )


def context_text(hit: MemoryHit) -> str:
    """How a recalled record reads in an agent's context (a procedure shows its steps, not only its task)."""
    if hit.kind == "procedural":
        return render(Procedure.from_record(hit.loaded))
    return hit.text


def _written(applied: JournalEntry) -> WrittenState:
    record = applied.after or applied.before
    record_id = str(record.id) if record is not None else getattr(applied.op, "record_id", None)
    return WrittenState(
        event=applied.op.event,
        record_id=str(record_id) if record_id is not None else None,
        kind=record.kind if record is not None else "semantic",
        text=record.text if record is not None else "",
    )
