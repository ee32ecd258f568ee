"""`OpenAICompatModel`: vLLM's (or any) OpenAI-compatible chat-completions API.

Structured output is sent as `response_format={"type": "json_schema", ...}`,
which vLLM enforces with constrained decoding (vLLM 0.32 silently ignores the
older `guided_json` extra). Connections are handled by `OpenAICompatProvider`;
this module only translates messages, tools and replies.

Transport retries: the openai SDK itself retries connection errors, timeouts
and HTTP 408/409/429/5xx (`transport_retries`, 2 by default, with backoff)
before an error reaches us. `max_retries` is a different thing: extra
attempts `structured` makes when a reply does not validate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import openai
from openai import omit
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)
from openai.types.chat.completion_create_params import ResponseFormat

from hivegraph.config import HivegraphSettings
from hivegraph.errors import UnexpectedModelOutput
from hivegraph.models.base import (
    ChatModel,
    Message,
    ModelResponse,
    OutputSchema,
    RequestSettings,
    ToolCall,
    ToolDefinition,
    Usage,
    check_network_allowed,
)
from hivegraph.models.openai_provider import DEFAULT_TRANSPORT_RETRIES, OpenAICompatProvider, openai_error


class OpenAICompatModel(ChatModel):
    """A chat model behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        max_concurrency: int = 4,
        max_retries: int = 2,
        timeout_s: float = 120.0,
        temperature: float = 0.0,
        max_tokens: int = 256,
        transport_retries: int = DEFAULT_TRANSPORT_RETRIES,
        native_tools: bool = False,
    ) -> None:
        self.native_tools = native_tools
        self.provider = OpenAICompatProvider(
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_concurrency=max_concurrency,
            transport_retries=transport_retries,
        )
        self.model_name = model
        self.max_retries = max_retries
        self.temperature = temperature
        self.max_tokens = max_tokens

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """Build from the `model` section."""
        section = settings.model
        return cls(
            base_url=section.base_url,
            model=section.model,
            api_key=section.api_key.get_secret_value(),
            max_concurrency=section.max_concurrency,
            max_retries=section.max_retries,
            timeout_s=section.timeout_s,
            temperature=section.temperature,
            max_tokens=section.max_tokens,
            native_tools=section.native_tools,
        )

    async def request(
        self,
        messages: Sequence[Message],
        *,
        settings: RequestSettings | None = None,
        tools: Sequence[ToolDefinition] | None = None,
        output_schema: OutputSchema | None = None,
    ) -> ModelResponse:
        """Send one chat completion request, waiting for a free slot first.

        Raises:
            BackendUnavailableError: the server could not be reached or timed out.
            ModelHTTPError: the server answered with an HTTP error status.
            ModelAPIError: the server's reply could not be read.
            UnexpectedModelOutput: the reply held no choices.

        """
        check_network_allowed()
        merged: RequestSettings = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        merged.update(settings or {})
        async with self.provider.limiter():
            try:
                completion = await self.provider.client().chat.completions.create(
                    model=self.model_name,
                    messages=[to_openai_message(message) for message in messages],
                    temperature=merged["temperature"],
                    max_tokens=merged["max_tokens"],
                    seed=merged.get("seed", omit),
                    stop=merged.get("stop", omit),
                    tools=[to_openai_tool(tool) for tool in tools] if tools else omit,
                    response_format=to_response_format(output_schema) if output_schema else omit,
                )
            except openai.APIError as exc:
                raise openai_error(exc, backend=self.provider.base_url, model_name=self.model_name) from exc
        return from_completion(completion, model_name=self.model_name)

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop."""
        await self.provider.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r}, base_url={self.provider.base_url!r})"


def to_openai_message(message: Message) -> ChatCompletionMessageParam:
    """Translate one of our messages into the chat-completions format."""
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "tool":
        return {"role": "tool", "content": message.content, "tool_call_id": message.tool_call_id or ""}
    if message.role == "user":
        if message.name is None:
            return {"role": "user", "content": message.content}
        return {"role": "user", "content": message.content, "name": message.name}
    calls: list[ChatCompletionMessageFunctionToolCallParam] = [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call in message.tool_calls
    ]
    if calls:
        return {"role": "assistant", "content": message.content, "tool_calls": calls}
    return {"role": "assistant", "content": message.content}


def to_openai_tool(tool: ToolDefinition) -> ChatCompletionFunctionToolParam:
    """Translate a tool definition into an OpenAI function tool."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def to_response_format(schema: OutputSchema) -> ResponseFormat:
    """The `response_format` that asks for JSON following `schema`."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.name, "schema": schema.json_schema, "strict": schema.strict},
    }


def from_completion(completion: ChatCompletion, *, model_name: str) -> ModelResponse:
    """Our response for the first choice of a chat completion.

    Raises:
        UnexpectedModelOutput: the completion has no choices.

    """
    if not completion.choices:
        raise UnexpectedModelOutput(f"{model_name}: the server returned no choices", body=completion.model_dump_json())
    choice = completion.choices[0]
    calls = [
        ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
        for call in choice.message.tool_calls or ()
        if call.type == "function"
    ]
    usage = completion.usage
    return ModelResponse(
        text=choice.message.content or "",
        model_name=completion.model or model_name,
        finish_reason=choice.finish_reason,
        usage=Usage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        ),
        tool_calls=calls,
    )
