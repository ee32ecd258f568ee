"""The reflector with the real model server: constrained decoding into valid insight ops, applied to G-Memory.

The bundled model is tiny: the test checks the wiring (the bounded schema, aliases
the model can only pick from, ops that apply), not the wisdom of the insights.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hivegraph.agents.reflector import Reflector
from hivegraph.memory.condense import StepText
from hivegraph.memory.facade import Memory
from hivegraph.memory.gmemory import NewInsight, Step
from hivegraph.memory.graph import InMemoryGraph
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import Scope
from hivegraph.models.openai_compat import OpenAICompatModel
from hivegraph.models.server import ServerHandle
from hivegraph.models.testing import HashEmbedder

pytestmark = pytest.mark.integration

TEAM = Scope(team_id="travel")
TASK = "Book a table for two at an Italian restaurant on Friday evening"
STEPS = [
    Step("planner", "Search restaurants with cuisine=italian, date=Friday, party=2"),
    Step("booker", "Trattoria Roma has a free table at 19:30; reserving it"),
    Step("booker", "Reservation confirmed, code R-481; sent the confirmation to the user"),
]


@pytest.fixture
async def model(model_server: ServerHandle) -> AsyncIterator[OpenAICompatModel]:
    async with OpenAICompatModel(base_url=model_server.url, model=model_server.model, timeout_s=300) as chat:
        yield chat


@pytest.fixture
async def memory() -> AsyncIterator[Memory]:
    opened = await Memory.of(
        InMemorySpace(HashEmbedder()), journal=InMemoryJournal(), projections=[GraphProjection(InMemoryGraph())]
    ).open()
    yield opened
    await opened.aclose()


async def test_the_real_model_reflects_on_a_task_with_ops_that_apply(model: OpenAICompatModel, memory: Memory) -> None:
    earlier = await memory.gmemory.record_task("Book a sushi place for four", STEPS, scope=TEAM, run_id="r0",
                                               outcome="success")  # fmt: skip
    [known] = await memory.gmemory.revise(
        [NewInsight("Confirm the reservation code with the user")], task_id=earlier.task.id, scope=TEAM
    )
    task = await memory.gmemory.record_task(TASK, STEPS, scope=TEAM, run_id="r1", outcome="success")
    steps = [StepText(s.agent, s.content, n) for n, s in enumerate(STEPS)]
    reflector = Reflector(model, memory, max_ops=3)
    result = await reflector.reflect(
        TASK, steps, outcome="success", task_id=task.task.id, scope=TEAM, shown=[known.insight_id],
        roles=["planner", "booker"],
    )  # fmt: skip
    assert result.model_calls == 1 and len(result.ops) <= 3 and len(result.changes) == len(result.ops)
    last = {change.insight_id: change for change in result.changes}  # an insight may be changed twice
    for change in last.values():  # every op the model chose was applied to a real insight, scored as it says
        record = await memory.get(change.insight_id, scope=TEAM)
        if change.retired:
            assert record is None
            continue
        assert record is not None and record.kind == "insight" and record.metadata["score"] == change.score
    assert all(change.event in {"ADD", "AGREE", "EDIT", "REMOVE"} for change in result.changes)
    found = await memory.gmemory.retrieve("Book a table at a French restaurant", scope=TEAM)
    assert known.insight_id in {i.id for i in found.insights} or any(c.retired for c in result.changes)
    assert not (await memory.verify()).divergences
