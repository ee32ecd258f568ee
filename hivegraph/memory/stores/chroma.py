"""`ChromaVectorIndex` and `ChromaSpace`: a `VectorIndex` and a `VectorSpace` in Chroma, embedded or on a server.

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

A `ChromaSpace` owns one client; its collection `name` is the Chroma collection
`<collection_name(prefix, embedder)>-<name>`, so vectors of different embedders
never share a collection. Its collections share the client and one query cache.

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

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError
from numpy.typing import NDArray

from hivegraph.config import HivegraphSettings
from hivegraph.errors import ConfigError
from hivegraph.memory.stores.base import (
    COLLECTION_NAME,
    Filter,
    Hit,
    IndexDeleteOp,
    IndexGetOp,
    IndexItem,
    IndexNearestOp,
    IndexOp,
    IndexQueryOp,
    IndexResult,
    IndexUpsertOp,
    QueryCache,
    VectorIndex,
    VectorSpace,
    check_collection_name,
    check_mark_name,
)
from hivegraph.memory.stores.chroma_client import (
    CHROMA_ERRORS,
    ChromaConnection,
    close_client,
    describe,
    discard_failed_embedded,
    translate,
)
from hivegraph.memory.stores.chroma_embedding import HivegraphEmbeddingFunction
from hivegraph.memory.stores.chroma_filters import ChromaWhere, chroma_where
from hivegraph.memory.types import Scalar
from hivegraph.models.embedder import Embedder
from hivegraph.registry import EMBEDDERS

__all__ = [
    "ChromaSpace",
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
        queries: QueryCache | None = None,
        hnsw: Mapping[str, Any] | None = None,
    ) -> None:
        """Use `collection` (created on the first write) of `client`; the caller keeps owning `client`.

        A read of a collection that does not exist finds nothing and creates nothing.

        Args:
            client: A chromadb client (`PersistentClient`, `HttpClient`).
            collection: The collection name (3-512 of `[a-zA-Z0-9._-]`, alphanumeric at both ends).
            embedder: Embeds item and query texts.
            embedder_backend: The embedder's name in `EMBEDDERS`; found by its class when None.
            queries: A cache of `embedder`'s query vectors to share; a new one when None.
            hnsw: HNSW settings for a collection this index creates (the space is always cosine).

        Raises:
            ConfigError: the embedder cannot be stored with the collection.

        """
        self._client = client
        self._name = collection
        self._function = HivegraphEmbeddingFunction(embedder, backend=embedder_backend, queries=queries)
        self._collection: Collection | None = None
        self._hnsw: dict[str, Any] = {**(hnsw or {}), "space": "cosine"}
        self._batch_size = 1
        self._lock = asyncio.Lock()
        self._connection: ChromaConnection | None = None
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
        return cls._owning(ChromaConnection.embedded(path), collection, embedder, embedder_backend)

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
        connection = ChromaConnection.http(host, port, timeout_s=timeout_s)
        return cls._owning(connection, collection, embedder, embedder_backend)

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """Build from `vector_store.chroma` with the configured embedder.

        The collection is named `<collection_prefix>-<embedder name>-<dim>`, so
        vectors of different embedders never share a collection.
        """
        embedder, backend = _embedder(settings)
        name = collection_name(settings.vector_store.chroma.collection_prefix, embedder)
        return cls._owning(_connect(settings), name, embedder, backend)

    @classmethod
    def _owning(cls, connection: ChromaConnection, collection: str, embedder: Embedder, backend: str | None) -> Self:
        with connection.closed_on_error():
            index = cls(client=connection.client, collection=collection, embedder=embedder, embedder_backend=backend)
        index._connection = connection
        return index

    @property
    def embedder(self) -> Embedder:
        """The embedder that turns texts into vectors."""
        return self._function.embedder

    def embed_query(self, text: str) -> list[float]:
        """The query vector of `text`, from the query cache."""
        return self._function.query_vector(text)

    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        """Run `ops` in order and return one result per op (None for writes).

        Raises:
            BackendUnavailableError: the Chroma server does not answer.
            MemoryStoreError: Chroma refused an operation.
            ValueError: a filter uses an unknown operator, or a vector has the wrong length.

        """
        if not ops:
            return []
        for op in ops:
            if isinstance(op, IndexNearestOp) and len(op.vector) != self.embedder.dim:
                raise ValueError(f"a query vector of {len(op.vector)} numbers; this index holds {self.embedder.dim}")
        wheres = [chroma_where(None if isinstance(op, IndexUpsertOp | IndexDeleteOp) else op.where) for op in ops]
        writes = any(isinstance(op, IndexUpsertOp | IndexDeleteOp) for op in ops)
        collection = await self._open(create=writes)
        if collection is None:  # reads only, of a collection nobody has written: nothing to find
            return [None if isinstance(op, IndexUpsertOp | IndexDeleteOp) else [] for op in ops]
        return [
            await self._call(_run, collection, self._function, self._batch_size, op, where)
            for op, where in zip(ops, wheres, strict=True)
        ]

    async def count(self, *, where: Filter | None = None) -> int:
        """How many items the collection holds (those matching `where`, counted by id only)."""
        clause = chroma_where(where)
        collection = await self._open(create=False)
        if collection is None:
            return 0
        if where is None:
            return await self._call(collection.count)
        if clause.impossible:
            return 0
        found = await self._call(lambda: collection.get(where=cast(Any, clause.clause), include=[]))
        return len(found["ids"])

    async def vectors(self, *, limit: int) -> tuple[list[str], NDArray[np.float32]]:
        """The ids and stored vectors of at most `limit` items (none for a collection nobody has written).

        Raises:
            BackendUnavailableError: the Chroma server does not answer.
            MemoryStoreError: Chroma refused the read.

        """
        dim = self.embedder.dim
        collection = await self._open(create=False)
        if collection is None or limit < 1:
            return [], np.zeros((0, dim), dtype=np.float32)
        found = await self._call(lambda: collection.get(limit=limit, include=cast(Any, ["embeddings"])))
        rows = found["embeddings"]
        matrix = np.asarray(rows if rows is not None else [], dtype=np.float32).reshape(len(found["ids"]), dim)
        return list(found["ids"]), matrix

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
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.to_thread(connection.close)

    async def _open(self, *, create: bool = True) -> Collection | None:
        async with self._lock:
            if self._collection is None:
                found = await self._call(self._get_or_create if create else self._get_existing)
                if found is None:
                    return None
                self._collection = found
                self._batch_size = max(1, await self._call(self._client.get_max_batch_size))
            return self._collection

    def _get_or_create(self) -> Collection:
        collection = self._client.get_or_create_collection(
            self._name,
            configuration=cast(Any, {"hnsw": self._hnsw}),
            embedding_function=cast(Any, self._function),
        )
        _check_collection(collection, self._function)
        return collection

    def _get_existing(self) -> Collection | None:
        try:
            collection = self._client.get_collection(self._name, embedding_function=cast(Any, self._function))
        except NotFoundError:
            return None
        _check_collection(collection, self._function)
        return collection

    def _delete_collection(self) -> None:
        try:
            self._client.delete_collection(self._name)
        except NotFoundError:
            return

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        return await _threaded(self._where, fn, *args)


MARK_PREFIX = "_mark-"
MARK_KEY = "hivegraph_mark"
"""A space's mark `name` is the metadata `{MARK_KEY: value}` of the empty Chroma collection
`<prefix><MARK_PREFIX><name>`: Chroma reads a collection's metadata from its catalogue without loading its
segments (2.4 ms embedded, where counting a collection loads it: 20 ms and a few MB each)."""

SPACE_HNSW: dict[str, Any] = {"sync_threshold": 100, "batch_size": 100}
"""HNSW settings of a space's collections. Chroma keeps a collection's vectors in its log until
`sync_threshold` of them (default 1000) are written, and a process re-reads that log on the first query:
per-tenant collections of a few hundred vectors would never reach it (measured at 30k vectors in 50
collections: first query 31 ms with the default, 3.2 ms with 100; later queries 1.3 to 1.6 ms either way)."""


class ChromaSpace(VectorSpace):
    """Chroma collections of one client and one embedder, named `<collection_name(prefix, embedder)>-<name>`."""

    persistent = True

    def __init__(
        self, *, client: ClientAPI, prefix: str, embedder: Embedder, embedder_backend: str | None = None
    ) -> None:
        """Use collections of `client`; the caller keeps owning `client`.

        Args:
            client: A chromadb client (`PersistentClient`, `HttpClient`).
            prefix: Starts every collection name, before the embedder's name and dimension.
            embedder: Embeds item and query texts of every collection.
            embedder_backend: The embedder's name in `EMBEDDERS`; found by its class when None.

        Raises:
            ConfigError: the embedder cannot be stored with a collection.

        """
        self._client = client
        self._function = HivegraphEmbeddingFunction(embedder, backend=embedder_backend)
        self._prefix = f"{collection_name(prefix, embedder)}-"
        self._collections: dict[str, ChromaVectorIndex] = {}
        self._marks: dict[str, Collection] = {}
        """Mark collections this space has written (so the next write is one request)."""
        self._connection: ChromaConnection | None = None
        self._where = describe(client)

    @classmethod
    def persistent_at(
        cls, path: str | Path, *, prefix: str, embedder: Embedder, embedder_backend: str | None = None
    ) -> Self:
        """Open an embedded Chroma database in the folder `path` (created if missing), locked until `aclose`.

        Raises:
            BackendUnavailableError: another process has the database open.
            MemoryStoreError: the database cannot be opened.
            ConfigError: the embedder cannot be stored with a collection.

        """
        return cls._owning(ChromaConnection.embedded(path), prefix, embedder, embedder_backend)

    @classmethod
    def http(
        cls,
        host: str,
        port: int,
        *,
        prefix: str,
        embedder: Embedder,
        embedder_backend: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Self:
        """Connect to a Chroma server (`chroma run`) at `host:port`; every request times out after `timeout_s`.

        Raises:
            BackendUnavailableError: no Chroma server answers there in time.
            ConfigError: the embedder cannot be stored with a collection.
            ValueError: `timeout_s` is not positive.

        """
        connection = ChromaConnection.http(host, port, timeout_s=timeout_s)
        return cls._owning(connection, prefix, embedder, embedder_backend)

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """Build from `vector_store.chroma` (its `collection_prefix`) with the configured embedder."""
        embedder, backend = _embedder(settings)
        return cls._owning(_connect(settings), settings.vector_store.chroma.collection_prefix, embedder, backend)

    @classmethod
    def _owning(cls, connection: ChromaConnection, prefix: str, embedder: Embedder, backend: str | None) -> Self:
        with connection.closed_on_error():
            space = cls(client=connection.client, prefix=prefix, embedder=embedder, embedder_backend=backend)
        space._connection = connection
        return space

    @property
    def embedder(self) -> Embedder:
        """The embedder of every collection."""
        return self._function.embedder

    def collection(self, name: str) -> ChromaVectorIndex:
        """The collection `name`; the Chroma collection is created on its first operation.

        Raises:
            ValueError: `name` is not a valid collection name.

        """
        found = self._collections.get(name)
        if found is None:
            found = ChromaVectorIndex(
                client=self._client,
                collection=self._prefix + check_collection_name(name),
                embedder=self.embedder,
                embedder_backend=self._function.backend,
                queries=self._function.queries,
                hnsw=SPACE_HNSW,
            )
            self._collections[name] = found
        return found

    async def names(self) -> list[str]:
        """The collections of this space (prefix and embedder) that exist now, sorted.

        Raises:
            BackendUnavailableError: the Chroma server does not answer.
            MemoryStoreError: Chroma refused to list its collections.

        """
        found = await _threaded(self._where, self._client.list_collections)
        names = [c.name[len(self._prefix) :] for c in found if c.name.startswith(self._prefix)]
        return sorted(name for name in names if _named(name))

    async def drop(self, name: str) -> None:
        """Delete collection `name` (no-op if it does not exist); its handle creates it again on next use.

        Raises:
            ValueError: `name` is not a valid collection name.
            BackendUnavailableError: the Chroma server does not answer.
            MemoryStoreError: Chroma refused to delete the collection.

        """
        await self.collection(name).drop()

    def embed_query(self, text: str) -> list[float]:
        """The query vector of `text`, from the query cache all collections share."""
        return self._function.query_vector(text)

    async def mark(self, name: str) -> int | None:
        """The value last kept under `name` (None if none): an empty collection's metadata, read from the catalogue.

        Raises:
            ValueError: `name` is not a valid mark name.
            BackendUnavailableError: the Chroma server does not answer.
            MemoryStoreError: Chroma refused the read.

        """
        collection = self._mark_collection(name)

        def read() -> int | None:
            try:
                metadata = self._client.get_collection(collection, embedding_function=None).metadata
            except NotFoundError:
                return None
            value = (metadata or {}).get(MARK_KEY)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return await _threaded(self._where, read)

    async def set_mark(self, name: str, value: int | None) -> None:
        """Keep `value` under `name` (None forgets it).

        Raises:
            ValueError: `name` is not a valid mark name.
            BackendUnavailableError: the Chroma server does not answer.
            MemoryStoreError: Chroma refused the write.

        """
        collection = self._mark_collection(name)

        def write() -> None:
            held = self._marks.pop(collection, None)
            if value is None:
                try:
                    self._client.delete_collection(collection)
                except NotFoundError:
                    return
                return
            if held is not None:
                try:
                    held.modify(metadata={MARK_KEY: value})
                except NotFoundError:  # dropped by another process: create it again
                    held = None
            if held is None:
                held = self._client.get_or_create_collection(
                    collection, metadata={MARK_KEY: value}, embedding_function=None
                )
                if (held.metadata or {}).get(MARK_KEY) != value:
                    held.modify(metadata={MARK_KEY: value})
            self._marks[collection] = held

        await _threaded(self._where, write)

    def _mark_collection(self, name: str) -> str:
        return f"{self._prefix}{MARK_PREFIX}{check_mark_name(name)}"  # never a space name: those start alphanumeric

    async def aclose(self) -> None:
        """Forget the collections; release the client and the embedded folder's lock, if this space opened them."""
        for index in self._collections.values():
            await index.aclose()
        self._collections.clear()
        self._marks.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.to_thread(connection.close)


def _named(name: str) -> bool:
    return COLLECTION_NAME.fullmatch(name) is not None


def _embedder(settings: HivegraphSettings) -> tuple[Embedder, str]:
    """The configured embedder and its `EMBEDDERS` name."""
    backend = settings.embedder.backend
    return EMBEDDERS.load(backend).from_settings(settings), backend


def _connect(settings: HivegraphSettings) -> ChromaConnection:
    """Open the client `vector_store.chroma` describes: a server's, or the embedded folder's (locked)."""
    chroma = settings.vector_store.chroma
    if chroma.mode == "http":
        return ChromaConnection.http(chroma.host, chroma.port, timeout_s=chroma.timeout_s)
    return ChromaConnection.embedded(settings.resolve(chroma.path, "chroma"))


async def _threaded(where: str, fn: Callable[..., R], *args: Any) -> R:
    """Run a chromadb call in a worker thread, translating its errors."""
    try:
        return await asyncio.to_thread(fn, *args)
    except CHROMA_ERRORS as exc:
        raise translate(exc, where) from exc


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
        case IndexNearestOp(vector=vector, k=k):
            return _nearest(collection, vector, k, where)


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
        Hit(id=id_, text=doc or "", metadata=_scalars(meta), score=_similarity(dist))
        for id_, doc, meta, dist in zip(ids, documents, metadatas, distances, strict=True)
    ]
    return sorted(hits, key=lambda hit: (-hit.score, hit.id))


def _nearest(collection: Collection, vector: Sequence[float], k: int, where: ChromaWhere) -> list[tuple[str, float]]:
    if k < 1 or where.impossible:
        return []
    options: dict[str, Any] = {} if where.clause is None else {"where": where.clause}
    result = collection.query(query_embeddings=[list(vector)], n_results=k, include=["distances"], **options)
    distances = (result["distances"] or [[]])[0]
    found = [(id_, _similarity(dist)) for id_, dist in zip(result["ids"][0], distances, strict=True)]
    return sorted(found, key=lambda pair: (-pair[1], pair[0]))


def _similarity(distance: float) -> float:
    """The cosine similarity of a cosine distance, clamped to [-1, 1]."""
    return min(1.0, max(-1.0, 1.0 - float(distance)))


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
