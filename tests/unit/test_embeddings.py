"""OpenAICompatEmbedder against a real HTTP server on 127.0.0.1 (the real SDK, real HTTP)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from hivegraph.config import EmbedderSettings, HivegraphSettings, OpenAIEmbedderSettings
from hivegraph.errors import BackendUnavailableError, EmbeddingError
from hivegraph.models import base
from hivegraph.models.embedder import Embedder
from hivegraph.models.embeddings import OpenAICompatEmbedder
from hivegraph.models.testing import HashEmbedder
from hivegraph.registry import EMBEDDERS

PORTS = range(18300, 18400)
API_KEY = "test-key"
NATIVE_DIM = 32


@dataclass
class Seen:
    """What the fake server received."""

    requests: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])


def make_handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.requests.append(body)
            if self.path != "/v1/embeddings":
                return self.reply(404, error("no such route"))
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                return self.reply(401, error("bad api key"))
            if body["model"] == "missing":
                return self.reply(404, error("model 'missing' does not exist"))
            if body.get("encoding_format") != "float":
                return self.reply(400, error("this server only speaks float"))
            texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
            dim = 8 if body["model"] == "fixed-8" else body.get("dimensions", NATIVE_DIM)
            vectors = HashEmbedder(dim=dim).embed(texts)
            data = [
                {"object": "embedding", "index": i, "embedding": [3.0 * v for v in vector]}
                for i, vector in enumerate(vectors)
            ]
            data.reverse()  # the index says where each vector goes, not the position
            usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
            self.reply(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})

        def reply(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


def bind_in_range(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    for port in PORTS:
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    raise RuntimeError(f"no free port in {PORTS}")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    httpd = bind_in_range(make_handler(seen))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def seen(server: tuple[str, Seen]) -> Seen:
    server[1].requests.clear()
    return server[1]


@pytest.fixture
def allow_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests talk to a loopback server they started themselves."""
    monkeypatch.setattr(base, "ALLOW_NETWORK_MODELS", True)


@pytest.fixture
def make(server: tuple[str, Seen]) -> Iterator[Callable[..., OpenAICompatEmbedder]]:
    made: list[OpenAICompatEmbedder] = []

    def build(**options: Any) -> OpenAICompatEmbedder:
        options = {"base_url": server[0], "model": "hash", "api_key": API_KEY, "max_retries": 0} | options
        embedder = OpenAICompatEmbedder(**options)
        made.append(embedder)
        return embedder

    yield build
    for embedder in made:
        embedder.close()


@pytest.mark.usefixtures("allow_network")
def test_vectors_come_back_in_order_and_unit_length(make: Callable[..., OpenAICompatEmbedder]) -> None:
    texts = ["alice likes tea", "bob lives in paris", "tea in paris"]
    vectors = np.array(make().embed(texts))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(vectors, HashEmbedder(dim=NATIVE_DIM).embed(texts), atol=1e-9)


@pytest.mark.usefixtures("allow_network")
def test_dim_is_learnt_from_the_first_reply(make: Callable[..., OpenAICompatEmbedder], seen: Seen) -> None:
    probed = make()
    assert probed.dim == NATIVE_DIM
    assert len(seen.requests) == 1
    assert "dimensions" not in seen.requests[0]

    embedder = make()
    embedder.embed(["hello"])
    assert embedder.dim == NATIVE_DIM
    assert len(seen.requests) == 2


@pytest.mark.usefixtures("allow_network")
def test_settings_give_the_dimensions_and_the_key(server: tuple[str, Seen], seen: Seen) -> None:
    openai_settings = OpenAIEmbedderSettings(base_url=server[0], api_key=SecretStr(API_KEY), dimensions=16)
    settings = HivegraphSettings(embedder=EmbedderSettings(backend="openai", openai=openai_settings))
    embedder = EMBEDDERS.load(settings.embedder.backend).from_settings(settings)
    try:
        assert isinstance(embedder, OpenAICompatEmbedder)
        assert isinstance(embedder, Embedder)
        assert embedder.dim == 16
        assert seen.requests == []
        assert len(embedder.embed(["hello world"])[0]) == 16
        assert seen.requests[0]["dimensions"] == 16
    finally:
        embedder.close()


@pytest.mark.usefixtures("allow_network")
def test_texts_are_sent_in_batches(make: Callable[..., OpenAICompatEmbedder], seen: Seen) -> None:
    texts = [f"text number {i}" for i in range(5)]
    vectors = make(batch_size=2).embed(texts)
    assert [r["input"] for r in seen.requests] == [texts[0:2], texts[2:4], texts[4:5]]
    np.testing.assert_allclose(vectors, HashEmbedder(dim=NATIVE_DIM).embed(texts), atol=1e-9)


@pytest.mark.usefixtures("allow_network")
def test_http_errors_become_embedding_errors_with_the_status(
    make: Callable[..., OpenAICompatEmbedder],
) -> None:
    with pytest.raises(EmbeddingError, match=r"HTTP 404.*does not exist"):
        make(model="missing").embed(["hello"])
    with pytest.raises(EmbeddingError, match="HTTP 401"):
        make(api_key="wrong").embed(["hello"])


@pytest.mark.usefixtures("allow_network")
def test_a_reply_of_the_wrong_length_is_an_embedding_error(make: Callable[..., OpenAICompatEmbedder]) -> None:
    with pytest.raises(EmbeddingError, match="length 8, expected 16"):
        make(model="fixed-8", dimensions=16).embed(["hello"])


@pytest.mark.usefixtures("allow_network")
def test_an_unreachable_server_is_backend_unavailable(make: Callable[..., OpenAICompatEmbedder]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    embedder = make(base_url=f"http://127.0.0.1:{closed_port}/v1")
    with pytest.raises(BackendUnavailableError, match="cannot connect") as caught:
        embedder.embed(["hello"])
    assert str(closed_port) in caught.value.backend


def test_unit_tests_cannot_reach_the_network_by_default(make: Callable[..., OpenAICompatEmbedder], seen: Seen) -> None:
    with pytest.raises(RuntimeError, match="disabled"):
        make().embed(["hello"])
    assert seen.requests == []


@pytest.mark.usefixtures("allow_network")
def test_config_round_trip_keeps_no_secret_and_the_learnt_dim(
    make: Callable[..., OpenAICompatEmbedder], seen: Seen
) -> None:
    original = make(batch_size=7)
    original.embed(["hello"])
    config = original.get_config()
    assert json.loads(json.dumps(config)) == config
    assert API_KEY not in json.dumps(config)
    rebuilt = OpenAICompatEmbedder.from_config(config, api_key=API_KEY)
    try:
        assert rebuilt.get_config() == config
        assert rebuilt.dim == NATIVE_DIM
        assert len(seen.requests) == 1  # no probe: the dim travelled with the config
        np.testing.assert_allclose(rebuilt.embed(["hello"]), original.embed(["hello"]))
    finally:
        rebuilt.close()
