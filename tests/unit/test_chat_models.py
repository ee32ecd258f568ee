"""The shipped fakes, `run_sync`, and `OpenAICompatModel` against a real loopback HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from hivegraph.config import load_settings
from hivegraph.errors import BackendUnavailableError, ModelHTTPError, UnexpectedModelOutput
from hivegraph.models import base
from hivegraph.models._sync import run_sync
from hivegraph.models.base import (
    Message,
    ModelResponse,
    OutputSchema,
    ToolCall,
    ToolDefinition,
    Usage,
    assistant,
    system,
    user,
)
from hivegraph.models.openai_compat import OpenAICompatModel
from hivegraph.models.testing import FunctionModel, RequestInfo, ScriptedModel, ScriptExhaustedError
from tests.unit.fake_openai_server import FakeOpenAIServer, Reply, completion, free_port, serve

HELLO = [system("Be brief."), user("Say hi.")]


class Verdict(BaseModel):
    label: str = Field(max_length=10)
    score: int = Field(ge=0, le=10)


# --- ScriptedModel and FunctionModel -------------------------------------------------------------


async def test_scripted_model_replies_in_order_and_records_requests() -> None:
    canned = ModelResponse(text="second", model_name="x", usage=Usage(prompt_tokens=1, completion_tokens=1))
    model = ScriptedModel(["first", canned], model_name="scripty")
    first = await model.request(HELLO)
    second = await model.request([user("again")], output_schema=OutputSchema.of(Verdict))
    assert (first.text, first.model_name, first.finish_reason) == ("first", "scripty", "stop")
    assert first.usage == Usage(prompt_tokens=4, completion_tokens=1)
    assert second is canned
    assert [r.messages for r in model.requests] == [HELLO, [user("again")]]
    assert model.requests[0].output_schema is None
    assert model.requests[1].output_schema == OutputSchema.of(Verdict)
    assert model.remaining == 0


async def test_scripted_model_raises_scripted_exceptions_then_continues() -> None:
    model = ScriptedModel([ModelHTTPError("m", 503, "busy"), "recovered"])
    with pytest.raises(ModelHTTPError):
        await model.request(HELLO)
    assert (await model.request(HELLO)).text == "recovered"
    assert len(model.requests) == 2


async def test_scripted_model_calls_functions_sync_and_async() -> None:
    async def shout(messages: list[Message], info: RequestInfo) -> str:
        await asyncio.sleep(0)
        return messages[-1].content.upper()

    def tools(messages: list[Message], info: RequestInfo) -> str:
        return ",".join(tool.name for tool in info.tools)

    model = ScriptedModel([shout, tools])
    assert (await model.request([user("hey")])).text == "HEY"
    search = ToolDefinition(name="search", description="find", parameters={"type": "object"})
    assert (await model.request([user("x")], tools=[search])).text == "search"


async def test_scripted_model_running_out_says_so() -> None:
    model = ScriptedModel(["only one"])
    await model.request(HELLO)
    with pytest.raises(ScriptExhaustedError, match=r"request #2 arrived but only 1 replies") as info:
        await model.request([user("one more please")])
    assert "one more please" in str(info.value)
    assert isinstance(info.value, AssertionError)


async def test_function_model_gets_messages_and_request_info() -> None:
    def reply(messages: list[Message], info: RequestInfo) -> str:
        schema = info.output_schema.name if info.output_schema else "none"
        return f"{len(messages)} {schema} {info.settings.get('temperature')}"

    model = FunctionModel(reply, model_name="fn")
    response = await model.request(HELLO, settings={"temperature": 0.5}, output_schema=OutputSchema.of(Verdict))
    assert response.text == "2 Verdict 0.5" and response.model_name == "fn"
    assert model.requests[0].settings == {"temperature": 0.5}


def test_fakes_are_not_collected_as_tests() -> None:
    assert ScriptedModel.__test__ is False and FunctionModel.__test__ is False


# --- run_sync ------------------------------------------------------------------------------------


async def _loop_id() -> int:
    return id(asyncio.get_running_loop())


def test_run_sync_runs_every_call_on_one_background_loop() -> None:
    first, second = run_sync(_loop_id()), run_sync(_loop_id())
    assert first == second


def test_run_sync_propagates_exceptions() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_sync(fail())


async def test_run_sync_inside_a_running_loop_asks_to_await() -> None:
    with pytest.raises(RuntimeError, match="await the async method"):
        run_sync(_loop_id())


# --- OpenAICompatModel against a real HTTP server ------------------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setattr(base, "ALLOW_NETWORK_MODELS", True)
    with serve() as fake:
        yield fake


def model_for(server: FakeOpenAIServer, **options: Any) -> OpenAICompatModel:
    settings: dict[str, Any] = {"transport_retries": 0, "timeout_s": 5.0} | options
    return OpenAICompatModel(base_url=server.url, model="smollm2", **settings)


async def test_plain_completion_is_parsed(server: FakeOpenAIServer) -> None:
    server.queue(Reply(completion("Hi there", prompt_tokens=11, completion_tokens=2, finish_reason="length")))
    response = await model_for(server, temperature=0.3, max_tokens=40).request(HELLO)
    assert response.text == "Hi there" and response.finish_reason == "length"
    assert response.usage == Usage(prompt_tokens=11, completion_tokens=2)
    assert response.model_name == "fake-model" and response.tool_calls == []
    sent = server.requests[0]
    assert sent["model"] == "smollm2" and sent["temperature"] == 0.3 and sent["max_tokens"] == 40
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi."},
    ]
    assert "response_format" not in sent and "tools" not in sent and "guided_json" not in sent


async def test_request_settings_override_the_defaults(server: FakeOpenAIServer) -> None:
    await model_for(server).request(HELLO, settings={"temperature": 0.9, "max_tokens": 5, "seed": 3, "stop": ["."]})
    sent = server.requests[0]
    assert (sent["temperature"], sent["max_tokens"], sent["seed"], sent["stop"]) == (0.9, 5, 3, ["."])


async def test_output_schema_is_sent_as_strict_json_schema(server: FakeOpenAIServer) -> None:
    server.queue(Reply(completion('{"label":"good","score":7}')))
    result = await model_for(server).structured(HELLO, Verdict)
    assert result.output == Verdict(label="good", score=7) and result.attempts == 1
    assert server.requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Verdict", "schema": OutputSchema.of(Verdict).json_schema, "strict": True},
    }


async def test_tools_go_out_and_tool_calls_come_back(server: FakeOpenAIServer) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "tea"}'}}
    server.queue(Reply(completion(None, tool_calls=[call], finish_reason="tool_calls")))
    search = ToolDefinition(name="search", description="Find memories.", parameters={"type": "object"})
    response = await model_for(server).request([user("find tea")], tools=[search])
    assert response.tool_calls == [ToolCall(id="call_1", name="search", arguments='{"q": "tea"}')]
    assert response.text == "" and response.finish_reason == "tool_calls"
    assert server.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {"name": "search", "description": "Find memories.", "parameters": {"type": "object"}},
        }
    ]


async def test_tool_round_trip_messages_are_translated(server: FakeOpenAIServer) -> None:
    called = Message(role="assistant", content="", tool_calls=(ToolCall(id="c1", name="search", arguments="{}"),))
    answer = Message(role="tool", content="green tea", tool_call_id="c1")
    await model_for(server).request([user("q"), called, answer, assistant("ok")])
    assert server.requests[0]["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
        {"role": "tool", "content": "green tea", "tool_call_id": "c1"},
        {"role": "assistant", "content": "ok"},
    ]  # fmt: skip


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_max_concurrency_bounds_requests_in_flight(server: FakeOpenAIServer, limit: int) -> None:
    server.default = Reply(completion("slow"), delay_s=0.15)
    model = model_for(server, max_concurrency=limit)
    replies = await asyncio.gather(*(model.request([user(f"q{i}")]) for i in range(6)))
    assert [r.text for r in replies] == ["slow"] * 6
    assert server.max_in_flight == limit


async def test_http_error_status_becomes_model_http_error(server: FakeOpenAIServer) -> None:
    server.queue(Reply({"error": {"message": "engine dead", "type": "InternalServerError"}}, status=500))
    with pytest.raises(ModelHTTPError) as info:
        await model_for(server).request(HELLO)
    assert info.value.status_code == 500 and info.value.model_name == "smollm2"
    assert "engine dead" in str(info.value.body)
    assert len(server.requests) == 1


async def test_transport_retries_repeat_a_5xx_like_the_sdk_does(server: FakeOpenAIServer) -> None:
    server.queue(Reply({"error": {"message": "busy"}}, status=503), Reply(completion("second try")))
    response = await model_for(server, transport_retries=1).request(HELLO)
    assert response.text == "second try" and len(server.requests) == 2


async def test_bad_request_is_not_retried(server: FakeOpenAIServer) -> None:
    server.queue(Reply({"error": {"message": "context too long"}}, status=400))
    with pytest.raises(ModelHTTPError) as info:
        await model_for(server, transport_retries=2).request(HELLO)
    assert info.value.status_code == 400 and len(server.requests) == 1


async def test_empty_choices_is_unexpected_output(server: FakeOpenAIServer) -> None:
    server.queue(Reply(completion("x") | {"choices": []}))
    with pytest.raises(UnexpectedModelOutput, match="no choices") as info:
        await model_for(server).request(HELLO)
    assert '"choices":[]' in info.value.body


async def test_timeout_becomes_backend_unavailable(server: FakeOpenAIServer) -> None:
    server.queue(Reply(completion("late"), delay_s=1.0))
    with pytest.raises(BackendUnavailableError, match="did not reply in time") as info:
        await model_for(server, timeout_s=0.2).request(HELLO)
    assert info.value.backend == server.url


async def test_closed_port_becomes_backend_unavailable_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "ALLOW_NETWORK_MODELS", True)
    url = f"http://127.0.0.1:{free_port()}/v1"
    model = OpenAICompatModel(base_url=url, model="smollm2", transport_retries=0)
    with pytest.raises(BackendUnavailableError, match="hivegraph model serve") as info:
        await model.request(HELLO)
    assert info.value.backend == url


async def test_network_guard_stops_the_request_before_it_leaves() -> None:
    with serve() as fake:  # no `server` fixture: the unit-test guard stays on
        with pytest.raises(RuntimeError, match="network models are disabled"):
            await model_for(fake).request(HELLO)
        assert fake.requests == []


def test_one_client_per_event_loop(server: FakeOpenAIServer) -> None:
    model = model_for(server)
    texts = [asyncio.run(model.request(HELLO)).text for _ in range(2)]  # two loops, one after the other
    texts.append(run_sync(model.request(HELLO)).text)
    texts.append(run_sync(model.request(HELLO)).text)
    assert texts == ["ok"] * 4 and len(server.requests) == 4


async def test_aclose_then_reuse_opens_a_new_client(server: FakeOpenAIServer) -> None:
    async with model_for(server) as model:
        await model.request(HELLO)
    assert (await model.request(HELLO)).text == "ok"


def test_from_settings_reads_the_model_section() -> None:
    settings = load_settings(
        model={"base_url": "http://10.0.0.1:9/v1", "model": "m", "api_key": "k", "max_concurrency": 7,
               "max_retries": 4, "timeout_s": 3.0, "temperature": 0.2, "max_tokens": 99},
    )  # fmt: skip
    model = OpenAICompatModel.from_settings(settings)
    assert (model.model_name, model.max_retries, model.temperature, model.max_tokens) == ("m", 4, 0.2, 99)
    provider = model.provider
    assert (provider.base_url, provider.max_concurrency, provider.timeout_s) == (
        "http://10.0.0.1:9/v1",
        7,
        3.0,
    )
