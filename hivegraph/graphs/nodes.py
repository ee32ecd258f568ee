"""The nodes of a team graph: `recall`, one node per agent, and `consolidate`."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol
from uuid import UUID

from langgraph.runtime import Runtime

from hivegraph.agents.base import Agent, ContextBlock, Turn
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.state import RecalledState, TeamState, TurnState, WrittenState
from hivegraph.memory.condense import StepText
from hivegraph.memory.episodic import Turn as Episode
from hivegraph.memory.gmemory import InsightChange, Step
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.procedural import Procedure, render
from hivegraph.memory.types import Source, utcnow
from hivegraph.memory.vocabulary import Outcome
from hivegraph.models.base import Message, assistant, user
from hivegraph.models.tokens import TokenCounter, pack

GMEMORY = "gmemory"
"""The kind of the recalled block that carries an agent's G-Memory context."""


class Node(Protocol):
    """A team-graph node: LangGraph passes the state and, by keyword, the run-time context."""

    __name__: str

    def __call__(self, state: TeamState, *, runtime: Runtime[TeamContext]) -> Awaitable[dict[str, Any]]:
        """Run the node and return the state update."""
        ...


async def recall(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Find each agent's memories for the task, packed into that agent's token budget.

    With G-Memory on, each agent also gets one block: the insights for its role
    and the condensed trajectories of similar tasks that succeeded.
    """
    ctx = runtime.context
    counter = ctx.memory.counter
    recalled: dict[str, list[RecalledState]] = {}
    for name, agent in ctx.agents.items():
        policy = agent.memory
        found = await ctx.memory.recall(state["task"], scope=ctx.scope, k=policy.k, kinds=policy.read_kinds)
        kept = pack(found.hits, policy.token_budget, count=lambda h: _tokens(h, counter)).items
        recalled[name] = [_recalled(hit) for hit in kept]
    if not ctx.gmemory or not any(agent.memory.gmemory for agent in ctx.agents.values()):
        return {"recalled": recalled}
    team = await ctx.memory.gmemory.retrieve(state["task"], scope=ctx.scope, summarize=ctx.summarize)
    shown: list[str] = []
    for name, agent in ctx.agents.items():
        text = team.render(role=name) if agent.memory.gmemory else ""
        if text:
            top = team.tasks[0]
            recalled[name].append(RecalledState(id=str(top.id), kind=GMEMORY, text=text, score=top.similarity,
                                                run_id=top.run_id))  # fmt: skip
            shown += [str(i.id) for i in team.insights_for(name)]
    return {"recalled": recalled, "shown_insights": list(dict.fromkeys(shown))}


def agent_node(agent: Agent) -> Node:
    """A node in which `agent` takes its step, seeing its recalled memories and the team so far."""

    async def step(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        memories = state.get("recalled", {}).get(agent.name, [])
        context = [ContextBlock(id=m["id"], kind=m["kind"], text=m["text"], score=m["score"]) for m in memories]
        transcript = [Turn(agent=t["agent"], content=t["content"]) for t in state.get("turns", [])]
        turn = await agent.respond(
            task=state["task"], context=context, transcript=transcript, default_model=runtime.context.model
        )
        return {"turns": [TurnState(agent=turn.agent, content=turn.content)]}

    step.__name__ = agent.name
    return step


async def consolidate(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Write the run as episodic memory, let the memory manager update the facts, and record it in G-Memory.

    Every write is keyed by the run id, so a resumed run that replays this step
    writes nothing twice. G-Memory gets the task and its interaction graph; when
    the state carries an outcome, the insights shown are rescored and the
    reflector draws new ones.
    """
    ctx = runtime.context
    source = Source(run_id=ctx.run_id, agent="consolidate")
    turns = state.get("turns", [])
    now = utcnow()
    said = [("user", state["task"])] + [(t["agent"], t["content"]) for t in turns if t["content"]]
    episodes = [Episode(speaker=who, text=text, occurred_at=now, turn=n) for n, (who, text) in enumerate(said)]
    recorded = await ctx.memory.episodic.record(
        episodes, scope=ctx.scope, session_id=ctx.run_id, actor="consolidate", source=source,
        idempotency_key=f"{ctx.run_id}:episodes",
    )  # fmt: skip
    written = [WrittenState(event="ADD", record_id=str(r.id), kind=r.kind, text=r.text) for r in recorded]
    refused: list[str] = []
    if ctx.manager is not None:
        managed = await ctx.manager.consolidate(
            _transcript(state["task"], turns), scope=ctx.scope, source=source, idempotency_key=f"{ctx.run_id}:facts"
        )
        written += [_written(entry) for entry in managed.applied]
        refused += [f"{r.op.event}: {r.reason}" for r in managed.refused]
    if ctx.gmemory:
        written += await _record_in_gmemory(state, ctx)
    return {"written": written, "refused": refused}


async def _record_in_gmemory(state: TeamState, ctx: TeamContext) -> list[WrittenState]:
    """Record the task and its interaction graph; with a known outcome, rescore and reflect."""
    turns = state.get("turns", [])
    steps = [Step(agent=t["agent"], content=t["content"]) for t in turns]
    outcome = state.get("outcome")
    task = await ctx.memory.gmemory.record_task(
        state["task"], steps, scope=ctx.scope, run_id=ctx.run_id, outcome=outcome, actor="consolidate"
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
