"""A real loopback HTTP server that answers `/v1/chat/completions` like an OpenAI-compatible one.

It lets unit tests drive `OpenAICompatModel` (and langchain-openai) end to end
through the real SDK without vLLM: it records every request body, counts how
many requests are in flight at once, and replies from a queue.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PORTS = range(18001, 18100)


@dataclass
class Reply:
    """What the server sends back for one request."""

    body: dict[str, Any] | str
    status: int = 200
    delay_s: float = 0.0


def completion(
    text: str | None = "ok",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    prompt_tokens: int = 7,
    completion_tokens: int = 3,
    model: str = "fake-model",
) -> dict[str, Any]:
    """An OpenAI chat-completion body with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass
class FakeOpenAIServer:
    """State shared with the request handler threads."""

    port: int
    replies: deque[Reply] = field(default_factory=deque[Reply])
    default: Reply = field(default_factory=lambda: Reply(completion()))
    requests: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def begin(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.replies.popleft() if self.replies else self.default

    def end(self) -> None:
        with self.lock:
            self.in_flight -= 1


def free_port() -> int:
    """A port in this task's range that nothing listens on."""
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def _handler(state: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            reply = state.begin(json.loads(self.rfile.read(length) or b"{}"))
            time.sleep(reply.delay_s)
            state.end()  # before writing, so a client released by this reply never overlaps it
            payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            data = payload.encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve() -> Generator[FakeOpenAIServer]:
    """Run a fake server on a free port in a background thread."""
    state = FakeOpenAIServer(port=free_port())
    server = ThreadingHTTPServer(("127.0.0.1", state.port), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
