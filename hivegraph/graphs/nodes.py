"""The nodes of a team graph: `recall`, one node per agent, and `consolidate`."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from langgraph.runtime import Runtime

from hivegraph.agents.base import Agent, ContextBlock, Turn
from hivegraph.graphs.context import TeamContext
from hivegraph.graphs.state import RecalledState, TeamState, TurnState, WrittenState
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.procedural import Procedure, render
from hivegraph.memory.store import ApplyResult
from hivegraph.memory.types import AddOp, MemoryOp, ScoredRecord, Source
from hivegraph.models.base import Message, assistant, user
from hivegraph.models.tokens import pack


class Node(Protocol):
    """A team-graph node: LangGraph passes the state and, by keyword, the run-time context."""

    __name__: str

    def __call__(self, state: TeamState, *, runtime: Runtime[TeamContext]) -> Awaitable[dict[str, Any]]:
        """Run the node and return the state update."""
        ...


async def recall(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Find each agent's memories for the task, packed into that agent's token budget."""
    ctx = runtime.context
    recalled: dict[str, list[RecalledState]] = {}
    for name, agent in ctx.agents.items():
        policy = agent.memory
        hits = await ctx.store.search(state["task"], scope=ctx.scope, k=policy.k, kinds=policy.read_kinds)
        kept = pack(hits, policy.token_budget, count=lambda h: ctx.counter.count(context_text(h))).items
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
    speakers = [("user", state["task"])] + [(t["agent"], t["content"]) for t in turns if t["content"]]
    episodes: list[MemoryOp] = [
        AddOp(text=f"{speaker}: {text}", kind="episodic", metadata={"turn": n, "speaker": speaker}, dedupe=False)
        for n, (speaker, text) in enumerate(speakers)
    ]
    results = [
        await ctx.store.apply(
            episodes, scope=ctx.scope, actor="consolidate", source=source, idempotency_key=f"{ctx.run_id}:episodes"
        )
    ]
    if ctx.manager is not None:
        managed = await ctx.manager.consolidate(
            _transcript(state["task"], turns), scope=ctx.scope, source=source, idempotency_key=f"{ctx.run_id}:facts"
        )
        results.append(ApplyResult(applied=managed.applied, refused=managed.refused))
    written = [_written(a) for r in results for a in r.applied]
    refused = [f"{r.op.event}: {r.reason}" for res in results for r in res.refused]
    return {"written": written, "refused": refused}


def _transcript(task: str, turns: list[TurnState]) -> list[Message]:
    return [user(task)] + [assistant(t["content"]).model_copy(update={"name": t["agent"]}) for t in turns]


def _recalled(hit: ScoredRecord) -> RecalledState:
    record = hit.record
    return RecalledState(
        id=str(record.id), kind=record.kind, text=context_text(hit), score=hit.score, run_id=record.source.run_id
    )


def context_text(hit: ScoredRecord) -> str:
    """How a recalled record reads in an agent's context (a procedure shows its steps, not only its task)."""
    if hit.record.kind == "procedural":
        return render(Procedure.from_record(hit.record))
    return hit.record.text


def _written(applied: JournalEntry) -> WrittenState:
    record = applied.after or applied.before
    record_id = str(record.id) if record is not None else getattr(applied.op, "record_id", None)
    return WrittenState(
        event=applied.op.event,
        record_id=str(record_id) if record_id is not None else None,
        kind=record.kind if record is not None else "semantic",
        text=record.text if record is not None else "",
    )
