"""`ExactVectors`: small collections searched exactly, in this process, from a copy of their vectors.

A tenant's live collection usually holds a few hundred vectors. An exact
top-k over 400 vectors of 384 dimensions takes 0.04 ms with numpy, where a
Chroma query of the same collection costs 1.5 ms inside Chroma and about
3.5 ms from Python (client, worker thread, result conversion; measured
embedded, `benchmarks/read_path.py`). So a search without a metadata filter
in a collection of at most `max_items` vectors is answered from a copy of its
vectors, loaded once with `VectorIndex.vectors`; bigger collections, filtered
searches and backends that cannot list vectors go to the index as before.

The copy is only as good as its invalidation: the owner (`VectorProjection`)
forgets a collection whenever it writes to it, and forgets everything when
the journal shows that another process has projected entries. A load that
overlaps a forget is used for the search that asked for it but not kept.
The copies are bounded by `max_vectors` in all, the least recently searched
dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hivegraph.memory.stores.base import VectorIndex

EXACT_MAX_ITEMS = 2048
"""The largest collection searched exactly (at 384 dimensions, 3 MB of float32)."""
EXACT_MAX_VECTORS = 131_072
"""Vectors held in all (at 384 dimensions, 192 MB of float32)."""


@dataclass(frozen=True)
class _Copy:
    ids: list[str]
    unit: NDArray[np.float32] | None
    """Unit rows, or None for a collection too big (or not listable) to search here."""

    @property
    def size(self) -> int:
        return 0 if self.unit is None else len(self.ids)


class ExactVectors:
    """Copies of small collections' vectors, searched exactly; an LRU bounded in vectors."""

    def __init__(self, *, max_items: int = EXACT_MAX_ITEMS, max_vectors: int = EXACT_MAX_VECTORS) -> None:
        """Search collections of at most `max_items` vectors here (0: none), holding at most `max_vectors`.

        Raises:
            ValueError: a bound is negative.

        """
        if max_items < 0 or max_vectors < 0:
            raise ValueError(f"max_items and max_vectors must be >= 0, got {max_items} and {max_vectors}")
        self.max_items = min(max_items, max_vectors)
        self.max_vectors = max_vectors
        self._copies: OrderedDict[str, _Copy] = OrderedDict()
        self._held = 0
        self._generation = 0
        """Bumped by every forget: a load that started before one is not kept."""

    @property
    def held(self) -> int:
        """Vectors held now."""
        return self._held

    async def nearest(
        self, name: str, index: VectorIndex, vector: Sequence[float], *, k: int
    ) -> list[tuple[str, float]] | None:
        """The `k` nearest items of collection `name` (held by `index`), as `VectorIndex.nearest` gives them.

        None when the collection is not searched here (too big, or its index cannot list vectors).

        Raises:
            ValueError: `vector` does not have the collection's dimension.

        """
        if self.max_items == 0:
            return None
        copy = self._copies.get(name)
        if copy is None:
            copy = await self._load(name, index)
        else:
            self._copies.move_to_end(name)
        if copy.unit is None:
            return None
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (copy.unit.shape[1],):
            raise ValueError(f"a query vector of {len(vector)} numbers; this index holds {copy.unit.shape[1]}")
        if k < 1 or not copy.ids:
            return []
        norm = float(np.linalg.norm(query))
        scores = np.clip(copy.unit @ (query / norm if norm else query), -1.0, 1.0)
        if k < len(copy.ids):  # the k best, and every item tied with the k-th (ties go by id)
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            top = np.flatnonzero(scores >= kth)
        else:
            top = np.arange(len(copy.ids))
        found = [(copy.ids[int(i)], float(scores[i])) for i in top]
        return sorted(found, key=lambda pair: (-pair[1], pair[0]))[:k]

    def forget(self, names: Iterable[str]) -> None:
        """Drop the copies of `names` (their collections were written to)."""
        self._generation += 1
        for name in names:
            self._drop(name)

    def clear(self) -> None:
        """Drop every copy (another process may have written to any collection)."""
        self._generation += 1
        self._copies.clear()
        self._held = 0

    async def _load(self, name: str, index: VectorIndex) -> _Copy:
        generation = self._generation
        loaded = await index.vectors(limit=self.max_items + 1)
        if loaded is None or len(loaded[0]) > self.max_items:
            copy = _Copy([], None)
        else:
            ids, rows = loaded
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            copy = _Copy(ids, (rows / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False))
        if generation == self._generation:
            self._keep(name, copy)
        return copy

    def _keep(self, name: str, copy: _Copy) -> None:
        self._drop(name)
        self._copies[name] = copy
        self._held += copy.size
        while self._held > self.max_vectors and self._copies:
            _, dropped = self._copies.popitem(last=False)
            self._held -= dropped.size

    def _drop(self, name: str) -> None:
        copy = self._copies.pop(name, None)
        if copy is not None:
            self._held -= copy.size
