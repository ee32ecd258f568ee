"""The `VectorIndex` and `VectorSpace` interfaces.

An index holds items (id, text, flat metadata) and finds the nearest ones to a
query text, or to a query vector, under a metadata filter. Embedding is the
index's job, done with the `Embedder` it was built with; query vectors are kept
in an LRU (`QueryCache`), so a repeated query is embedded once. Its one abstract
primitive is `abatch`; `upsert`, `get`, `query`, `nearest` are wrappers.

A space is a set of named indexes (collections) of one backend and one
embedder, sharing one client and one query cache.

Filters are a mapping of metadata key to a condition, all of which must hold:
a scalar means equality; `{"$ne": v}`, `{"$in": [..]}`, `{"$gte": v}`,
`{"$lte": v}` (several operators in one mapping are ANDed).
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from hivegraph.memory.types import Scalar
from hivegraph.models.embedder import Embedder

Condition = Scalar | Mapping[str, Scalar | Sequence[Scalar]]
Filter = Mapping[str, Condition]
FILTER_OPERATORS = frozenset({"$ne", "$in", "$gte", "$lte"})
QUERY_CACHE_SIZE = 1024
"""Query vectors an index or a space keeps for reuse."""
COLLECTION_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")
"""A collection name in a space: 1-63 of `[a-z0-9_-]`, starting and ending with a letter or digit."""


@dataclass(frozen=True)
class IndexItem:
    """One entry of the index."""

    id: str
    text: str
    metadata: Mapping[str, Scalar] = field(default_factory=dict[str, Scalar])


@dataclass(frozen=True)
class Hit:
    """A query result; `score` is a similarity, higher is closer (cosine in [-1, 1])."""

    id: str
    text: str
    metadata: Mapping[str, Scalar]
    score: float


@dataclass(frozen=True)
class IndexUpsertOp:
    """Insert or replace items (same id: replaced)."""

    items: Sequence[IndexItem]


@dataclass(frozen=True)
class IndexDeleteOp:
    """Remove items by id; unknown ids are ignored."""

    ids: Sequence[str]


@dataclass(frozen=True)
class IndexGetOp:
    """Fetch items by id, or every item matching `where` when `ids` is None."""

    ids: Sequence[str] | None = None
    where: Filter | None = None


@dataclass(frozen=True)
class IndexQueryOp:
    """The `k` items nearest to `text` among those matching `where`."""

    text: str
    k: int = 10
    where: Filter | None = None


@dataclass(frozen=True)
class IndexNearestOp:
    """The ids and cosine similarities of the `k` items nearest to `vector` among those matching `where`."""

    vector: Sequence[float]
    k: int = 10
    where: Filter | None = None


IndexOp = IndexUpsertOp | IndexDeleteOp | IndexGetOp | IndexQueryOp | IndexNearestOp
IndexResult = list[Hit] | list[IndexItem] | list[tuple[str, float]] | None


class QueryCache:
    """The vectors of the `size` most recent query texts of one embedder (an LRU); thread-safe."""

    def __init__(self, embedder: Embedder, *, size: int = QUERY_CACHE_SIZE) -> None:
        self.embedder = embedder
        self._size = size
        self._vectors: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> list[float]:
        """The vector of `text` (a new list), embedded only if it is not cached."""
        with self._lock:
            cached = self._vectors.get(text)
            if cached is not None:
                self._vectors.move_to_end(text)
                return list(cached)
        vector = tuple(map(float, self.embedder.embed([text])[0]))
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
        return list(vector)


class VectorIndex(ABC):
    """A vector index over memory items."""

    persistent: ClassVar[bool] = False
    """Whether items survive a new process opening the same location."""

    @abstractmethod
    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        """Run `ops` in order and return one result per op (None for writes)."""

    async def upsert(self, items: Sequence[IndexItem]) -> None:
        """Insert or replace `items`."""
        if items:
            await self.abatch([IndexUpsertOp(items)])

    async def delete(self, ids: Sequence[str]) -> None:
        """Remove the items with these ids."""
        if ids:
            await self.abatch([IndexDeleteOp(ids)])

    async def get(self, ids: Sequence[str] | None = None, *, where: Filter | None = None) -> list[IndexItem]:
        """Items by id (in the order asked, missing ones left out) or by filter."""
        (result,) = await self.abatch([IndexGetOp(ids, where)])
        return result  # pyright: ignore[reportReturnType]

    async def query(self, text: str, *, k: int = 10, where: Filter | None = None) -> list[Hit]:
        """The `k` nearest items to `text`, closest first."""
        (result,) = await self.abatch([IndexQueryOp(text, k, where)])
        return result  # pyright: ignore[reportReturnType]

    async def nearest(
        self, vector: Sequence[float], *, k: int = 10, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """The ids and cosine similarities of the `k` nearest items to `vector`, best first, ties by id."""
        (result,) = await self.abatch([IndexNearestOp(vector, k, where)])
        return result  # pyright: ignore[reportReturnType]

    @abstractmethod
    def embed_query(self, text: str) -> list[float]:
        """The query vector of `text` by the index's embedder, from its `QueryCache`."""

    async def vectors(self, *, limit: int) -> tuple[list[str], NDArray[np.float32]] | None:
        """The ids and stored vectors (one row each) of at most `limit` items, or None if the index cannot list them.

        An index holding more than `limit` items returns `limit` of them, any; ask for one more than you can
        use to learn whether there are more.
        """
        return None

    async def count(self, *, where: Filter | None = None) -> int:
        """How many items the index holds (those matching `where`, when given)."""
        return len(await self.get(where=where))

    async def drop(self) -> None:
        """Remove every item; an index that can re-creates its storage from nothing."""
        await self.delete([item.id for item in await self.get()])

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the index's resources."""


class VectorSpace(ABC):
    """Named collections of one backend and one embedder, sharing one client and one query cache."""

    persistent: ClassVar[bool] = False
    """Whether collections survive a new process opening the same location."""

    @property
    @abstractmethod
    def embedder(self) -> Embedder:
        """The embedder of every collection of the space."""

    @abstractmethod
    def collection(self, name: str) -> VectorIndex:
        """The handle of collection `name` (the same object each time), created on first use.

        Raises:
            ValueError: `name` is not a valid collection name (see `check_collection_name`).

        """

    @abstractmethod
    async def names(self) -> list[str]:
        """The names of the collections that exist now, sorted."""

    @abstractmethod
    async def drop(self, name: str) -> None:
        """Delete collection `name` and its items (no-op if it does not exist); its handle stays usable."""

    @abstractmethod
    def embed_query(self, text: str) -> list[float]:
        """The query vector of `text`, from the cache that all collections of the space share."""

    @abstractmethod
    async def mark(self, name: str) -> int | None:
        """The number last kept under `name` by `set_mark` (None if none), read without loading any collection."""

    @abstractmethod
    async def set_mark(self, name: str, value: int | None) -> None:
        """Keep `value` under `name` with the collections (None forgets it), so that it travels with them.

        A mark says how far the collections have got (a projection's journal
        sequence): copied, restored or wiped with them, it tells a reader what
        they hold without reading them. `name` follows the rule of collection names.

        Raises:
            ValueError: `name` is not a valid mark name.

        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the space's client (and an embedded folder's lock) if it opened them."""


def check_collection_name(name: str) -> str:
    """Return `name` if it is a valid collection name: 1-63 of `[a-z0-9_-]`, alphanumeric at both ends.

    Raises:
        ValueError: it is not.

    """
    return _checked(name, "collection")


def check_mark_name(name: str) -> str:
    """Return `name` if it is a valid mark name (the rule of collection names).

    Raises:
        ValueError: it is not.

    """
    return _checked(name, "mark")


def _checked(name: str, what: str) -> str:
    if not COLLECTION_NAME.fullmatch(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use 1-63 of [a-z0-9_-], starting and ending with a letter or digit"
        )
    return name


def matches(metadata: Mapping[str, Scalar], where: Filter | None) -> bool:
    """Whether `metadata` satisfies the filter (the reference semantics)."""
    if not where:
        return True
    return all(_holds(metadata.get(key), cond) for key, cond in where.items())


def _holds(value: Scalar | None, cond: Condition) -> bool:
    if not isinstance(cond, Mapping):
        return value == cond
    for op, arg in cond.items():
        if op == "$ne":
            ok = value != arg
        elif op == "$in":
            ok = value in arg  # type: ignore[operator]
        elif value is None or (isinstance(arg, Sequence) and not isinstance(arg, str)):
            ok = False
        elif op == "$gte":
            ok = value >= arg  # type: ignore[operator]
        elif op == "$lte":
            ok = value <= arg  # type: ignore[operator]
        else:
            raise ValueError(f"unknown filter operator {op!r}; allowed: {sorted(FILTER_OPERATORS)}")
        if not ok:
            return False
    return True
