"""The retriever: every source searched, the candidates loaded once, fused, expanded and packed.

`Retriever.retrieve` sends one `SearchQuery` to each `RetrievalSource` (the
query embedded once, whatever the number of sources), then:

1. **Loading.** The records of all candidates come from the journal in one
   indexed read (`Journal.versions`), with the token counts stored when each
   version was written. A candidate that is no longer current (closed since
   the index was read) or lies outside the scope is dropped.
2. **Neighbour expansion** (off by default; `after_share`/`before_share`). A
   hit that is a turn of a session (metadata `session_id` and `turn`) passes a
   share of its score to the turn after it (often the answer to a question)
   and the turn before it (often the question it answers), found in one
   indexed read (`Journal.turns`, same scope, session and filters). A
   neighbour the source did not return counts with the lowest score of a full
   candidate list (0 when the list was not cut).
3. **Reciprocal-rank fusion.** Each source ranks its candidates; a candidate
   scores `sum(weight / (rrf_k + rank))` over the sources that hold it.
4. **Boosts.** Optional `Boost`s multiply the fused score of the candidates
   whose record metadata match a filter (episodic memory makes them from a
   query that names a speaker or a month, when its settings ask for it).
   Then, with `session_lift` (off by default), each session turn's score is
   multiplied by `1 + session_lift * s / s_max`: `s` is the strength of its
   session (the sum of the best `SESSION_TOP` scores among the session's
   candidates) and `s_max` the strongest session's, so turns of the sessions
   the query is about rise together.
5. **Packing.** Candidates are taken best first while they fit the token
   budget and until `k` hits are taken; ties are broken by version id, so the
   same inputs always give the same hits in the same order.

No model is called here.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import islice

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.codec import micros
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal import StoredVersion, TurnKey
from hivegraph.memory.sources import RetrievalSource, SearchQuery
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import Filter, matches
from hivegraph.memory.types import MemoryKind, Scope, ensure_scope
from hivegraph.memory.validation import aware
from hivegraph.models.tokens import TokenCounter, pack

SESSION_TOP = 3
"""A session's strength is the sum of this many of its best candidate scores (see `session_lift`)."""


@dataclass(frozen=True)
class Boost:
    """Multiply the fused score of the candidates whose record metadata match `where` by `factor`."""

    where: Filter
    factor: float


@dataclass(frozen=True)
class RetrievalSettings:
    """How candidates are gathered, fused and expanded (neutral defaults: no neighbour expansion)."""

    candidates: int = 50
    """Candidates asked of each source."""
    rrf_k: int = 10
    """The reciprocal-rank constant; smaller values favour the top of each list more."""
    weights: Mapping[str, float] = field(default_factory=dict[str, float])
    """Fusion weight per source name (1 when absent)."""
    after_share: float = 0.0
    """Share of a session turn's score passed to the turn after it (0: off; LoCoMo-style data: 0.5)."""
    before_share: float = 0.0
    """Share of a session turn's score passed to the turn before it (0: off; LoCoMo-style data: 0.3)."""
    session_lift: float = 0.0
    """How much a session's strength lifts the scores of its turns (0: off; LoCoMo-style data: 0.5)."""
    block_overhead: int = 0
    """Tokens each hit costs in a prompt beyond its text (separators, citation marks)."""

    @property
    def expands(self) -> bool:
        """Whether neighbour expansion is on."""
        return self.after_share > 0 or self.before_share > 0


@dataclass(frozen=True)
class Retrieval:
    """What a retrieval found and fitted, best first."""

    hits: list[MemoryHit]
    tokens: int
    """Tokens the hits use, overhead included."""
    candidates: int = 0
    """How many candidates were ranked before packing."""


@dataclass
class _Ranked:
    """One source's candidates: their scores (after expansion), ranks and own scores."""

    scores: dict[str, float]
    floor: float
    """Score assumed for an item the source did not return."""
    direct: dict[str, float]
    """The source's own score of each item it returned itself."""
    ranks: dict[str, int] = field(default_factory=dict[str, int])


def _ranked(hits: Sequence[MemoryHit], asked: int) -> _Ranked:
    scores = {hit.id: hit.score for hit in hits}
    floor = min(scores.values()) if scores and len(hits) >= asked else 0.0
    return _Ranked(scores=dict(scores), floor=floor, direct=scores)


class Retriever:
    """Searches every source, loads candidates from the journal once, fuses and packs them."""

    def __init__(
        self,
        store: MemoryStore,
        sources: Sequence[RetrievalSource],
        *,
        embed: Callable[[str], Sequence[float]] | None = None,
        settings: RetrievalSettings | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        """Search `sources`, all projections of `store`'s journal.

        Args:
            store: The memory store (its journal holds the records and token counts).
            sources: Where candidates come from.
            embed: Embeds a query (cached by the vector space); needed by a vector source.
            settings: Fusion and expansion settings.
            counter: Counts tokens where the journal's stored counts use another encoding.

        """
        self.store = store
        self.sources = list(sources)
        self.embed = embed
        self.settings = settings or RetrievalSettings()
        self.counter = counter or TokenCounter()
        self._count = lru_cache(maxsize=4096)(self.counter.count)

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
        boosts: Sequence[Boost] = (),
    ) -> Retrieval:
        """The best current records in `scope` for `query`: at most `k` hits within `token_budget` tokens.

        Raises:
            InvalidInputError: `scope` is not a Scope, or `since`/`until` is naive.
            ValueError: `k` or `token_budget` is negative.

        """
        if k < 0 or (token_budget is not None and token_budget < 0):
            raise ValueError(f"k and token_budget must be >= 0, got {k} and {token_budget}")
        search = SearchQuery(
            text=query, scope=ensure_scope(scope), kinds=tuple(kinds) if kinds else None, embed=self.embed,
            since_us=micros(aware(since, "since")) if since is not None else None,
            until_us=micros(aware(until, "until")) if until is not None else None,
        )  # fmt: skip
        size = self.settings.candidates
        direct = [source for source in self.sources if not source.projected]
        projected = [source for source in self.sources if source.projected]

        async def after_catch_up() -> list[list[MemoryHit]]:
            await self.store.catch_up()  # other writers' journaled ops (other processes too) are projected
            return await asyncio.gather(*(source.search(search, k=size) for source in projected))

        first, then = await asyncio.gather(
            asyncio.gather(*(source.search(search, k=size) for source in direct)), after_catch_up()
        )  # the journal's own sources need no catch-up: they start at once
        found = dict(zip([*direct, *projected], [*first, *then], strict=True))
        ranked = {source.name: _ranked(found[source], size) for source in self.sources}
        stored = await self._load({i for r in ranked.values() for i in r.scores}, search.scope)
        for r in ranked.values():
            r.scores = {i: s for i, s in r.scores.items() if i in stored}
        if self.settings.expands:
            await self._expand(ranked, stored, search)
        fused = self._fuse(ranked, boosts, stored)
        return self._pack(fused, ranked, stored, k=k, token_budget=token_budget)

    async def _load(self, ids: set[str], scope: Scope) -> dict[str, StoredVersion]:
        versions = await self.store.versions(sorted(ids))
        wanted = scope.fields().items()
        return {
            i: v for i, v in versions.items() if v.current and all(getattr(v.scope, n) == x for n, x in wanted)
        }  # `scope.contains(v.scope)`, with the scope's fields read once

    async def _expand(self, ranked: dict[str, _Ranked], stored: dict[str, StoredVersion], query: SearchQuery) -> None:
        """Add to each candidate a share of the scores of the turns before and after it in its session.

        The turns next to a hit join the candidates, scored from their own neighbours (the hit among
        them), so two turns away from each hit are read: one indexed read of the journal.
        """
        keys = {key: v for v in stored.values() if (key := _turn_key(v)) is not None}
        wanted = {_moved(key, step) for key in keys for step in (-2, -1, 1, 2)} - keys.keys()
        found = await self.store.journal.turns(sorted(wanted, key=_order), kinds=query.kinds,
                                               since_us=query.since_us, until_us=query.until_us)  # fmt: skip
        keys.update((key, v) for key, v in found.items() if v.current)
        stored.update((v.version_id, v) for v in keys.values())

        def around(i: str) -> tuple[StoredVersion | None, StoredVersion | None]:
            key = _turn_key(stored[i])
            return (None, None) if key is None else (keys.get(_moved(key, -1)), keys.get(_moved(key, 1)))

        after, before = self.settings.after_share, self.settings.before_share
        for r in ranked.values():

            def score(v: StoredVersion | None, r: _Ranked = r) -> float:
                return 0.0 if v is None else r.scores.get(v.version_id, r.floor)

            near = {n.version_id for i in r.scores for n in around(i) if n is not None}
            expanded: dict[str, float] = {}
            for i in set(r.scores) | near:
                previous, following = around(i)
                expanded[i] = r.scores.get(i, r.floor) + after * score(previous) + before * score(following)
            r.scores = expanded

    def _fuse(
        self, ranked: Mapping[str, _Ranked], boosts: Sequence[Boost], stored: Mapping[str, StoredVersion]
    ) -> dict[str, float]:
        fused: dict[str, float] = {}
        for name, r in ranked.items():
            weight = self.settings.weights.get(name, 1.0)
            ordered = sorted(r.scores.items(), key=lambda pair: (-pair[1], pair[0]))
            for rank, (item_id, _) in enumerate(ordered, start=1):
                r.ranks[item_id] = rank
                fused[item_id] = fused.get(item_id, 0.0) + weight / (self.settings.rrf_k + rank)
        for boost in boosts:
            for item_id in fused:
                if matches(stored[item_id].record.metadata, boost.where):
                    fused[item_id] *= boost.factor
        if self.settings.session_lift > 0:
            _lift_sessions(fused, stored, self.settings.session_lift)
        return fused

    def _pack(
        self,
        fused: Mapping[str, float],
        ranked: Mapping[str, _Ranked],
        stored: Mapping[str, StoredVersion],
        *,
        k: int,
        token_budget: int | None,
    ) -> Retrieval:
        order = sorted(fused, key=lambda item_id: (-fused[item_id], item_id))
        same_encoding = self.store.journal.token_encoding == self.counter.encoding_name

        def count(item_id: str) -> int:
            version = stored[item_id]
            tokens = version.tokens if same_encoding else self._count(version.record.text)  # decodes only then
            return tokens + self.settings.block_overhead

        chosen = order if token_budget is None else pack(order, token_budget, count=count).items
        chosen = list(islice((i for i in chosen if _readable(stored[i])), max(k, 0)))
        hits = [
            MemoryHit(
                id=i, score=fused[i], record=stored[i].record, tokens=count(i),
                ranks={n: r.ranks[i] for n, r in ranked.items() if i in r.ranks},
                scores={n: r.direct[i] for n, r in ranked.items() if i in r.direct},
                neighbour=not any(i in r.direct for r in ranked.values()),
            )
            for i in chosen
        ]  # fmt: skip
        return Retrieval(hits=hits, tokens=sum(h.tokens or 0 for h in hits), candidates=len(order))


def _lift_sessions(fused: dict[str, float], stored: Mapping[str, StoredVersion], lift: float) -> None:
    """Multiply each session turn's score by `1 + lift * strength of its session / the strongest's`."""
    sessions: dict[tuple[str, str], list[float]] = defaultdict(list)
    keys: dict[str, tuple[str, str]] = {}
    for item_id, score in fused.items():
        version = stored[item_id]
        if version.session_id is not None:
            keys[item_id] = key = (str(version.scope), version.session_id)
            sessions[key].append(score)
    strength = {key: sum(heapq.nlargest(SESSION_TOP, scores)) for key, scores in sessions.items()}
    strongest = max(strength.values(), default=0.0)
    if strongest <= 0:
        return
    for item_id, key in keys.items():
        fused[item_id] *= 1 + lift * strength[key] / strongest


def _readable(version: StoredVersion) -> bool:
    """Whether the version decodes (one that no longer parses is left out; `verify` reports it)."""
    try:
        version.record  # noqa: B018 - decodes it
    except MemoryStoreError:
        return False
    return True


def _turn_key(version: StoredVersion) -> TurnKey | None:
    if version.session_id is None or version.turn is None:
        return None
    return TurnKey(scope=version.scope, session_id=version.session_id, turn=version.turn)


def _moved(key: TurnKey, step: int) -> TurnKey:
    return TurnKey(scope=key.scope, session_id=key.session_id, turn=key.turn + step)


def _order(key: TurnKey) -> tuple[str, str, int]:
    return str(key.scope), key.session_id, key.turn
