"""Deterministic stand-ins for unit tests, shipped with the package."""

from __future__ import annotations

import hashlib
import inspect
import math
import re
from abc import abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hivegraph.config import HivegraphSettings
from hivegraph.models.base import (
    ChatModel,
    Message,
    ModelResponse,
    OutputSchema,
    RequestSettings,
    ToolDefinition,
    Usage,
)


class HashEmbedder:
    """Embeds text by hashing its words into a fixed number of buckets.

    Texts that share words get similar vectors, so nearest-neighbour search
    behaves plausibly in tests, with no model and no randomness.
    """

    __test__ = False
    name: str = "hash"

    def __init__(self, dim: int = 64) -> None:
        self._dim = dim

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> HashEmbedder:
        """Build from `embedder.hash`."""
        return cls(dim=settings.embedder.hash.dim)

    def get_config(self) -> dict[str, Any]:
        """What `from_config` needs to rebuild this embedder."""
        return {"dim": self._dim}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HashEmbedder:
        """Rebuild from `get_config` output."""
        return cls(dim=int(config["dim"]))

    @property
    def dim(self) -> int:
        """Length of every vector."""
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text (the zero text maps to a fixed unit vector)."""
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self._dim
        for word in re.findall(r"\w+", text.casefold()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self._dim
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]


Reply = str | ModelResponse
ReplyFunction = Callable[[list[Message], "RequestInfo"], Reply | Awaitable[Reply]]
"""Computes a reply from the messages and the request; sync or async."""
ScriptItem = Reply | Exception | ReplyFunction


@dataclass(frozen=True)
class RequestInfo:
    """One request a fake model received, kept for assertions."""

    messages: list[Message]
    settings: RequestSettings
    tools: list[ToolDefinition]
    output_schema: OutputSchema | None


class ScriptExhaustedError(AssertionError):
    """A `ScriptedModel` got more requests than it had scripted replies."""


class _RecordingModel(ChatModel):
    """Records each request in `.requests`, then lets the subclass reply."""

    __test__ = False

    def __init__(self, *, model_name: str, max_retries: int) -> None:
        self.model_name = model_name
        self.max_retries = max_retries
        self.requests: list[RequestInfo] = []
        """Every request received, oldest first."""

    async def request(
        self,
        messages: Sequence[Message],
        *,
        settings: RequestSettings | None = None,
        tools: Sequence[ToolDefinition] | None = None,
        output_schema: OutputSchema | None = None,
    ) -> ModelResponse:
        """Record the request and return the next reply."""
        info = RequestInfo(list(messages), settings or {}, list(tools or ()), output_schema)
        self.requests.append(info)
        return await self._reply(info)

    @abstractmethod
    async def _reply(self, info: RequestInfo) -> ModelResponse: ...

    async def _call(self, fn: ReplyFunction, info: RequestInfo) -> ModelResponse:
        result = fn(info.messages, info)
        if inspect.isawaitable(result):
            result = await result
        return self._response(result, info)

    def _response(self, reply: Reply, info: RequestInfo) -> ModelResponse:
        if isinstance(reply, ModelResponse):
            return reply
        prompt_words = sum(len(message.content.split()) for message in info.messages)
        usage = Usage(prompt_tokens=prompt_words, completion_tokens=len(reply.split()))
        return ModelResponse(text=reply, model_name=self.model_name, finish_reason="stop", usage=usage)


class ScriptedModel(_RecordingModel):
    """Replies from a queue, one item per request, and records every request.

    A string becomes the reply text, a `ModelResponse` is returned as is, an
    exception is raised, and a function is called with `(messages, info)`.
    A request after the queue is empty fails with `ScriptExhaustedError`.
    """

    def __init__(self, responses: Iterable[ScriptItem], *, model_name: str = "scripted", max_retries: int = 2) -> None:
        super().__init__(model_name=model_name, max_retries=max_retries)
        self._script: deque[ScriptItem] = deque(responses)
        self._scripted = len(self._script)

    @property
    def remaining(self) -> int:
        """Scripted replies not yet used."""
        return len(self._script)

    async def _reply(self, info: RequestInfo) -> ModelResponse:
        if not self._script:
            last = info.messages[-1].content if info.messages else ""
            raise ScriptExhaustedError(
                f"{self.model_name}: request #{len(self.requests)} arrived but only {self._scripted} "
                f"replies were scripted; its last message was {last!r:.200}"
            )
        item = self._script.popleft()
        if isinstance(item, Exception):
            raise item
        if callable(item):
            return await self._call(item, info)
        return self._response(item, info)


class FunctionModel(_RecordingModel):
    """Replies with whatever `fn(messages, info)` returns (sync or async), and records every request."""

    def __init__(self, fn: ReplyFunction, *, model_name: str = "function", max_retries: int = 2) -> None:
        super().__init__(model_name=model_name, max_retries=max_retries)
        self._fn = fn

    async def _reply(self, info: RequestInfo) -> ModelResponse:
        return await self._call(self._fn, info)
