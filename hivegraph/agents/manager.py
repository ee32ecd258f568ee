"""The memory manager: turns conversation into ADD / UPDATE / DELETE / NOOP ops.

For a batch of messages it extracts candidate facts (one structured call),
short-circuits exact duplicates by hash, fetches the nearest current memories
of each remaining candidate inside the scope, and asks the model for one
decision over the batch. Existing memories are shown with small integer
aliases; the reply is parsed strictly and validated against them, so an
invented id (or `true`, `"0"`, `1.0` for an id) is rejected and retried, never
applied. After the allowed retries the error is raised and nothing changes.

Each UPDATE and DELETE expects the version of the record the model was shown.
If another writer changes that record before the ops are applied, the op is
refused as a conflict (reported in `ManagerResult.refused`), never applied
over the newer version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from hivegraph.agents.prompts import DECIDE_OPS, extraction_prompt, render_decision_request
from hivegraph.errors import RetryRequested
from hivegraph.memory.facade import Memory
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.store import RefusedOp
from hivegraph.memory.types import (
    AddOp,
    DeleteOp,
    MemoryOp,
    MemoryRecord,
    NoopOp,
    Scope,
    Source,
    UpdateOp,
)
from hivegraph.models.base import ChatModel, Message, system, user
from hivegraph.models.schema import integer_choice

FactText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
NewFactText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
"""The text of an ADD or UPDATE: the schema asks for one, so constrained decoding cannot leave it empty."""
MAX_DECISION_OPS = 32


_REPLY_CONFIG = ConfigDict(extra="forbid", strict=True)
"""Model replies are parsed strictly: `true`, `"0"` or `1.0` is not an id, and is retried, never coerced."""


class ExtractedFacts(BaseModel):
    """The extraction reply."""

    model_config = _REPLY_CONFIG
    facts: list[FactText] = Field(max_length=16)


class OpChoice(BaseModel):
    """One decision as the model writes it: ids are the aliases it was shown."""

    model_config = _REPLY_CONFIG
    event: Literal["ADD", "UPDATE", "DELETE", "NOOP"]
    id: int | None = Field(ge=0, le=999)
    """The alias of a shown memory (a JSON integer; booleans, strings and floats are refused)."""
    text: FactText


class Decision(BaseModel):
    """The decision reply for one batch of candidate facts."""

    model_config = _REPLY_CONFIG
    ops: list[OpChoice] = Field(max_length=MAX_DECISION_OPS)


def decision_model(aliases: Sequence[int]) -> type[Decision]:
    """The reply schema of one decision over the memories shown as `aliases`.

    Each op is tagged by its event: an ADD has a text and no id, an UPDATE names
    a shown alias and its new text, a DELETE names a shown alias, a NOOP names
    one or none. Under constrained decoding the model cannot name an id it was
    not shown or leave an ADD's text empty; a reply parsed without a grammar is
    held to the same shape, and an error names the op and the field at fault.
    """
    only: Any = Literal
    shown: Any = integer_choice(aliases, "memories") if aliases else None
    shown_or_none: Any = shown | None if aliases else None
    choices: list[Any] = [
        create_model("AddChoice", __base__=OpChoice, event=(only["ADD"], ...), id=(None, None),
                     text=(NewFactText, ...)),
        create_model("NoopChoice", __base__=OpChoice, event=(only["NOOP"], ...), id=(shown_or_none, None),
                     text=(FactText, "")),
    ]  # fmt: skip
    if aliases:
        choices += [
            create_model("UpdateChoice", __base__=OpChoice, event=(only["UPDATE"], ...), id=(shown, ...),
                         text=(NewFactText, ...)),
            create_model("DeleteChoice", __base__=OpChoice, event=(only["DELETE"], ...), id=(shown, ...),
                         text=(FactText, "")),
        ]  # fmt: skip
    tagged: Any = Annotated[cast(Any, Union)[tuple(choices)], Field(discriminator="event")]
    ops = (list[tagged], Field(max_length=MAX_DECISION_OPS))
    return create_model("Decision", __base__=Decision, ops=ops)


@dataclass
class ManagerResult:
    """What one `consolidate` call saw, decided and did."""

    facts: list[str] = field(default_factory=list[str])
    ops: list[MemoryOp] = field(default_factory=list[MemoryOp])
    applied: list[JournalEntry] = field(default_factory=list[JournalEntry])
    refused: list[RefusedOp] = field(default_factory=list[RefusedOp])
    """Ops the store did not apply; code `conflict` when another writer changed the record after it was shown."""
    model_calls: int = 0


class MemoryManager:
    """Keeps semantic memory current from what agents and users say."""

    def __init__(
        self,
        model: ChatModel,
        memory: Memory,
        *,
        neighbours: int = 5,
        max_candidates: int = 8,
        max_retries: int | None = None,
        name: str = "memory_manager",
    ) -> None:
        self.model = model
        self.memory = memory
        self.neighbours = neighbours
        self.max_candidates = max_candidates
        self.max_retries = max_retries
        self.name = name

    async def consolidate(
        self,
        messages: Sequence[Message],
        *,
        scope: Scope,
        source: Source | None = None,
        idempotency_key: str | None = None,
    ) -> ManagerResult:
        """Extract facts from `messages`, decide ops, apply them, and report everything.

        With an `idempotency_key` (a run and step), ops already journaled under it
        by an earlier attempt of the same step are not applied again.

        Raises:
            UnexpectedModelOutput: a reply never validated; nothing was changed.

        """
        result = ManagerResult()
        result.facts = await self.extract(messages)
        result.model_calls += 1
        if result.facts:
            result.ops, calls = await self.decide(result.facts, scope=scope)
            result.model_calls += calls
        applied = await self.memory.apply(
            result.ops, scope=scope, actor=self.name, source=source, idempotency_key=idempotency_key
        )
        result.applied, result.refused = applied.applied, applied.refused
        return result

    async def extract(self, messages: Sequence[Message]) -> list[str]:
        """Candidate facts worth remembering, de-duplicated, at most `max_candidates`."""
        transcript = "\n".join(f"{m.name or m.role}: {m.content}" for m in messages)
        prompt = extraction_prompt(transcript, max_facts=self.max_candidates)
        reply = await self.model.structured(prompt, ExtractedFacts, max_retries=self.max_retries)
        unique = dict.fromkeys(f for f in reply.output.facts if f)
        return list(unique)[: self.max_candidates]

    async def decide(self, facts: Sequence[str], *, scope: Scope) -> tuple[list[MemoryOp], int]:
        """The ops for `facts` and the number of model calls it took.

        Exact duplicates become NOOPs and facts with no stored neighbour become
        ADDs, both without a model call. The other facts are split into groups
        that share no neighbour; each group is decided by its own call, and the
        calls run concurrently (the server batches them).
        """
        ops: list[MemoryOp] = []
        fresh: list[str] = []
        for fact in facts:
            duplicate = await self.memory.store.find_duplicate(fact, scope=scope)
            if duplicate is not None:
                ops.append(NoopOp(record_id=duplicate.id))
            else:
                fresh.append(fact)
        found = await asyncio.gather(
            *(self.memory.recall(f, scope=scope, k=self.neighbours, kinds=("semantic",)) for f in fresh)
        )
        groups = independent_groups(fresh, [[hit.loaded for hit in r.hits] for r in found])
        ops += [AddOp(text=fact) for group_facts, records in groups if not records for fact in group_facts]
        contested = [(group_facts, records) for group_facts, records in groups if records]
        decided = await asyncio.gather(*(self._decide_group(f, r) for f, r in contested))
        return ops + [op for group_ops in decided for op in group_ops], len(contested)

    async def _decide_group(self, facts: Sequence[str], existing: Sequence[MemoryRecord]) -> list[MemoryOp]:
        aliases = dict(enumerate(existing))
        shown = [(alias, record.text) for alias, record in aliases.items()]
        prompt = [system(DECIDE_OPS), user(render_decision_request(shown, list(facts)))]
        reply = await self.model.structured(
            prompt,
            decision_model(sorted(aliases)),
            max_retries=self.max_retries,
            validate=lambda d: _check_aliases(d, aliases),
        )
        return [_to_op(choice, aliases) for choice in reply.output.ops]


def independent_groups(
    facts: Sequence[str], neighbours: Sequence[Sequence[MemoryRecord]]
) -> list[tuple[list[str], list[MemoryRecord]]]:
    """Split facts into groups that share no neighbour, each with the union of its neighbours.

    Facts that could touch the same stored memory are decided together, so two
    concurrent decisions never change one record.
    """
    group_of: dict[UUID, int] = {}
    groups: list[tuple[list[str], dict[UUID, MemoryRecord]]] = []
    for fact, records in zip(facts, neighbours, strict=True):
        joined = sorted({group_of[r.id] for r in records if r.id in group_of})
        target = joined[0] if joined else len(groups)
        if not joined:
            groups.append(([], {}))
        for other in joined[1:]:  # merge groups this fact connects
            groups[target][0].extend(groups[other][0])
            groups[target][1].update(groups[other][1])
            groups[other] = ([], {})
        groups[target][0].append(fact)
        groups[target][1].update({r.id: r for r in records})
        group_of.update({record_id: target for record_id in groups[target][1]})
    return [(fs, list(rs.values())) for fs, rs in groups if fs]


def _check_aliases(decision: Decision, aliases: Mapping[int, MemoryRecord]) -> Decision:
    problems: list[str] = []
    for n, choice in enumerate(decision.ops):
        if choice.event in ("UPDATE", "DELETE") and choice.id is None:
            problems.append(f"op {n} ({choice.event}) needs the id of an existing memory")
        if choice.id is not None and choice.id not in aliases:
            problems.append(f"op {n} uses id {choice.id}, which is not one of the listed memories")
        if choice.event in ("ADD", "UPDATE") and not choice.text:
            problems.append(f"op {n} ({choice.event}) needs a text")
    if problems:
        valid = f"valid ids: {sorted(aliases)}"
        raise RetryRequested("; ".join(problems) + f" ({valid})", detail=problems)
    return decision


def _to_op(choice: OpChoice, aliases: Mapping[int, MemoryRecord]) -> MemoryOp:
    """The op a checked choice stands for; UPDATE and DELETE expect the version that was shown.

    If another writer changes the record between the read and the apply, the
    op is refused as a conflict instead of overwriting the newer version.
    """
    shown = aliases[choice.id] if choice.id is not None else None
    match choice.event:
        case "ADD":
            return AddOp(text=choice.text)
        case "UPDATE":
            assert shown is not None
            return UpdateOp(record_id=shown.id, text=choice.text, expected_version=shown.version)
        case "DELETE":
            assert shown is not None
            return DeleteOp(record_id=shown.id, expected_version=shown.version)
        case "NOOP":
            return NoopOp(record_id=shown.id if shown is not None else None)
