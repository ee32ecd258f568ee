"""`InMemoryVectorIndex`: the reference `VectorIndex`, exact and in-process.

It defines correct behaviour for every other backend (see
`hivegraph.memory.conformance`): exact cosine search over every item, the
filter semantics of `hivegraph.memory.stores.base.matches`, and ties broken by
id so that results are deterministic.
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
    IndexOp,
    IndexQueryOp,
    IndexResult,
    IndexUpsertOp,
    VectorIndex,
    matches,
)
from hivegraph.models.embedder import Embedder
from hivegraph.registry import EMBEDDERS

Vector = npt.NDArray[np.float64]


class InMemoryVectorIndex(VectorIndex):
    """Items and their vectors in a dict; nothing survives the process."""

    persistent = False

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._items: dict[str, IndexItem] = {}
        self._vectors: dict[str, Vector] = {}

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> Self:
        """Build an empty index with the configured embedder (`embedder.backend`)."""
        embedder = EMBEDDERS.load(settings.embedder.backend).from_settings(settings)
        return cls(embedder)

    @property
    def embedder(self) -> Embedder:
        """The embedder that turns texts into vectors."""
        return self._embedder

    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        """Run `ops` in order and return one result per op (None for writes)."""
        return [await self._run(op) for op in ops]

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
        candidates = [item for item in self._items.values() if matches(item.metadata, where)]
        if k < 1 or not candidates:
            return []
        (query,) = await self._embed([text])
        matrix = np.stack([self._vectors[item.id] for item in candidates])
        scores = np.clip(matrix @ query, -1.0, 1.0)
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i].id))[:k]
        return [_hit(candidates[i], float(scores[i])) for i in order]

    async def _embed(self, texts: list[str]) -> list[Vector]:
        raw = await asyncio.to_thread(self._embedder.embed, texts)
        return [_unit(np.asarray(vector, dtype=np.float64)) for vector in raw]


def _unit(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0.0 else vector


def _copy(item: IndexItem) -> IndexItem:
    return IndexItem(item.id, item.text, dict(item.metadata))


def _hit(item: IndexItem, score: float) -> Hit:
    return Hit(id=item.id, text=item.text, metadata=dict(item.metadata), score=score)
