"""Procedure distillation with the real model server.

The bundled model is tiny: these tests check the wiring (bounded schema,
constrained decoding, validation into `Procedure`, storage and reuse in a
prompt), not the quality of the procedure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hivegraph.agents.distiller import MAX_DISTILLED_STEPS, ProcedureDistiller
from hivegraph.memory.facade import Memory
from hivegraph.memory.procedural import Procedure, render_all
from hivegraph.memory.types import Scope
from hivegraph.models.base import system, user
from hivegraph.models.openai_compat import OpenAICompatModel
from hivegraph.models.server import ServerHandle

pytestmark = pytest.mark.integration

ADA = Scope(user_id="ada")
TASK = "Book a table for two at an Italian restaurant on Friday evening"
TRAJECTORY = [
    ("user", TASK),
    ("planner", "Search restaurants with cuisine=italian, date=Friday, party=2"),
    ("booker", "Trattoria Roma has a free table at 19:30; reserving it"),
    ("booker", "Reservation confirmed, code R-481; sent the confirmation to the user"),
]


@pytest.fixture
async def model(model_server: ServerHandle) -> AsyncIterator[OpenAICompatModel]:
    async with OpenAICompatModel(base_url=model_server.url, model=model_server.model, timeout_s=300) as chat:
        yield chat


async def test_the_real_model_distils_a_trajectory_into_a_stored_procedure(
    model: OpenAICompatModel, memory: Memory, model_server: ServerHandle
) -> None:
    procedures = memory.procedural
    result = await ProcedureDistiller(model).learn(procedures, TASK, TRAJECTORY, success=True, scope=ADA)
    procedure = result.procedure
    assert isinstance(procedure, Procedure) and result.model_calls == 1
    assert 1 <= len(procedure.steps) <= MAX_DISTILLED_STEPS
    assert all(0 < len(step) <= 160 and step == step.strip() for step in procedure.steps)
    assert 0 < len(procedure.script) <= 480
    assert procedure.task == TASK and procedure.source_model == model_server.model
    found = await procedures.retrieve("Book a table at an Italian restaurant", scope=ADA, k=1)
    assert result.record is not None and [hit.record_id for hit in found] == [result.record.id]
    assert found[0].procedure == procedure


async def test_a_stored_procedure_is_usable_in_the_real_models_prompt(model: OpenAICompatModel, memory: Memory) -> None:
    procedures = memory.procedural
    steps = ["Search restaurants by cuisine, date and party size", "Reserve a free slot", "Confirm to the user"]
    strong = Procedure(task=TASK, steps=steps, script="reserve(first_free(search(q)))", source_model="strong")
    await procedures.add(strong, scope=ADA, actor="test")
    found = await procedures.retrieve("Book a table for four on Saturday", scope=ADA, k=1)
    prompt = [system("Follow this procedure.\n" + render_all(found)), user("Book a table for four on Saturday.")]
    reply = await model.request(prompt, settings={"max_tokens": 32})
    assert reply.text.strip() and reply.usage.prompt_tokens > 40
