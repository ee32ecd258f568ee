"""`OpenAICompatEmbedder`: vectors from an OpenAI-compatible `/v1/embeddings` endpoint.

vLLM serves embedding models behind this API, as do OpenAI and most hosted
providers. The embedder is synchronous (the `Embedder` protocol is), so it uses
the SDK's sync client; async callers run it in a worker thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any, Self

import openai
from pydantic import SecretStr

from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import BackendUnavailableError, ConfigError, EmbeddingError
from hivegraph.models.base import check_network_allowed

DEFAULT_BATCH_SIZE = 64
_DIM_PROBE = "dimension probe"


class OpenAICompatEmbedder:
    """Embeds texts through an OpenAI-compatible server; vectors are L2-normalised here.

    `dim` is the configured `dimensions` when set (then also sent with each
    request, as OpenAI's API defines it); otherwise it is learnt from the first
    reply, and reading `dim` before any `embed` sends one short probe request.
    """

    name: str = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | SecretStr = "EMPTY",
        dimensions: int | None = None,
        timeout_s: float = 60.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_retries: int = 2,
    ) -> None:
        """Configure the client (nothing is sent until the first `embed`).

        Args:
            base_url: The server's API root, e.g. `http://127.0.0.1:8766/v1`.
            model: The served model name.
            api_key: Sent as a bearer token.
            dimensions: Vector length to request and expect; the model's own when None.
            timeout_s: Timeout of one request.
            batch_size: Texts per request.
            max_retries: The SDK's retries of connection errors, 408, 429 and 5xx.

        Raises:
            ConfigError: `batch_size` is below 1.

        """
        if batch_size < 1:
            raise ConfigError(f"OpenAICompatEmbedder: batch_size must be >= 1, got {batch_size}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.dimensions = dimensions
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.max_retries = max_retries
        secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._client = openai.OpenAI(base_url=self.base_url, api_key=secret, timeout=timeout_s, max_retries=max_retries)
        self._dim = dimensions
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """Build from `embedder.openai` and `embedder.batch_size`."""
        section = settings.embedder.openai
        return cls(
            base_url=section.base_url,
            model=section.model,
            api_key=section.api_key,
            dimensions=section.dimensions,
            timeout_s=section.timeout_s,
            batch_size=settings.embedder.batch_size,
        )

    def get_config(self) -> dict[str, Any]:
        """Describe this embedder for `from_config` (JSON-serialisable; the key is left out)."""
        return {
            "base_url": self.base_url,
            "model": self.model,
            "dimensions": self.dimensions,
            "dim": self._dim,
            "timeout_s": self.timeout_s,
            "batch_size": self.batch_size,
            "max_retries": self.max_retries,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], *, api_key: str | SecretStr | None = None) -> Self:
        """Rebuild from `get_config` output.

        The key is not stored: pass `api_key`, or it is read from the current
        settings (`HIVEGRAPH_EMBEDDER__OPENAI__API_KEY`, default `EMPTY`). A
        `dim` learnt before is kept, so no probe request is needed.

        Raises:
            ConfigError: the current settings are invalid (only read without `api_key`).

        """
        if api_key is None:
            api_key = load_settings().embedder.openai.api_key
        embedder = cls(
            base_url=str(config["base_url"]),
            model=str(config["model"]),
            api_key=api_key,
            dimensions=config.get("dimensions"),
            timeout_s=float(config.get("timeout_s", 60.0)),
            batch_size=int(config.get("batch_size", DEFAULT_BATCH_SIZE)),
            max_retries=int(config.get("max_retries", 2)),
        )
        if config.get("dim") is not None:
            embedder._dim = int(config["dim"])
        return embedder

    @property
    def dim(self) -> int:
        """Length of every vector; may send one probe request when not yet known.

        Raises:
            BackendUnavailableError: the server cannot be reached.
            EmbeddingError: the server answered with an error.

        """
        if self._dim is None:
            self.embed([_DIM_PROBE])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order, `batch_size` texts per request.

        Raises:
            RuntimeError: network models are disabled (unit tests).
            BackendUnavailableError: the server cannot be reached or timed out.
            EmbeddingError: an HTTP error status, or a malformed reply.

        """
        check_network_allowed()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors += self._request(list(texts[start : start + self.batch_size]))
        return vectors

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _request(self, batch: list[str]) -> list[list[float]]:
        extra: dict[str, Any] = {} if self.dimensions is None else {"dimensions": self.dimensions}
        try:
            reply = self._client.embeddings.create(input=batch, model=self.model, encoding_format="float", **extra)
        except openai.APIConnectionError as exc:
            problem = "timed out" if isinstance(exc, openai.APITimeoutError) else "cannot connect"
            raise BackendUnavailableError(
                f"embeddings server {self.base_url}", f"{problem} ({exc.__cause__ or exc})"
            ) from exc
        except openai.APIStatusError as exc:
            body = exc.body if exc.body is not None else exc.response.text
            raise EmbeddingError(
                f"{self.base_url} model {self.model!r}: HTTP {exc.status_code}: {body!r:.300}"
            ) from exc
        except openai.APIError as exc:
            raise EmbeddingError(f"{self.base_url} model {self.model!r}: {exc}") from exc
        rows = sorted(reply.data, key=lambda item: item.index)
        if len(rows) != len(batch):
            raise EmbeddingError(f"{self.base_url}: asked for {len(batch)} vectors, got {len(rows)}")
        return [self._normalise(row.embedding) for row in rows]

    def _normalise(self, vector: list[float]) -> list[float]:
        with self._lock:
            if self._dim is None:
                self._dim = len(vector)
        if len(vector) != self._dim:
            raise EmbeddingError(f"{self.base_url}: a vector of length {len(vector)}, expected {self._dim}")
        norm = math.sqrt(math.fsum(v * v for v in vector))
        if norm == 0.0 or not math.isfinite(norm):
            raise EmbeddingError(f"{self.base_url}: the server returned a vector of norm {norm}")
        return [v / norm for v in vector]
