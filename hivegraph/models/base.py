"""The `ChatModel` interface, its message types and the structured-output loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hivegraph.errors import RetryRequested, UnexpectedModelOutput
from hivegraph.models.schema import strict_schema

ALLOW_NETWORK_MODELS = True
"""Set to False (tests do) to make every network-backed model refuse to run."""

Role = Literal["system", "user", "assistant", "tool"]
OutputT = TypeVar("OutputT", bound=BaseModel)


def check_network_allowed() -> None:
    """Raise if network-backed models are disabled (unit tests disable them)."""
    if not ALLOW_NETWORK_MODELS:
        raise RuntimeError("network models are disabled in unit tests; use ScriptedModel or FunctionModel")


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for."""

    id: str
    name: str
    arguments: str


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)
    role: Role
    content: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    """On an assistant message: the tool calls it made."""
    tool_call_id: str | None = None
    """On a tool message: the id of the call it answers."""


def system(content: str) -> Message:
    """A system message."""
    return Message(role="system", content=content)


def user(content: str) -> Message:
    """A user message."""
    return Message(role="user", content=content)


def assistant(content: str) -> Message:
    """An assistant message."""
    return Message(role="assistant", content=content)


class RequestSettings(TypedDict, total=False):
    """Per-request sampling settings; unset keys use the model's defaults."""

    temperature: float
    max_tokens: int
    seed: int
    stop: list[str]


@dataclass(frozen=True)
class ToolDefinition:
    """A tool the model may call: a name, what it does, and its JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class OutputSchema:
    """A JSON schema the reply must follow (sent for constrained decoding)."""

    name: str
    json_schema: dict[str, Any]
    strict: bool = True

    @classmethod
    def of(cls, output_type: type[BaseModel]) -> OutputSchema:
        """The strict, bounded schema of a pydantic model (see `strict_schema`).

        Raises:
            ConfigError: the model has a field without the bounds `strict_schema` requires.

        """
        return cls(name=output_type.__name__, json_schema=strict_schema(output_type))


class Usage(BaseModel):
    """Token counts reported for one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class ModelResponse(BaseModel):
    """What one request returned."""

    text: str
    model_name: str
    finish_reason: str | None = None
    usage: Usage = Usage()
    tool_calls: list[ToolCall] = []


@dataclass
class StructuredResult(Generic[OutputT]):
    """A validated structured reply and how it was obtained."""

    output: OutputT
    response: ModelResponse
    attempts: int
    errors: list[str] = field(default_factory=list[str])
    """Why earlier attempts were rejected (empty when the first one validated)."""


class ChatModel(ABC):
    """A chat model: one abstract `request`, everything else built on it."""

    model_name: str = "unknown"
    max_retries: int = 2
    """Extra attempts `structured` allows when a reply does not validate."""
    native_tools: bool = False
    """Whether the model returns tool calls itself; agents otherwise act through constrained JSON actions."""

    @abstractmethod
    async def request(
        self,
        messages: Sequence[Message],
        *,
        settings: RequestSettings | None = None,
        tools: Sequence[ToolDefinition] | None = None,
        output_schema: OutputSchema | None = None,
    ) -> ModelResponse:
        """Send `messages` and return the model's reply."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; models without any keep the default."""

    async def structured(
        self,
        messages: Sequence[Message],
        output_type: type[OutputT],
        *,
        settings: RequestSettings | None = None,
        max_retries: int | None = None,
        validate: Callable[[OutputT], OutputT] | None = None,
    ) -> StructuredResult[OutputT]:
        """Ask for a reply that validates as `output_type`, retrying a bounded number of times.

        `validate` may check the parsed output further and raise `RetryRequested`
        with feedback for the model. A rejected reply and the reason are shown
        to the model on the next attempt.

        Raises:
            UnexpectedModelOutput: no attempt validated; carries the last raw reply.

        """
        schema = OutputSchema.of(output_type)
        retries = self.max_retries if max_retries is None else max_retries
        history = list(messages)
        errors: list[str] = []
        response: ModelResponse | None = None
        for attempt in range(1, retries + 2):
            response = await self.request(history, settings=settings, output_schema=schema)
            try:
                output = output_type.model_validate_json(response.text)
                if validate is not None:
                    output = validate(output)
            except (ValidationError, RetryRequested) as exc:
                reason = _describe(exc)
                errors.append(reason)
                history += [assistant(response.text), user(_RETRY_PROMPT.format(reason=reason))]
                continue
            return StructuredResult(output=output, response=response, attempts=attempt, errors=errors)
        assert response is not None
        raise UnexpectedModelOutput(
            f"{self.model_name}: reply did not validate as {output_type.__name__} "
            f"after {retries + 1} attempts: {errors[-1]}",
            body=response.text,
            errors=errors,
        )


_RETRY_PROMPT = "Your reply was rejected: {reason}\nReply again with JSON that follows the schema."


def _describe(exc: ValidationError | RetryRequested) -> str:
    if isinstance(exc, RetryRequested):
        return exc.feedback
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'reply'}: {err['msg']}" for err in exc.errors()[:6]]
    return "; ".join(parts)
