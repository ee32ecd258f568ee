"""Connection handling for OpenAI-compatible servers: URL, key, clients, concurrency.

An httpx connection pool must not be shared across event loops, so the
provider keeps one `AsyncOpenAI` client and one semaphore per running loop
(dropped automatically when the loop is garbage-collected). Message
translation lives in the models that use it.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

import openai

from hivegraph.errors import BackendUnavailableError, HivegraphError, ModelAPIError, ModelHTTPError

DEFAULT_TRANSPORT_RETRIES = 2
"""The openai SDK's own default: it retries connection errors, timeouts and HTTP 408/409/429/5xx."""


@dataclass
class _LoopState:
    client: openai.AsyncOpenAI
    limiter: asyncio.Semaphore


class OpenAICompatProvider:
    """Where an OpenAI-compatible server is and how many requests it gets at once."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "EMPTY",
        timeout_s: float = 120.0,
        max_concurrency: int = 4,
        transport_retries: int = DEFAULT_TRANSPORT_RETRIES,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.transport_retries = transport_retries
        self._api_key = api_key
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()

    def client(self) -> openai.AsyncOpenAI:
        """The client for the running event loop, created on first use."""
        return self._state().client

    def limiter(self) -> asyncio.Semaphore:
        """The semaphore bounding requests in flight on the running event loop."""
        return self._state().limiter

    async def aclose(self) -> None:
        """Close the running loop's client (a later request opens a new one).

        Clients of other loops are left alone; those of loops that are gone
        were dropped with their loop.
        """
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.client.close()

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                timeout=self.timeout_s,
                max_retries=self.transport_retries,
            )
            state = self._states[loop] = _LoopState(client, asyncio.Semaphore(self.max_concurrency))
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, max_concurrency={self.max_concurrency})"


def openai_error(exc: openai.APIError, *, backend: str, model_name: str) -> HivegraphError:
    """Our error for an exception the openai SDK raised (after its own retries).

    A connection failure or timeout becomes `BackendUnavailableError` (with a
    hint to start the server), an HTTP error status `ModelHTTPError`, and any
    other SDK error `ModelAPIError`.
    """
    if isinstance(exc, openai.APIConnectionError):
        if isinstance(exc, openai.APITimeoutError):
            problem = "the model server did not reply in time"
        else:
            problem = f"cannot connect to the model server ({exc.__cause__ or exc})"
        return BackendUnavailableError(
            backend,
            f"{problem}; start the local one with `hivegraph model serve` or point model.base_url at a running server",
        )
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if exc.body is not None else exc.response.text
        return ModelHTTPError(model_name, exc.status_code, body)
    return ModelAPIError(model_name, str(exc))
