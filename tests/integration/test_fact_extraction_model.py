"""Fact extraction with the real model server and the default prompt.

The bundled model is tiny and its extraction is noisy (benchmarks/fact_extraction.py
measures it); this checks that the prompt hivegraph keeps gets facts out of it at
all, from a few clear messages, without copying its worked examples.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from benchmarks.fact_extraction import DATA, copies_example, example_markers, load, match
from hivegraph.agents.manager import MemoryManager
from hivegraph.agents.prompts import EXTRACTION_EXAMPLES
from hivegraph.memory.facade import Memory
from hivegraph.models.base import user
from hivegraph.models.openai_compat import OpenAICompatModel
from hivegraph.models.server import ServerHandle

pytestmark = pytest.mark.integration

CLEAR = ["p01", "f03", "f05", "f06", "c02"]
"""Messages of the labelled set that state one or two plain facts."""


@pytest.fixture
async def model(model_server: ServerHandle) -> AsyncIterator[OpenAICompatModel]:
    async with OpenAICompatModel(base_url=model_server.url, model=model_server.model, timeout_s=300) as chat:
        yield chat


async def test_the_default_prompt_gets_correct_facts_from_the_real_model(
    model: OpenAICompatModel, memory: Memory
) -> None:
    items = load(DATA)
    clear = [item for item in items if item.id in CLEAR]
    manager = MemoryManager(model, memory)
    extracted = await asyncio.gather(*(manager.extract([user(item.message)]) for item in clear))
    correct = sum(len(match(facts, item.facts)) for facts, item in zip(extracted, clear, strict=True))
    assert correct >= 1, extracted
    markers = example_markers(EXTRACTION_EXAMPLES, items)
    assert not [fact for facts in extracted for fact in facts if copies_example(fact, markers)]
