"""`LangChainModel` over langchain-core's fake chat model and over ChatOpenAI on a loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, SecretStr

from hivegraph.errors import BackendUnavailableError, ModelHTTPError
from hivegraph.models import base
from hivegraph.models.base import (
    Message,
    OutputSchema,
    RequestSettings,
    ToolCall,
    ToolDefinition,
    Usage,
    assistant,
    system,
    user,
)
from hivegraph.models.langchain import LangChainModel, to_langchain_message
from tests.unit.fake_openai_server import FakeOpenAIServer, Reply, completion, free_port, serve


class Verdict(BaseModel):
    label: str = Field(max_length=10)
    score: int = Field(ge=0, le=10)


class Recorder(BaseCallbackHandler):
    """Keeps the messages each chat-model call received (LangChain's public callback API)."""

    def __init__(self) -> None:
        self.calls: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        self.calls.extend(messages)


def fake(*replies: str | AIMessage) -> tuple[LangChainModel, Recorder]:
    recorder = Recorder()
    chat = GenericFakeChatModel(messages=iter(replies), callbacks=[recorder])
    return LangChainModel(chat, model_name="fake", network=False), recorder


# --- with langchain-core's fake chat model -------------------------------------------------------


async def test_plain_request_translates_messages_both_ways() -> None:
    model, recorder = fake(AIMessage(content="hello", usage_metadata={
        "input_tokens": 9, "output_tokens": 1, "total_tokens": 10}))  # fmt: skip
    response = await model.request([system("Be brief."), user("Hi"), assistant("Yes?"), user("Bye")])
    assert response.text == "hello" and response.model_name == "fake"
    assert response.usage == Usage(prompt_tokens=9, completion_tokens=1)
    assert recorder.calls == [[SystemMessage("Be brief."), HumanMessage("Hi"), AIMessage("Yes?"), HumanMessage("Bye")]]


def test_tool_messages_translate_with_their_call_ids() -> None:
    called = Message(role="assistant", content="", tool_calls=(ToolCall("c1", "search", '{"q": "tea"}'),))
    translated = to_langchain_message(called)
    assert isinstance(translated, AIMessage)
    assert translated.tool_calls == [{"id": "c1", "name": "search", "args": {"q": "tea"}, "type": "tool_call"}]
    answer = to_langchain_message(Message(role="tool", content="green", tool_call_id="c1"))
    assert answer == ToolMessage(content="green", tool_call_id="c1")


async def test_tool_calls_come_back_as_tool_calls() -> None:
    call = {"id": "c9", "name": "remember", "args": {"text": "Ada likes tea"}, "type": "tool_call"}
    model, _ = fake(AIMessage(content="", tool_calls=[call]))
    response = await model.request([user("remember that")])
    assert response.tool_calls == [ToolCall(id="c9", name="remember", arguments='{"text": "Ada likes tea"}')]


async def test_model_without_structured_output_gets_the_schema_in_its_prompt() -> None:
    model, recorder = fake("Sure! Here it is.", '{"label":"ok","score":4}')
    assert model.native_structured_output is False
    result = await model.structured([system("You grade."), user("Grade it.")], Verdict)
    assert result.output == Verdict(label="ok", score=4) and result.attempts == 2
    first = recorder.calls[0]
    assert isinstance(first[0], SystemMessage) and len(first) == 2
    assert first[0].text.startswith("You grade.\n\nReply with one JSON value only")
    assert json.dumps(OutputSchema.of(Verdict).json_schema, separators=(",", ":")) in first[0].text
    retry = recorder.calls[1]
    assert retry[-2] == AIMessage("Sure! Here it is.") and "Invalid JSON" in retry[-1].text


async def test_schema_instruction_becomes_the_system_message_when_there_is_none() -> None:
    model, recorder = fake('{"label":"ok","score":4}')
    await model.structured([user("Grade it.")], Verdict)
    assert [type(m) for m in recorder.calls[0]] == [SystemMessage, HumanMessage]


async def test_network_models_are_guarded_by_default() -> None:
    chat = GenericFakeChatModel(messages=iter(["never"]))
    with pytest.raises(RuntimeError, match="network models are disabled"):
        await LangChainModel(chat).request([user("hi")])


# --- with ChatOpenAI on a loopback OpenAI-compatible server --------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setattr(base, "ALLOW_NETWORK_MODELS", True)
    with serve() as fake_server:
        yield fake_server


def chat_openai(url: str) -> LangChainModel:
    chat = ChatOpenAI(base_url=url, api_key=SecretStr("EMPTY"), model="smollm2", max_retries=0, timeout=5)
    return LangChainModel(chat)


async def test_chat_openai_structured_output_uses_json_schema(server: FakeOpenAIServer) -> None:
    server.queue(Reply(completion('{"label":"fine","score":6}')))
    model = chat_openai(server.url)
    assert model.model_name == "smollm2" and model.native_structured_output is True
    settings: RequestSettings = {"temperature": 0.0, "max_tokens": 30, "stop": ["}}"]}
    result = await model.structured([user("Grade it.")], Verdict, settings=settings)
    assert result.output == Verdict(label="fine", score=6) and result.attempts == 1
    assert result.response.text == '{"label":"fine","score":6}'
    sent = server.requests[0]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "Verdict"
    assert (
        sent["response_format"]["json_schema"]["schema"]["properties"]
        == (OutputSchema.of(Verdict).json_schema["properties"])
    )
    assert (sent["temperature"], sent["stop"]) == (0.0, ["}}"])
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 30  # ChatOpenAI uses the new name
    assert sent["messages"] == [{"role": "user", "content": "Grade it."}]


async def test_chat_openai_plain_request_and_tools(server: FakeOpenAIServer) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "tea"}'}}
    server.queue(
        Reply(completion("Hi", prompt_tokens=4, completion_tokens=1)),
        Reply(completion(None, tool_calls=[call])),
    )
    model = chat_openai(server.url)
    response = await model.request([system("Be brief."), user("Hi")], settings={"stop": ["."]})
    assert (response.text, response.usage, response.finish_reason) == (
        "Hi",
        Usage(prompt_tokens=4, completion_tokens=1),
        "stop",
    )
    assert server.requests[0]["stop"] == ["."] and "response_format" not in server.requests[0]
    search = ToolDefinition(name="search", description="Find.", parameters={"type": "object", "properties": {}})
    response = await model.request([user("find tea")], tools=[search], settings={"temperature": 0.5})
    assert response.tool_calls == [ToolCall(id="call_1", name="search", arguments='{"q": "tea"}')]
    assert server.requests[1]["tools"][0]["function"]["name"] == "search" and server.requests[1]["temperature"] == 0.5


async def test_chat_openai_invalid_structured_reply_is_retried(server: FakeOpenAIServer) -> None:
    server.queue(Reply(completion('{"label":"fine"}')), Reply(completion('{"label":"fine","score":2}')))
    result = await chat_openai(server.url).structured([user("Grade it.")], Verdict)
    assert result.attempts == 2 and "score" in result.errors[0]
    assert server.requests[1]["messages"][1] == {"role": "assistant", "content": '{"label":"fine"}'}


async def test_chat_openai_http_error_becomes_model_http_error(server: FakeOpenAIServer) -> None:
    server.queue(Reply({"error": {"message": "overloaded"}}, status=500))
    with pytest.raises(ModelHTTPError) as info:
        await chat_openai(server.url).request([user("hi")])
    assert info.value.status_code == 500 and "overloaded" in str(info.value.body)


async def test_chat_openai_closed_port_becomes_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "ALLOW_NETWORK_MODELS", True)
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendUnavailableError, match="hivegraph model serve") as info:
        await chat_openai(url).request([user("hi")])
    assert info.value.backend == url
