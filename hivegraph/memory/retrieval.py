"""Hybrid retrieval: vector and keyword search, fused, expanded to neighbours, packed into a token budget.

`HybridRetriever.retrieve` asks both sources for their best candidates inside
the scope (and kinds and event-time range) asked for, then:

1. **Neighbour expansion.** A hit that is a turn of a session (metadata
   `session_id` and `turn`) passes a share of its score to the turns next to
   it: `after_share` to the turn after it (often the answer to a question),
   `before_share` to the turn before it (often the question it answers). Each
   candidate's score in a source becomes its own score plus those shares, and
   the neighbours join the candidates. A neighbour the source did not return
   counts with the lowest score of a full candidate list (0 when the list was
   not cut). Neighbours are looked up in the keyword index with the same
   filter, so they never leave the scope, kinds or time range.
2. **Reciprocal-rank fusion.** Each source ranks its candidates; a candidate
   scores `sum(weight / (rrf_k + rank))` over the sources that hold it.
3. **Boosts.** Optional `Boost`s multiply the fused score of the candidates
   whose metadata match a filter (for example the speaker a question names).
4. **Packing.** Candidates are taken best first while they fit the token
   budget (tiktoken, `TokenCounter`) and until `k` blocks are taken; ties are
   broken by version id, so the same inputs always give the same blocks in
   the same order.

No model is called here; the vector index embeds the query with its embedder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from hivegraph.errors import ConfigError
from hivegraph.memory.codec import META_PREFIX, from_item, scope_filter
from hivegraph.memory.keyword import KeywordIndex
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import Filter, Hit, IndexItem, matches
from hivegraph.memory.types import MemoryKind, MemoryRecord, Scalar, Scope
from hivegraph.memory.validation import aware
from hivegraph.models.tokens import TokenCounter, pack

KEYWORD = "keyword"
VECTOR = "vector"


@dataclass(frozen=True)
class Boost:
    """Multiply the fused score of the candidates whose metadata match `where` by `factor`."""

    where: Filter
    factor: float


@dataclass(frozen=True)
class RetrievalSettings:
    """How candidates are gathered, fused and expanded."""

    candidates: int = 50
    """Candidates asked of each source."""
    rrf_k: int = 10
    """The reciprocal-rank constant; smaller values favour the top of each list more."""
    keyword_weight: float = 1.0
    vector_weight: float = 1.0
    after_share: float = 0.5
    """Share of a hit's score passed to the turn after it."""
    before_share: float = 0.3
    """Share of a hit's score passed to the turn before it."""
    block_overhead: int = 0
    """Tokens each block costs beyond its text (separators, citation marks)."""
    time_key: str = META_PREFIX + "occurred_at"
    """Index metadata key of the event time (a POSIX timestamp) that `since` and `until` filter on."""
    session_key: str = META_PREFIX + "session_id"
    turn_key: str = META_PREFIX + "turn"


@dataclass(frozen=True)
class Block:
    """One retrieved record version, ready to put in a prompt and to cite."""

    record: MemoryRecord
    score: float
    """Fused score (higher is better)."""
    ranks: Mapping[str, int]
    """1-based rank in each source that returned it (after neighbour expansion)."""
    tokens: int
    """Tokens of its text (plus the block overhead)."""
    neighbour: bool = False
    """True when no source found it directly: it came in as a hit's neighbour."""

    @property
    def record_id(self) -> UUID:
        """The record's id (stable across versions)."""
        return self.record.id

    @property
    def kind(self) -> MemoryKind:
        """The record's kind."""
        return self.record.kind

    @property
    def text(self) -> str:
        """The record's text."""
        return self.record.text


@dataclass(frozen=True)
class Retrieval:
    """What a retrieval found and fitted, best first."""

    blocks: list[Block]
    tokens: int
    """Tokens the blocks use, overhead included."""
    candidates: int = 0
    """How many candidates were ranked before packing."""


@dataclass
class _Source:
    """One source's candidates: their scores (after expansion) and ranks."""

    scores: dict[str, float]
    floor: float
    """Score assumed for an item the source did not return."""
    direct: frozenset[str]
    """Items the source returned itself."""
    ranks: dict[str, int] = field(default_factory=dict[str, int])


def _source(hits: Sequence[Hit], asked: int) -> _Source:
    scores = {hit.id: hit.score for hit in hits}
    floor = min(scores.values()) if scores and len(hits) >= asked else 0.0
    return _Source(scores=scores, floor=floor, direct=frozenset(scores))


class _Expander:
    """Passes a share of each hit's score to the adjacent turns of its session."""

    def __init__(
        self, keyword: KeywordIndex, settings: RetrievalSettings, where: Filter, items: dict[str, IndexItem]
    ) -> None:
        self.keyword = keyword
        self.settings = settings
        self.where = where
        self.items = items
        self._sessions: dict[Scalar, dict[int, str]] = {}

    def expand(self, sources: Iterable[_Source]) -> None:
        """Replace each source's scores with the expanded ones (neighbours included)."""
        after, before = self.settings.after_share, self.settings.before_share
        for source in sources:
            scores = source.scores
            keys = set(scores) | {n for i in scores for n in self.neighbours(i) if n is not None}

            def score(item_id: str | None, scores: dict[str, float] = scores, floor: float = source.floor) -> float:
                return 0.0 if item_id is None else scores.get(item_id, floor)

            expanded: dict[str, float] = {}
            for item_id in keys:
                previous, following = self.neighbours(item_id)
                expanded[item_id] = score(item_id) + after * score(previous) + before * score(following)
            source.scores = expanded

    def neighbours(self, item_id: str) -> tuple[str | None, str | None]:
        """The ids of the turns before and after `item_id` in its session (None where there is none)."""
        metadata = self.items[item_id].metadata
        session, turn = metadata.get(self.settings.session_key), metadata.get(self.settings.turn_key)
        if session is None or not isinstance(turn, int) or isinstance(turn, bool):
            return None, None
        turns = self._session(session)
        return turns.get(turn - 1), turns.get(turn + 1)

    def _session(self, session: Scalar) -> dict[int, str]:
        if session not in self._sessions:
            members = self.keyword.members(self.settings.session_key, session, where=self.where)
            turns: dict[int, str] = {}
            for item in members:
                turn = item.metadata.get(self.settings.turn_key)
                if isinstance(turn, int) and not isinstance(turn, bool):
                    turns[turn] = item.id
                    self.items.setdefault(item.id, item)
            self._sessions[session] = turns
        return self._sessions[session]


class HybridRetriever:
    """Vector plus BM25 retrieval over a `MemoryStore`, fused and packed into a token budget."""

    def __init__(
        self,
        store: MemoryStore,
        keyword: KeywordIndex,
        *,
        settings: RetrievalSettings | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        """Search `store.index` and `keyword` (a projection of the same store).

        Args:
            store: The memory store whose vector index is searched.
            keyword: The keyword index kept in step with the store's journal.
            settings: Fusion and expansion settings.
            counter: Counts block tokens (default: the fallback encoding).

        Raises:
            ConfigError: `keyword` does not track the session key (needed for neighbour expansion).

        """
        settings = settings or RetrievalSettings()
        if settings.session_key not in keyword.facets:
            raise ConfigError(
                f"the keyword index must track {settings.session_key!r} (facets=...) for neighbour expansion",
                field="facets",
            )
        self.store = store
        self.keyword = keyword
        self.settings = settings
        self.counter = counter or TokenCounter()
        self._count = lru_cache(maxsize=65536)(self.counter.count)
        """Token counts by text (record texts never change, and are counted at every retrieval)."""

    async def retrieve(
        self,
        query: str,
        *,
        scope: Scope,
        k: int = 10,
        kinds: Sequence[MemoryKind] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        token_budget: int | None = None,
        expand_neighbours: bool = True,
        boosts: Sequence[Boost] = (),
    ) -> Retrieval:
        """The best current records in `scope` for `query`: at most `k` blocks within `token_budget` tokens.

        Args:
            query: The text to search for.
            scope: Only records inside this scope are read.
            k: Most blocks returned.
            kinds: Only these kinds (all when None).
            since: Only records whose event time is at or after this (timezone-aware).
            until: Only records whose event time is at or before this (timezone-aware).
            token_budget: Most tokens the blocks may use (no limit when None).
            expand_neighbours: Pass scores to the adjacent turns of session hits.
            boosts: Score multipliers for candidates matching a filter.

        Raises:
            InvalidInputError: `since` or `until` is naive.
            ValueError: `k` or `token_budget` is negative.

        """
        if k < 0 or (token_budget is not None and token_budget < 0):
            raise ValueError(f"k and token_budget must be >= 0, got {k} and {token_budget}")
        where = self.filter(scope, kinds=kinds, since=since, until=until)
        await self.store.catch_up()  # other writers' journaled ops (other processes too) are read
        size = self.settings.candidates
        vector_hits, keyword_hits = await asyncio.gather(
            self.store.index.query(query, k=size, where=where), self.keyword.query(query, k=size, where=where)
        )
        items = {hit.id: IndexItem(hit.id, hit.text, hit.metadata) for hit in (*vector_hits, *keyword_hits)}
        sources = {VECTOR: _source(vector_hits, size), KEYWORD: _source(keyword_hits, size)}
        if expand_neighbours:
            _Expander(self.keyword, self.settings, where, items).expand(sources.values())
        fused = self._fuse(sources, boosts, items)
        return self._pack(fused, sources, items, k=k, token_budget=token_budget)

    def filter(
        self,
        scope: Scope,
        *,
        kinds: Sequence[MemoryKind] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Filter:
        """The index filter for current records in `scope`, of `kinds`, with event time in [since, until].

        Raises:
            InvalidInputError: `since` or `until` is naive.

        """
        time: dict[str, float] = {}
        if since is not None:
            time["$gte"] = timestamp(since, "since")
        if until is not None:
            time["$lte"] = timestamp(until, "until")
        extra: dict[str, Any] = {self.settings.time_key: time} if time else {}
        return scope_filter(scope, kinds=tuple(kinds) if kinds else None, extra=extra)

    def _fuse(
        self, sources: Mapping[str, _Source], boosts: Sequence[Boost], items: Mapping[str, IndexItem]
    ) -> dict[str, float]:
        weights = {VECTOR: self.settings.vector_weight, KEYWORD: self.settings.keyword_weight}
        fused: dict[str, float] = {}
        for name, source in sources.items():
            ranked = sorted(source.scores.items(), key=lambda pair: (-pair[1], pair[0]))
            for rank, (item_id, _) in enumerate(ranked, start=1):
                source.ranks[item_id] = rank
                fused[item_id] = fused.get(item_id, 0.0) + weights[name] / (self.settings.rrf_k + rank)
        for boost in boosts:
            for item_id in fused:
                if matches(items[item_id].metadata, boost.where):
                    fused[item_id] *= boost.factor
        return fused

    def _pack(
        self,
        fused: Mapping[str, float],
        sources: Mapping[str, _Source],
        items: Mapping[str, IndexItem],
        *,
        k: int,
        token_budget: int | None,
    ) -> Retrieval:
        ranked = sorted(fused, key=lambda item_id: (-fused[item_id], item_id))
        overhead = self.settings.block_overhead
        tokens: dict[str, int] = {}

        def count(item_id: str) -> int:
            if item_id not in tokens:
                tokens[item_id] = self._count(items[item_id].text) + overhead
            return tokens[item_id]

        chosen = ranked if token_budget is None else pack(ranked, token_budget, count=count).items
        blocks = [self._block(item_id, fused[item_id], count(item_id), sources, items) for item_id in chosen[:k]]
        return Retrieval(blocks=blocks, tokens=sum(b.tokens for b in blocks), candidates=len(ranked))

    @staticmethod
    def _block(
        item_id: str, score: float, tokens: int, sources: Mapping[str, _Source], items: Mapping[str, IndexItem]
    ) -> Block:
        ranks = {name: source.ranks[item_id] for name, source in sources.items() if item_id in source.ranks}
        direct = any(item_id in source.direct for source in sources.values())
        return Block(record=from_item(items[item_id]), score=score, ranks=ranks, tokens=tokens, neighbour=not direct)


def timestamp(moment: datetime, field: str = "datetime") -> float:
    """The POSIX timestamp of a timezone-aware datetime.

    Raises:
        InvalidInputError: `moment` is naive (refused everywhere, never guessed).

    """
    return aware(moment, field).timestamp()
