"""`ChromaVectorIndex`: a `VectorIndex` in Chroma, embedded or on a Chroma server.

The collection uses the cosine space; a hit's score is `1 - distance`. Texts
are embedded by `HivegraphEmbeddingFunction`, which Chroma stores with the
collection, so the collection can be reopened (and queried by text) in another
process that has imported this module. Chroma is synchronous: every call runs
in a worker thread.

An embedded database is held by one process at a time (`chroma_lock`); to share
one, run a Chroma server. Every request to a server has a timeout (chromadb 1.5
builds its `httpx.Client` with none: a stopped server would hang a call
forever); a request that times out may still be applied by the server later,
which is harmless for upserts and deletes by id.

Metadata values are str, int, float or bool (Chroma stores no None and no
lists). Filter support and its limits are listed in
`hivegraph.memory.stores.chroma_filters`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar, cast

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError

from hivegraph.config import HivegraphSettings
from hivegraph.errors import ConfigError
from hivegraph.memory.stores.base import (
    Filter,
    Hit,
    IndexDeleteOp,
    IndexGetOp,
    IndexItem,
    IndexOp,
    IndexQueryOp,
    IndexResult,
    IndexUpsertOp,
    VectorIndex,
)
from hivegraph.memory.stores.chroma_client import (
    CHROMA_ERRORS,
    TimedHttpClient,
    chroma_settings,
    close_client,
    connect,
    describe,
    discard_failed_embedded,
    http_settings,
    translate,
)
from hivegraph.memory.stores.chroma_embedding import HivegraphEmbeddingFunction
from hivegraph.memory.stores.chroma_filters import ChromaWhere, chroma_where
from hivegraph.memory.stores.chroma_lock import EmbeddedLock, lock_embedded
from hivegraph.memory.types import Scalar
from hivegraph.models.embedder import Embedder
from hivegraph.registry import EMBEDDERS

__all__ = [
    "ChromaVectorIndex",
    "HivegraphEmbeddingFunction",
    "close_client",
    "collection_name",
    "discard_failed_embedded",
]

R = TypeVar("R")
DEFAULT_TIMEOUT_S = 10.0
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")


class ChromaVectorIndex(VectorIndex):
    """Items in one Chroma collection; survives restarts of the process."""

    persistent = True

    def __init__(
        self,
        *,
        client: ClientAPI,
        collection: str,
        embedder: Embedder,
        embedder_backend: str | None = None,
    ) -> None:
        """Use `collection` (created if missing) of `client`; the caller keeps owning `client`.

        Args:
            client: A chromadb client (`PersistentClient`, `HttpClient`).
            collection: The collection name (3-512 of `[a-zA-Z0-9._-]`).
            embedder: Embeds item and query texts.
            embedder_backend: The embedder's name in `EMBEDDERS`; found by its class when None.

        Raises:
            ConfigError: the embedder cannot be stored with the collection.

        """
        self._client = client
        self._name = collection
        self._function = HivegraphEmbeddingFunction(embedder, backend=embedder_backend)
        self._collection: Collection | None = None
        self._batch_size = 1
        self._lock = asyncio.Lock()
        self._owns_client = False
        self._embedded_lock: EmbeddedLock | None = None
        self._where = describe(client)

    @classmethod
    def persistent_at(
        cls, path: str | Path, *, collection: str, embedder: Embedder, embedder_backend: str | None = None
    ) -> Self:
        """Open an embedded Chroma database in the folder `path` (created if missing).

        The folder stays locked for this process until `aclose` (see `chroma_lock`).
        (Named `persistent_at` because `persistent` is the `VectorIndex` flag.)

        Raises:
            BackendUnavailableError: another process has the database open.
            MemoryStoreError: the database cannot be opened.
            ConfigError: the embedder cannot be stored with the collection.

        """
        lock = lock_embedded(path)
        where = str(lock.folder)
        try:
            client = connect(lambda: chromadb.PersistentClient(path=where, settings=chroma_settings()), where)
            index = cls._owning(client, collection, embedder, embedder_backend)
        except BaseException:
            lock.release()
            discard_failed_embedded(lock.folder)
            raise
        index._embedded_lock = lock
        return index

    @classmethod
    def http(
        cls,
        host: str,
        port: int,
        *,
        collection: str,
        embedder: Embedder,
        embedder_backend: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Self:
        """Connect to a Chroma server (`chroma run`) at `host:port`.

        Args:
            host: The server's host name or address.
            port: The server's HTTP port.
            collection: The collection name.
            embedder: Embeds item and query texts.
            embedder_backend: The embedder's name in `EMBEDDERS`; found by its class when None.
            timeout_s: Connect, read, write and pool timeout of every request, in seconds.

        Raises:
            BackendUnavailableError: no Chroma server answers there in time.
            ConfigError: the embedder cannot be stored with the collection.
            ValueError: `timeout_s` is not positive.

        """
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        where = f"{host}:{port}"
        client = connect(lambda: TimedHttpClient(http_settings(host, port), httpx.Timeout(timeout_s)), where)
        return cls._owning(client, collection, embedder, embedder_backend)

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """Build from `vector_store.chroma` with the configured embedder.

        The collection is named `<collection_prefix>-<embedder name>-<dim>`, so
        vectors of different embedders never share a collection.
        """
        backend = settings.embedder.backend
        embedder: Embedder = EMBEDDERS.load(backend).from_settings(settings)
        chroma = settings.vector_store.chroma
        name = collection_name(chroma.collection_prefix, embedder)
        options: dict[str, Any] = {"collection": name, "embedder": embedder, "embedder_backend": backend}
        if chroma.mode == "http":
            return cls.http(chroma.host, chroma.port, timeout_s=chroma.timeout_s, **options)
        return cls.persistent_at(settings.resolve(chroma.path, "chroma"), **options)

    @classmethod
    def _owning(cls, client: ClientAPI, collection: str, embedder: Embedder, backend: str | None) -> Self:
        try:
            index = cls(client=client, collection=collection, embedder=embedder, embedder_backend=backend)
        except ConfigError:
            close_client(client)
            raise
        index._owns_client = True
        return index

    @property
    def embedder(self) -> Embedder:
        """The embedder that turns texts into vectors."""
        return self._function.embedder

    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        """Run `ops` in order and return one result per op (None for writes).

        Raises:
            BackendUnavailableError: the Chroma server does not answer.
            MemoryStoreError: Chroma refused an operation.
            ValueError: a filter uses an unknown operator.

        """
        if not ops:
            return []
        wheres = [chroma_where(op.where if isinstance(op, IndexGetOp | IndexQueryOp) else None) for op in ops]
        collection = await self._open()
        return [
            await self._call(_run, collection, self._function, self._batch_size, op, where)
            for op, where in zip(ops, wheres, strict=True)
        ]

    async def count(self, *, where: Filter | None = None) -> int:
        """How many items the collection holds (those matching `where`, counted by id only)."""
        clause = chroma_where(where)
        collection = await self._open()
        if where is None:
            return await self._call(collection.count)
        if clause.impossible:
            return 0
        found = await self._call(lambda: collection.get(where=cast(Any, clause.clause), include=[]))
        return len(found["ids"])

    async def drop(self) -> None:
        """Delete the collection, if there is one; the next call creates it again, empty.

        Raises:
            BackendUnavailableError: the Chroma server does not answer.
            MemoryStoreError: Chroma refused to delete the collection.

        """
        async with self._lock:
            self._collection = None
            await self._call(self._delete_collection)

    async def aclose(self) -> None:
        """Release the client and the embedded folder's lock, if this index opened them."""
        self._collection = None
        if self._owns_client:
            self._owns_client = False
            await asyncio.to_thread(close_client, self._client)
        if self._embedded_lock is not None:
            self._embedded_lock.release()
            self._embedded_lock = None

    async def _open(self) -> Collection:
        async with self._lock:
            if self._collection is None:
                self._collection = await self._call(self._get_or_create)
                self._batch_size = max(1, await self._call(self._client.get_max_batch_size))
            return self._collection

    def _get_or_create(self) -> Collection:
        collection = self._client.get_or_create_collection(
            self._name,
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=cast(Any, self._function),
        )
        _check_collection(collection, self._function)
        return collection

    def _delete_collection(self) -> None:
        try:
            self._client.delete_collection(self._name)
        except NotFoundError:
            return

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        try:
            return await asyncio.to_thread(fn, *args)
        except CHROMA_ERRORS as exc:
            raise translate(exc, self._where) from exc


def collection_name(prefix: str, embedder: Embedder) -> str:
    """`<prefix>-<embedder name>-<dim>`, reduced to the characters Chroma allows."""
    slug = _NAME_UNSAFE.sub("-", embedder.name).strip("-._")[:400]
    return f"{prefix}-{slug}-{embedder.dim}"


def _run(
    collection: Collection, function: HivegraphEmbeddingFunction, size: int, op: IndexOp, where: ChromaWhere
) -> IndexResult:
    match op:
        case IndexUpsertOp(items=items):
            _upsert(collection, size, items)
            return None
        case IndexDeleteOp(ids=ids):
            for chunk in _chunks(list(dict.fromkeys(ids)), size):
                collection.delete(ids=chunk)
            return None
        case IndexGetOp(ids=ids):
            return _get(collection, size, ids, where)
        case IndexQueryOp(text=text, k=k):
            return _query(collection, function, text, k, where)


def _upsert(collection: Collection, size: int, items: Sequence[IndexItem]) -> None:
    """Replace whole items: Chroma's upsert merges metadata, so keys dropped are set to None.

    Reading the old keys and writing are two calls; a concurrent writer of the
    same id in between may leave a key behind (the journal is the source of truth).
    """
    latest = list({item.id: item for item in items}.values())
    for chunk in _chunks(latest, size):
        ids = [item.id for item in chunk]
        before = collection.get(ids=ids, include=["metadatas"])
        old = {id_: meta or {} for id_, meta in zip(before["ids"], before["metadatas"] or [], strict=True)}
        metadatas = [_replacing(old.get(item.id, {}), item.metadata) for item in chunk]
        collection.upsert(
            ids=ids,
            documents=[item.text for item in chunk],
            metadatas=cast(Any, metadatas),
        )


def _replacing(old: Mapping[str, Any], new: Mapping[str, Scalar]) -> dict[str, Any] | None:
    """Metadata that replaces `old` by `new` (Chroma's upsert merges; None removes a key)."""
    merged: dict[str, Any] = {key: None for key in old if key not in new}
    merged.update(new)
    return merged or None


def _get(collection: Collection, size: int, ids: Sequence[str] | None, where: ChromaWhere) -> list[IndexItem]:
    if where.impossible or (ids is not None and not ids):
        return []
    clause = cast(Any, where.clause)
    if ids is None:
        found = _items(collection.get(where=clause, include=["documents", "metadatas"]))
        return sorted(found, key=lambda item: item.id)
    by_id: dict[str, IndexItem] = {}
    for chunk in _chunks(list(dict.fromkeys(ids)), size):
        result = collection.get(ids=chunk, where=clause, include=["documents", "metadatas"])
        by_id.update((item.id, item) for item in _items(result))
    return [by_id[item_id] for item_id in ids if item_id in by_id]


def _query(
    collection: Collection, function: HivegraphEmbeddingFunction, text: str, k: int, where: ChromaWhere
) -> list[Hit]:
    if k < 1 or where.impossible:
        return []
    result = collection.query(
        query_embeddings=[function.query_vector(text)],
        n_results=k,
        where=cast(Any, where.clause),
        include=["documents", "metadatas", "distances"],
    )
    ids = result["ids"][0]
    documents = (result["documents"] or [[]])[0]
    metadatas = (result["metadatas"] or [[]])[0]
    distances = (result["distances"] or [[]])[0]
    hits = [
        Hit(id=id_, text=doc or "", metadata=_scalars(meta), score=min(1.0, max(-1.0, 1.0 - float(dist))))
        for id_, doc, meta, dist in zip(ids, documents, metadatas, distances, strict=True)
    ]
    return sorted(hits, key=lambda hit: (-hit.score, hit.id))


def _items(result: Mapping[str, Any]) -> list[IndexItem]:
    """Items from a Chroma `get` result (metadata holds only our scalar values)."""
    documents = result["documents"] or [None] * len(result["ids"])
    metadatas = result["metadatas"] or [None] * len(result["ids"])
    return [
        IndexItem(id=id_, text=doc or "", metadata=_scalars(meta))
        for id_, doc, meta in zip(result["ids"], documents, metadatas, strict=True)
    ]


def _chunks(values: list[R], size: int) -> Iterator[list[R]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _check_collection(collection: Collection, function: HivegraphEmbeddingFunction) -> None:
    config: dict[str, Any] = collection.configuration_json
    stored: dict[str, Any] = config.get("embedding_function") or {}
    expected = {"name": function.name(), "config": function.get_config()}
    if {key: stored.get(key) for key in expected} != expected:
        raise ConfigError(
            f"Chroma collection {collection.name!r} holds vectors of embedding function "
            f"{stored.get('name')!r} {stored.get('config')!r}, not {expected['config']!r}; "
            "use another collection"
        )
    hnsw: dict[str, Any] = config.get("hnsw") or {}
    space = hnsw.get("space")
    if space != "cosine":
        raise ConfigError(f"Chroma collection {collection.name!r} uses the {space!r} space, not cosine")


def _scalars(metadata: Mapping[str, Any] | None) -> dict[str, Scalar]:
    return dict(metadata or {})
