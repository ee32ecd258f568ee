"""`LangChainModel`: any LangChain chat model behind the `ChatModel` interface.

With an output schema, a model class that implements `with_structured_output`
is asked for `method="json_schema"` (constrained decoding where the provider
has it); any other model gets the schema as an instruction in its system
message, and `ChatModel.structured` validates whatever comes back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel

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
from hivegraph.models.openai_provider import openai_error

SCHEMA_INSTRUCTION = "Reply with one JSON value only, no prose, that follows this JSON schema:\n{schema}"
"""Added to the system message when the model cannot be constrained to a schema."""

_Invocable = Runnable[list[BaseMessage], Any]


class LangChainModel(ChatModel):
    """Wraps a langchain-core `BaseChatModel` (ChatOpenAI, a fake, any provider)."""

    def __init__(
        self,
        chat_model: BaseChatModel,
        *,
        model_name: str | None = None,
        max_retries: int = 2,
        network: bool = True,
    ) -> None:
        """Wrap `chat_model`.

        Args:
            chat_model: the LangChain model that answers.
            model_name: name used in errors; the wrapped model's own name when unset.
            max_retries: extra attempts `structured` makes when a reply does not validate.
            network: whether the wrapped model calls a server; if so it refuses to
                run while network models are disabled (unit tests).

        """
        self.chat_model = chat_model
        self.model_name = model_name or _name_of(chat_model)
        self.max_retries = max_retries
        self.network = network

    @property
    def native_structured_output(self) -> bool:
        """Whether the wrapped class implements `with_structured_output` itself.

        LangChain's default implementation goes through tool calling, which a
        small model served without a tool parser cannot do, so it is not used.
        """
        return type(self.chat_model).with_structured_output is not BaseChatModel.with_structured_output

    async def request(
        self,
        messages: Sequence[Message],
        *,
        settings: RequestSettings | None = None,
        tools: Sequence[ToolDefinition] | None = None,
        output_schema: OutputSchema | None = None,
    ) -> ModelResponse:
        """Invoke the wrapped model once.

        Raises:
            BackendUnavailableError: an OpenAI-based model could not reach its server.
            ModelHTTPError: an OpenAI-based model got an HTTP error status.

        """
        if self.network:
            check_network_allowed()
        options: dict[str, Any] = dict(settings or {})
        runnable, constrained = self._runnable(tools, output_schema, options)
        lc_messages = [to_langchain_message(message) for message in messages]
        if output_schema is not None and not constrained:
            lc_messages = _with_schema_instruction(lc_messages, output_schema)
        try:
            result = await runnable.ainvoke(lc_messages)
        except openai.APIError as exc:  # what ChatOpenAI and other openai-based models raise
            raise openai_error(exc, backend=_backend_of(self.chat_model), model_name=self.model_name) from exc
        return self._response(result)

    def _runnable(
        self,
        tools: Sequence[ToolDefinition] | None,
        output_schema: OutputSchema | None,
        options: dict[str, Any],
    ) -> tuple[_Invocable, bool]:
        """The runnable to invoke, and whether it constrains the reply to the schema."""
        if output_schema is not None and not tools and self.native_structured_output:
            schema = {**output_schema.json_schema, "title": output_schema.name}
            try:  # sampling options go through as model kwargs (ChatOpenAI passes them on)
                structured = self.chat_model.with_structured_output(
                    schema, method="json_schema", include_raw=True, **options
                )
            except (NotImplementedError, ValueError, TypeError):
                pass  # this provider has no JSON-schema mode: the schema goes into the prompt
            else:
                return structured, True
        chat: _Invocable = self.chat_model
        if tools:
            chat = self.chat_model.bind_tools([_tool_spec(tool) for tool in tools])
        return (chat.bind(**options) if options else chat), False

    def _response(self, result: Any) -> ModelResponse:
        message, parsed = _unpack(result)
        if not isinstance(message, AIMessage):
            raise TypeError(f"{self.model_name}: expected an AIMessage, got {type(message).__name__}")
        text = str(message.text)
        if not text and parsed is not None:
            text = parsed.model_dump_json() if isinstance(parsed, BaseModel) else json.dumps(parsed)
        usage = message.usage_metadata
        return ModelResponse(
            text=text,
            model_name=self.model_name,
            finish_reason=message.response_metadata.get("finish_reason"),
            usage=Usage(
                prompt_tokens=usage["input_tokens"] if usage else 0,
                completion_tokens=usage["output_tokens"] if usage else 0,
            ),
            tool_calls=[
                ToolCall(id=call["id"] or "", name=call["name"], arguments=json.dumps(call["args"]))
                for call in message.tool_calls
            ],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.chat_model).__name__}, model_name={self.model_name!r})"


def to_langchain_message(message: Message) -> BaseMessage:
    """Translate one of our messages into a LangChain message."""
    if message.role == "system":
        return SystemMessage(content=message.content)
    if message.role == "user":
        return HumanMessage(content=message.content, name=message.name)
    if message.role == "tool":
        return ToolMessage(content=message.content, tool_call_id=message.tool_call_id or "")
    return AIMessage(
        content=message.content,
        tool_calls=[
            {"id": call.id, "name": call.name, "args": _arguments(call), "type": "tool_call"}
            for call in message.tool_calls
        ],
    )


def _with_schema_instruction(messages: list[BaseMessage], schema: OutputSchema) -> list[BaseMessage]:
    instruction = SCHEMA_INSTRUCTION.format(schema=json.dumps(schema.json_schema, separators=(",", ":")))
    if messages and isinstance(messages[0], SystemMessage):
        first = SystemMessage(content=f"{messages[0].text}\n\n{instruction}")
        return [first, *messages[1:]]
    return [SystemMessage(content=instruction), *messages]


def _unpack(result: Any) -> tuple[object, object]:
    """The raw message and the parsed value (None) of what `ainvoke` returned."""
    if isinstance(result, dict):  # with_structured_output(include_raw=True)
        unpacked = cast(dict[str, object], result)
        return unpacked["raw"], unpacked.get("parsed")
    return result, None


def _arguments(call: ToolCall) -> dict[str, Any]:
    arguments: object = json.loads(call.arguments or "{}")
    return cast(dict[str, Any], arguments) if isinstance(arguments, dict) else {"value": arguments}


def _tool_spec(tool: ToolDefinition) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def _backend_of(chat_model: BaseChatModel) -> str:
    base_url = getattr(chat_model, "openai_api_base", None)
    return base_url if isinstance(base_url, str) and base_url else type(chat_model).__name__


def _name_of(chat_model: BaseChatModel) -> str:
    for attribute in ("model_name", "model"):
        value = getattr(chat_model, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(chat_model).__name__
