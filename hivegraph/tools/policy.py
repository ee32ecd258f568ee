"""Memory tools bound to one agent's `MemoryPolicy` for one step of one run.

`search_memory` reads the policy's kinds in its read scope and never shows
another agent's private records; `remember` and `forget` write only the kinds
the policy writes, in its write scope. A call the policy does not allow raises
`PolicyViolationError` (the acting loop reports it to the model, the team
reports it in the run's `refused`) and changes nothing. Every write carries
its provenance: run, agent, the agent's step in the run, and the tool call.
"""

from __future__ import annotations

import json
from uuid import UUID

from langchain_core.tools import BaseTool

from hivegraph.agents.base import MemoryPolicy
from hivegraph.errors import PolicyViolationError
from hivegraph.memory.facade import Memory
from hivegraph.memory.types import DeleteOp, Scope, Source
from hivegraph.tools.memory import as_tools


def policy_tools(
    memory: Memory, policy: MemoryPolicy, *, team: Scope, agent: str, run_id: str, step: int
) -> list[BaseTool]:
    """`search_memory`, `remember` and `forget` for `agent` at turn `step` of run `run_id`, within `policy`."""
    read_scope = policy.scope_for(policy.read_scope, team, agent)
    write_scope = policy.scope_for(policy.write_scope, team, agent)
    calls = 0

    def source() -> Source:
        nonlocal calls
        calls += 1
        return Source(run_id=run_id, agent=agent, step=step, message_ids=[f"{run_id}/{step}/{agent}/tool-{calls}"])

    async def search_memory(query: str, k: int = 5) -> str:
        if not policy.read_kinds:
            raise PolicyViolationError(f"{agent} may not read memory (its policy reads no kind)")
        found = await memory.recall(query, scope=read_scope, k=2 * k, kinds=policy.read_kinds)
        seen = [h for h in found.hits if policy.may_see(h.loaded.scope, agent)][:k]
        return json.dumps([{"id": str(h.record_id), "text": h.text, "score": round(h.score, 3)} for h in seen])

    async def remember(text: str) -> str:
        if "semantic" not in policy.write_kinds:
            raise PolicyViolationError(
                f"{agent} may not write semantic memory (its policy writes {list(policy.write_kinds) or 'nothing'})"
            )
        record = await memory.add(text, scope=write_scope, actor=agent, source=source())
        return json.dumps({"id": str(record.id), "text": record.text})

    async def forget(memory_id: str) -> str:
        try:
            record_id = UUID(memory_id)
        except ValueError:
            return json.dumps({"error": f"{memory_id!r} is not a memory id"})
        record = await memory.get(record_id, scope=write_scope)
        if record is None or not policy.may_see(record.scope, agent) or record.kind not in policy.write_kinds:
            raise PolicyViolationError(
                f"{agent} may not forget memory {memory_id}: not a {'/'.join(policy.write_kinds) or 'writable'} "
                f"memory in its write scope {write_scope}"
            )
        result = await memory.apply([DeleteOp(record_id=record_id)], scope=write_scope, actor=agent, source=source())
        if result.refused:
            return json.dumps({"error": result.refused[0].reason})
        return json.dumps({"forgotten": memory_id})

    return as_tools(search_memory, remember, forget)
