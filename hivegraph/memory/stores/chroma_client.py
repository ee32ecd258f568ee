"""Chroma clients: embedded and server connections, timeouts, closing, and errors translated to ours.

chromadb 1.5 has no timeout setting for a server client and leaks its HTTP
pools on close; both are mended here, in one place, through the few private
attributes they need (named in each docstring). `ChromaConnection` is a client
with what must be released with it (an embedded folder's lock).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.client import Client
from chromadb.auth import UserIdentity
from chromadb.config import Settings
from chromadb.errors import ChromaError
from typing_extensions import override

from hivegraph.errors import BackendUnavailableError, MemoryStoreError
from hivegraph.memory.stores.chroma_lock import EmbeddedLock, lock_embedded

CHROMA_ERRORS = (ChromaError, httpx.HTTPError, ValueError, TypeError)
"""What chromadb raises for a failed call (translated by `translate`)."""


@dataclass
class ChromaConnection:
    """A client opened by hivegraph, and the embedded folder's lock it holds, if any."""

    client: ClientAPI
    lock: EmbeddedLock | None = None
    closed: bool = field(default=False, init=False)

    @classmethod
    def embedded(cls, path: str | Path) -> ChromaConnection:
        """Lock the folder `path` (created if missing) for this process and open a `PersistentClient` on it.

        Raises:
            BackendUnavailableError: another process has the database open.
            MemoryStoreError: the database cannot be opened.

        """
        lock = lock_embedded(path)
        where = str(lock.folder)
        try:
            client = connect(lambda: chromadb.PersistentClient(path=where, settings=chroma_settings()), where)
        except BaseException:
            lock.release()
            discard_failed_embedded(lock.folder)
            raise
        return cls(client, lock)

    @classmethod
    def http(cls, host: str, port: int, *, timeout_s: float) -> ChromaConnection:
        """Connect to a Chroma server at `host:port`, every request limited to `timeout_s` seconds.

        Raises:
            BackendUnavailableError: no Chroma server answers there in time.
            ValueError: `timeout_s` is not positive.

        """
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        timeout = httpx.Timeout(timeout_s)
        return cls(connect(lambda: TimedHttpClient(http_settings(host, port), timeout), f"{host}:{port}"))

    def close(self) -> None:
        """Close the client, then release the folder's lock (idempotent)."""
        if self.closed:
            return
        self.closed = True
        close_client(self.client)
        if self.lock is not None:
            self.lock.release()

    @contextmanager
    def closed_on_error(self) -> Generator[ChromaConnection]:
        """Close this connection (and forget a failed embedded system) if the block raises."""
        try:
            yield self
        except BaseException:
            self.close()
            if self.lock is not None:
                discard_failed_embedded(self.lock.folder)
            raise


def close_client(client: ClientAPI) -> None:
    """Close a chromadb client and, for a server client, its HTTP connection pool.

    chromadb 1.5's `Client.close()` stops the client's systems but leaves the
    `httpx.Client` of an HTTP client, and of the admin client it made inside,
    open (chroma-core/chroma#2702). Each HTTP client has systems of its own, so
    closing those pools here is safe.
    """
    sessions = _sessions(client)
    if isinstance(client, Client):
        client.close()
    for session in sessions:
        session.close()


def chroma_settings() -> Settings:
    """Client settings: no telemetry."""
    return Settings(anonymized_telemetry=False)


def http_settings(host: str, port: int) -> Settings:
    """The settings `chromadb.HttpClient` would build for `host:port`."""
    settings = chroma_settings()
    settings.chroma_api_impl = "chromadb.api.fastapi.FastAPI"
    settings.chroma_server_host = host
    settings.chroma_server_http_port = port
    settings.chroma_server_ssl_enabled = False
    return settings


class TimedHttpClient(Client):
    """A Chroma server client whose every request, from the first, has `timeout`.

    chromadb 1.5 has no timeout setting: `FastAPI.__init__` builds its
    `httpx.Client(timeout=None)`, and `Client.__init__` already sends requests
    (the user identity, then the tenant and database through an admin client
    with a connection pool of its own). Both pools get `timeout` just before
    their first request.
    """

    def __init__(self, settings: Settings, timeout: httpx.Timeout) -> None:
        self._hivegraph_timeout = timeout
        super().__init__(settings=settings)

    @override
    def get_user_identity(self) -> UserIdentity:
        _bound_pools(self, self._hivegraph_timeout)
        return super().get_user_identity()

    @override
    def _validate_tenant_database(self, tenant: str, database: str) -> None:
        _bound_pools(self, self._hivegraph_timeout)
        super()._validate_tenant_database(tenant, database)


def _bound_pools(client: ClientAPI, timeout: httpx.Timeout) -> None:
    """Give the HTTP pools of `client` and of its admin client `timeout`."""
    for session in _sessions(client):
        session.timeout = timeout


def _sessions(client: ClientAPI) -> list[httpx.Client]:
    """The `httpx.Client` pools of a server client and of its admin client (none when embedded)."""
    admin = getattr(client, "_admin_client", None)
    servers = [getattr(client, "_server", None), getattr(admin, "_server", None)]
    sessions = [getattr(server, "_session", None) for server in servers]
    return [session for session in sessions if isinstance(session, httpx.Client)]


def connect(factory: Callable[[], ClientAPI], where: str) -> ClientAPI:
    """Make a client, translating chromadb's errors."""
    try:
        return factory()
    except CHROMA_ERRORS as exc:
        raise translate(exc, where) from exc


def translate(exc: BaseException, where: str) -> Exception:
    """Our error for a chromadb failure at `where`: unreachable or timed out, else a store error."""
    failure = _unreachable(exc)
    if isinstance(failure, httpx.TimeoutException):
        return BackendUnavailableError(
            "chroma",
            f"the Chroma server at {where} timed out ({type(failure).__name__}: {failure}); "
            "if it is only slow, raise `vector_store.chroma.timeout_s`",
        )
    if failure is not None:
        return BackendUnavailableError("chroma", f"no Chroma server answers at {where} ({exc})")
    return MemoryStoreError(f"chroma at {where}: {exc}")


def _unreachable(exc: BaseException | None) -> httpx.TransportError | None:
    """The failed connection or timeout (`httpx.TransportError`) `exc` is or was raised from, if any."""
    for _ in range(10):
        if exc is None:
            return None
        if isinstance(exc, httpx.TransportError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def describe(client: ClientAPI) -> str:
    """Where a client points: `host:port` or the folder."""
    settings = client.get_settings()
    if settings.chroma_server_host:
        return f"{settings.chroma_server_host}:{settings.chroma_server_http_port}"
    return str(settings.persist_directory)


def discard_failed_embedded(folder: str | Path) -> None:
    """Forget the Chroma system cached for `folder` in this process if no client holds it (its start failed).

    chromadb 1.5 keeps a system whose start failed in its per-folder cache, and
    every later client of the same folder in this process fails with it (a raw
    `AttributeError`); dropping the entry lets a repaired folder be opened again.
    """
    from chromadb.api.shared_system_client import SharedSystemClient as Shared

    key = str(Path(folder).resolve())
    if key not in Shared._identifier_to_refcount:  # pyright: ignore[reportPrivateUsage]
        Shared._identifier_to_system.pop(key, None)  # pyright: ignore[reportPrivateUsage]
