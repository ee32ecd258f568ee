"""The nodes of a team graph: `recall`, one node per agent, and `consolidate`."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from langgraph.runtime import Runtime

from hivegraph.agents.base import Agent, ContextBlock, Turn
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.state import RecalledState, TeamState, TurnState, WrittenState
from hivegraph.memory.episodic import Turn as Episode
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.procedural import Procedure, render
from hivegraph.memory.types import Source, utcnow
from hivegraph.models.base import Message, assistant, user
from hivegraph.models.tokens import TokenCounter, pack


class Node(Protocol):
    """A team-graph node: LangGraph passes the state and, by keyword, the run-time context."""

    __name__: str

    def __call__(self, state: TeamState, *, runtime: Runtime[TeamContext]) -> Awaitable[dict[str, Any]]:
        """Run the node and return the state update."""
        ...


async def recall(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Find each agent's memories for the task, packed into that agent's token budget."""
    ctx = runtime.context
    counter = ctx.memory.counter
    recalled: dict[str, list[RecalledState]] = {}
    for name, agent in ctx.agents.items():
        policy = agent.memory
        found = await ctx.memory.recall(state["task"], scope=ctx.scope, k=policy.k, kinds=policy.read_kinds)
        kept = pack(found.hits, policy.token_budget, count=lambda h: _tokens(h, counter)).items
        recalled[name] = [_recalled(hit) for hit in kept]
    return {"recalled": recalled}


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
    """Write the run as episodic memory, then let the memory manager update the facts.

    Both writes are keyed by the run id, so a resumed run that replays this step
    writes nothing twice.
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
    return {"written": written, "refused": refused}


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
