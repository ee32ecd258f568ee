"""`InMemoryVectorIndex`: the reference `VectorIndex`, exact and in-process.

It defines correct behaviour for every other backend (see
`hivegraph.memory.conformance`): exact cosine search over every item, the
filter semantics of `hivegraph.memory.stores.base.matches`, and ties broken by
id so that results are deterministic. `InMemorySpace` is the reference
`VectorSpace` (`hivegraph.memory.space_conformance`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Self

import numpy as np
import numpy.typing as npt

from hivegraph.config import HivegraphSettings
from hivegraph.memory.stores.base import (
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
    matches,
)
from hivegraph.models.embedder import Embedder
from hivegraph.registry import EMBEDDERS

Vector = npt.NDArray[np.float64]


class InMemoryVectorIndex(VectorIndex):
    """Items and their vectors in a dict; nothing survives the process."""

    persistent = False

    def __init__(self, embedder: Embedder, *, queries: QueryCache | None = None) -> None:
        """Hold items embedded by `embedder`; `queries` is a query cache to share (a new one when None)."""
        self._embedder = embedder
        self._queries = queries if queries is not None else QueryCache(embedder)
        self._items: dict[str, IndexItem] = {}
        self._vectors: dict[str, Vector] = {}
        self._used = False

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """Build an empty index with the configured embedder (`embedder.backend`)."""
        embedder = EMBEDDERS.load(settings.embedder.backend).from_settings(settings)
        return cls(embedder)

    @property
    def embedder(self) -> Embedder:
        """The embedder that turns texts into vectors."""
        return self._embedder

    @property
    def used(self) -> bool:
        """Whether an operation has run since the index was made or last dropped (a space lists it then)."""
        return self._used

    def embed_query(self, text: str) -> list[float]:
        """The query vector of `text`, from the query cache."""
        return self._queries(text)

    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        """Run `ops` in order and return one result per op (None for writes).

        Raises:
            ValueError: a filter uses an unknown operator, or a vector has the wrong length.

        """
        if ops:
            self._used = True
        return [await self._run(op) for op in ops]

    async def vectors(self, *, limit: int) -> tuple[list[str], npt.NDArray[np.float32]]:
        """The ids and vectors of at most `limit` items, in id order."""
        ids = sorted(self._vectors)[: max(limit, 0)]
        rows = [self._vectors[i] for i in ids]
        return ids, np.asarray(rows, dtype=np.float32).reshape(len(ids), self._embedder.dim)

    async def drop(self) -> None:
        """Remove every item."""
        self._items.clear()
        self._vectors.clear()
        self._used = False

    async def _run(self, op: IndexOp) -> IndexResult:
        match op:
            case IndexUpsertOp(items=items):
                await self._upsert(items)
                return None
            case IndexDeleteOp(ids=ids):
                for item_id in ids:
                    self._items.pop(item_id, None)
                    self._vectors.pop(item_id, None)
                return None
            case IndexGetOp(ids=ids, where=where):
                return self._get(ids, where)
            case IndexQueryOp(text=text, k=k, where=where):
                return await self._query(text, k, where)
            case IndexNearestOp(vector=vector, k=k, where=where):
                return self._nearest(vector, k, where)

    async def _upsert(self, items: Sequence[IndexItem]) -> None:
        if not items:
            return
        vectors = await self._embed([item.text for item in items])
        for item, vector in zip(items, vectors, strict=True):
            self._items[item.id] = IndexItem(item.id, item.text, dict(item.metadata))
            self._vectors[item.id] = vector

    def _get(self, ids: Sequence[str] | None, where: Filter | None) -> list[IndexItem]:
        if ids is None:
            found = [self._items[item_id] for item_id in sorted(self._items)]
        else:
            found = [self._items[item_id] for item_id in ids if item_id in self._items]
        return [_copy(item) for item in found if matches(item.metadata, where)]

    async def _query(self, text: str, k: int, where: Filter | None) -> list[Hit]:
        if k < 1 or not any(matches(item.metadata, where) for item in self._items.values()):
            return []
        query = await asyncio.to_thread(self.embed_query, text)
        return [_hit(self._items[id_], score) for id_, score in self._nearest(query, k, where)]

    def _nearest(self, vector: Sequence[float], k: int, where: Filter | None) -> list[tuple[str, float]]:
        query = _unit(np.asarray(vector, dtype=np.float64))
        if query.shape != (self._embedder.dim,):
            raise ValueError(f"a query vector of {len(vector)} numbers; this index holds {self._embedder.dim}")
        candidates = [item.id for item in self._items.values() if matches(item.metadata, where)]
        if k < 1 or not candidates:
            return []
        scores = np.clip(np.stack([self._vectors[id_] for id_ in candidates]) @ query, -1.0, 1.0)
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i]))[:k]
        return [(candidates[i], float(scores[i])) for i in order]

    async def _embed(self, texts: list[str]) -> list[Vector]:
        raw = await asyncio.to_thread(self._embedder.embed, texts)
        return [_unit(np.asarray(vector, dtype=np.float64)) for vector in raw]


class InMemorySpace(VectorSpace):
    """In-memory collections sharing one embedder and one query cache; nothing survives the process."""

    persistent = False

    def __init__(self, embedder: Embedder) -> None:
        """An empty space whose collections embed with `embedder`."""
        self._queries = QueryCache(embedder)
        self._collections: dict[str, InMemoryVectorIndex] = {}
        self._marks: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """Build an empty space with the configured embedder (`embedder.backend`)."""
        return cls(EMBEDDERS.load(settings.embedder.backend).from_settings(settings))

    @property
    def embedder(self) -> Embedder:
        """The embedder of every collection."""
        return self._queries.embedder

    def collection(self, name: str) -> InMemoryVectorIndex:
        """The collection `name` (made empty on first call).

        Raises:
            ValueError: `name` is not a valid collection name.

        """
        found = self._collections.get(name)
        if found is None:
            found = InMemoryVectorIndex(self.embedder, queries=self._queries)
            self._collections[check_collection_name(name)] = found
        return found

    async def names(self) -> list[str]:
        """The collections used since they were made or last dropped, sorted."""
        return sorted(name for name, index in self._collections.items() if index.used)

    async def drop(self, name: str) -> None:
        """Empty collection `name`; it is no longer listed until used again.

        Raises:
            ValueError: `name` is not a valid collection name.

        """
        found = self._collections.get(check_collection_name(name))
        if found is not None:
            await found.drop()

    def embed_query(self, text: str) -> list[float]:
        """The query vector of `text`, from the space's query cache."""
        return self._queries(text)

    async def mark(self, name: str) -> int | None:
        """The value last kept under `name` (None if none)."""
        return self._marks.get(check_mark_name(name))

    async def set_mark(self, name: str, value: int | None) -> None:
        """Keep `value` under `name` (None forgets it).

        Raises:
            ValueError: `name` is not a valid mark name.

        """
        if value is None:
            self._marks.pop(check_mark_name(name), None)
        else:
            self._marks[check_mark_name(name)] = value


def _unit(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0.0 else vector


def _copy(item: IndexItem) -> IndexItem:
    return IndexItem(item.id, item.text, dict(item.metadata))


def _hit(item: IndexItem, score: float) -> Hit:
    return Hit(id=item.id, text=item.text, metadata=dict(item.metadata), score=score)
