"""`OpenAICompatModel` and `LangChainModel(ChatOpenAI)` against the real vLLM server.

The small model tests the wiring (requests, constrained decoding, parsing,
errors), not the quality of its answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, SecretStr

from hivegraph.errors import ModelHTTPError
from hivegraph.models.base import system, user
from hivegraph.models.langchain import LangChainModel
from hivegraph.models.openai_compat import OpenAICompatModel
from hivegraph.models.server import ServerHandle

pytestmark = pytest.mark.integration


class City(BaseModel):
    name: str = Field(max_length=40)
    country: str = Field(max_length=40)
    population_millions: float = Field(ge=0, le=40)
    landmarks: list[Annotated[str, Field(max_length=30)]] = Field(max_length=3)


CITY_PROMPT = [
    system("You answer with facts about cities as JSON."),
    user("Describe Paris: its name, country, population in millions and up to three landmarks."),
]


@pytest.fixture
async def model(model_server: ServerHandle) -> AsyncIterator[OpenAICompatModel]:
    async with OpenAICompatModel(
        base_url=model_server.url, model=model_server.model, max_tokens=48, max_concurrency=4
    ) as chat:
        yield chat


async def test_plain_completion_returns_text_and_usage(model: OpenAICompatModel) -> None:
    response = await model.request([user("Say hello in one short sentence.")])
    assert response.text.strip()
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 48
    assert response.finish_reason in {"stop", "length"}


async def test_structured_completion_validates(model: OpenAICompatModel) -> None:
    result = await model.structured(CITY_PROMPT, City, settings={"max_tokens": 160})
    assert isinstance(result.output, City)
    assert result.response.finish_reason == "stop"
    assert len(result.output.landmarks) <= 3 and 0 <= result.output.population_millions <= 40


async def test_concurrent_structured_requests_all_validate(model: OpenAICompatModel) -> None:
    prompts = [[user(f"Describe {city} as JSON.")] for city in ("Lisbon", "Porto", "Rome", "Oslo")]
    results = await asyncio.gather(*(model.structured(p, City, settings={"max_tokens": 160}) for p in prompts))
    assert all(isinstance(r.output, City) for r in results)


async def test_unknown_model_name_is_an_http_error(model_server: ServerHandle) -> None:
    async with OpenAICompatModel(base_url=model_server.url, model="no-such-model") as wrong:
        with pytest.raises(ModelHTTPError) as info:
            await wrong.request([user("hi")])
    assert info.value.status_code == 404


def chat_openai(model_server: ServerHandle) -> LangChainModel:
    chat = ChatOpenAI(
        base_url=model_server.url,
        api_key=SecretStr("EMPTY"),
        model=model_server.model,
        temperature=0,
        max_retries=0,
    )
    return LangChainModel(chat)


async def test_langchain_chat_openai_plain_request(model_server: ServerHandle) -> None:
    response = await chat_openai(model_server).request([user("Say hello.")], settings={"max_tokens": 24})
    assert response.text.strip() and response.model_name == model_server.model
    assert response.usage.completion_tokens > 0


async def test_langchain_chat_openai_structured_output(model_server: ServerHandle) -> None:
    model = chat_openai(model_server)
    result = await model.structured(CITY_PROMPT, City, settings={"max_tokens": 160})
    assert isinstance(result.output, City)
