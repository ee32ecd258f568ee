"""Retrieval sources: where the retriever gathers candidates (vector and keyword now, graph next).

A source takes one `SearchQuery` (text, scope, kinds, event-time range, and the
query vector, embedded at most once per search however many sources ask for
it) and returns its best `MemoryHit`s, best first, carrying only version ids
and its own scores; the retriever loads the records. A source never returns a
version outside the query's scope, of another kind or outside the time range,
and never a closed version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, get_args, runtime_checkable

from hivegraph.memory.codec import META_PREFIX
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal import Journal
from hivegraph.memory.stores.base import Filter
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import MemoryKind, Scope
from hivegraph.memory.vector_projection import VectorProjection

VECTOR = "vector"
KEYWORD = "keyword"
ALL_KINDS: tuple[MemoryKind, ...] = get_args(MemoryKind)
TIME_KEY = META_PREFIX + "occurred_at"
"""Index metadata key of the event time (POSIX seconds) that time ranges filter on."""


@dataclass
class SearchQuery:
    """One search, as every source sees it."""

    text: str
    scope: Scope
    kinds: tuple[MemoryKind, ...] | None = None
    since_us: int | None = None
    """Only versions whose event time is at or after this (microseconds since the epoch)."""
    until_us: int | None = None
    """Only versions whose event time is at or before this."""
    embed: Callable[[str], Sequence[float]] | None = None
    """Embeds the text (the vector source calls `vector`, which calls this once)."""
    _vector: Sequence[float] | None = field(default=None, repr=False)

    def vector(self) -> Sequence[float]:
        """The query vector, embedded on first use and kept for the other sources.

        Raises:
            ValueError: the query was built without an embedder.

        """
        if self._vector is None:
            if self.embed is None:
                raise ValueError("this query has no embedder; build it with embed=...")
            self._vector = self.embed(self.text)
        return self._vector

    def terms(self) -> list[str]:
        """The keyword index terms of the text."""
        return tokenize(self.text)


@runtime_checkable
class RetrievalSource(Protocol):
    """Something that finds candidate versions for a query."""

    name: str
    projected: bool
    """Whether the source reads a projection of the journal (caught up before it is searched), not the journal."""

    async def search(self, query: SearchQuery, *, k: int) -> list[MemoryHit]:
        """The `k` best current versions for `query` inside its scope, best first (records not loaded)."""
        ...


@runtime_checkable
class SeededSource(Protocol):
    """A source that can start from another source's best hits (the graph walk starts from vector hits)."""

    def seed_from(self, source: RetrievalSource) -> None:
        """Use `source`'s hits as seeds, as far as the source's settings ask for."""
        ...


class KeywordSource:
    """Full-text search in the journal's own database (FTS5, PostgreSQL full-text, or the reference BM25)."""

    name = KEYWORD
    projected = False

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def search(self, query: SearchQuery, *, k: int) -> list[MemoryHit]:
        """The journal's keyword matches for the query's terms, best first."""
        found = await self.journal.keyword_search(
            query.terms(), scope=query.scope, kinds=query.kinds, since_us=query.since_us, until_us=query.until_us, k=k
        )
        return [MemoryHit(id=version_id, score=score) for version_id, score in found]


class VectorSource:
    """Nearest neighbours of the query vector in the live collections the scope needs."""

    name = VECTOR
    projected = True

    def __init__(
        self, projection: VectorProjection, kinds: Callable[[Scope, Sequence[MemoryKind] | None], Awaitable[list[str]]]
    ) -> None:
        """Search `projection`; `kinds` says which kinds a scope holds (so collections with none are not asked)."""
        self.projection = projection
        self.kinds = kinds

    async def search(self, query: SearchQuery, *, k: int) -> list[MemoryHit]:
        """Ids and similarities only, filtered on what the collection does not already imply."""
        if k < 1:
            return []
        held = await self.kinds(query.scope, query.kinds)
        if not held:
            return []
        best = await self.projection.nearest(query.scope, held, query.vector(), k=k, where=_time_where(query))
        return [MemoryHit(id=version_id, score=score) for version_id, score in best]


def _time_where(query: SearchQuery) -> Filter | None:
    time: dict[str, float] = {}
    if query.since_us is not None:
        time["$gte"] = query.since_us / 1_000_000
    if query.until_us is not None:
        time["$lte"] = query.until_us / 1_000_000
    return {TIME_KEY: time} if time else None
