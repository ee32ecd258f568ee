"""The `VectorIndex` interface: one abstract `abatch`, concrete wrappers over it.

An index holds items (id, text, flat metadata) and finds the nearest ones to a
query text under a metadata filter. Embedding is the index's job, done with
the `Embedder` it was built with.

Filters are a mapping of metadata key to a condition, all of which must hold:
a scalar means equality; `{"$ne": v}`, `{"$in": [..]}`, `{"$gte": v}`,
`{"$lte": v}` (several operators in one mapping are ANDed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from hivegraph.memory.types import Scalar

Condition = Scalar | Mapping[str, Scalar | Sequence[Scalar]]
Filter = Mapping[str, Condition]
FILTER_OPERATORS = frozenset({"$ne", "$in", "$gte", "$lte"})


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


IndexOp = IndexUpsertOp | IndexDeleteOp | IndexGetOp | IndexQueryOp
IndexResult = list[Hit] | list[IndexItem] | None


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

    async def count(self, *, where: Filter | None = None) -> int:
        """How many items the index holds (those matching `where`, when given)."""
        return len(await self.get(where=where))

    async def drop(self) -> None:
        """Remove every item; an index that can re-creates its storage from nothing."""
        await self.delete([item.id for item in await self.get()])

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the index's resources."""


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
