"""`Memory`: one object that owns the journal, its projections, the retriever and the memory kinds.

Teams, tools, the memory manager and the CLI receive a `Memory`, not a bag of
services. It is built from settings (`open_memory`) or from parts (tests):

- the **journal** (SQLite, PostgreSQL or in-memory), the source of truth, which
  also holds the keyword index;
- the **projections**: the vector projection over a `VectorSpace` (Chroma or
  in-memory) and any registered in `PROJECTIONS` and named in
  `memory.projections` (the graph, next);
- the **retriever** over the retrieval sources (vector and keyword; a
  projection that is also a source, such as a graph, joins them);
- the **kinds**: `episodic`, `procedural`, the team hierarchy `gmemory` (over the
  graph projection), and semantic facts through `apply`, `add` and the memory
  manager (in `hivegraph.agents`, since it calls a model).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from hivegraph.config import HivegraphSettings
from hivegraph.errors import ConflictError, InvalidInputError, RecordNotFoundError, ScopeViolationError
from hivegraph.memory.episodic import EpisodicMemory, EpisodicSettings
from hivegraph.memory.exact import ExactVectors
from hivegraph.memory.gmemory import GMemory, GMemorySettings
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.graph.source import GRAPH
from hivegraph.memory.graph.store import GraphStore
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal import Journal, JournalEntry
from hivegraph.memory.procedural import ProceduralMemory
from hivegraph.memory.projection import Projection
from hivegraph.memory.retrieval import Boost, Retrieval, RetrievalSettings, Retriever
from hivegraph.memory.sources import KEYWORD, VECTOR, KeywordSource, RetrievalSource, SeededSource, VectorSource
from hivegraph.memory.store import ApplyResult, MemoryStore, RecordHistory
from hivegraph.memory.stores.base import VectorSpace
from hivegraph.memory.types import LinkOp, MemoryKind, MemoryOp, MemoryRecord, Scalar, Scope, Source, UnlinkOp
from hivegraph.memory.verify import VerifyReport
from hivegraph.memory.vocabulary import EdgeType
from hivegraph.models.tokens import TokenCounter
from hivegraph.registry import JOURNALS, PROJECTIONS, VECTOR_STORES, check_backends

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class MemoryOptions:
    """The tunable parts of a `Memory` (all have neutral defaults)."""

    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    episodic: EpisodicSettings = field(default_factory=EpisodicSettings)
    procedural_min_uses: int = 3
    procedural_deprecate_below: float = 0.5
    gmemory: GMemorySettings = field(default_factory=GMemorySettings)

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> MemoryOptions:
        """The options `settings.retrieval` and `settings.memory` describe."""
        r = settings.retrieval
        return cls(
            retrieval=RetrievalSettings(
                candidates=r.candidates, rrf_k=r.rrf_k,
                weights={VECTOR: r.vector_weight, KEYWORD: r.keyword_weight, GRAPH: r.graph_weight},
                after_share=r.after_share, before_share=r.before_share, session_lift=r.session_lift,
            ),
            episodic=EpisodicSettings(
                speaker_boost=r.speaker_boost, time_boost=r.time_boost, strip_speakers=r.strip_speakers,
                when_boost=r.when_boost, question_factor=r.question_factor,
            ),
            procedural_min_uses=settings.memory.procedural_min_uses,
            procedural_deprecate_below=settings.memory.procedural_deprecate_below,
            gmemory=GMemorySettings(**settings.gmemory.model_dump(exclude={"enabled", "reflect", "model_summaries"})),
        )  # fmt: skip


class Memory:
    """Long-term memory: journal, projections, retriever and memory kinds, opened and closed together."""

    def __init__(
        self,
        store: MemoryStore,
        *,
        options: MemoryOptions | None = None,
        counter: TokenCounter | None = None,
        sources: Sequence[RetrievalSource] = (),
    ) -> None:
        """Read and write through `store`; `sources` join the vector and keyword sources."""
        options = options or MemoryOptions()
        self.store = store
        self.counter = counter or TokenCounter()
        base: list[RetrievalSource] = [VectorSource(store.vectors, store.kinds), KeywordSource(store.journal)]
        for source in sources:
            if isinstance(source, SeededSource):
                source.seed_from(base[0])  # the graph walk may start from the vector source's best records too
        self.retriever = Retriever(
            store, [*base, *sources], embed=store.space.embed_query, settings=options.retrieval, counter=self.counter
        )
        self.episodic = EpisodicMemory(store, self.retriever, settings=options.episodic)
        self.procedural = ProceduralMemory(
            store, self.retriever, min_uses=options.procedural_min_uses,
            deprecate_below=options.procedural_deprecate_below,
        )  # fmt: skip
        self.gmemory = GMemory(
            store, self.retriever, lambda: self.graph, counter=self.counter, settings=options.gmemory
        )

    @classmethod
    def of(
        cls,
        space: VectorSpace,
        *,
        journal: Journal | None = None,
        projections: Sequence[Projection] = (),
        options: MemoryOptions | None = None,
        tenant_key: str | None = "user_id",
        max_text_chars: int = 2000,
        exact: ExactVectors | None = None,
    ) -> Memory:
        """A memory over these parts (not opened: call `open`)."""
        store = MemoryStore(
            space, journal=journal, projections=projections, tenant_key=tenant_key, max_text_chars=max_text_chars,
            exact=exact,
        )  # fmt: skip
        return cls(store, options=options, sources=_sources(projections))

    @property
    def journal(self) -> Journal:
        """The source of truth (also the keyword index)."""
        return self.store.journal

    async def open(self) -> Memory:
        """Catch every projection up with the journal (repairing one that disagrees); returns self."""
        await self.store.open()
        return self

    async def aclose(self) -> None:
        """Close the journal and the projections' backends."""
        await self.store.aclose()

    async def recall(
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
        """The best current memories in `scope` for `query` from every source, fused, within the token budget."""
        return await self.retriever.retrieve(
            query, scope=scope, k=k, kinds=kinds, since=since, until=until, token_budget=token_budget, boosts=boosts
        )

    async def search(
        self, query: str, *, scope: Scope, k: int = 5, kinds: Sequence[MemoryKind] | None = None,
        as_of: datetime | None = None,
    ) -> list[MemoryHit]:  # fmt: skip
        """Nearest memories by vector only (scores are cosine similarities); `as_of` reads the past."""
        return await self.store.search(query, scope=scope, k=k, kinds=kinds, as_of=as_of)

    async def apply(
        self, ops: Sequence[MemoryOp], *, scope: Scope, actor: str, source: Source | None = None,
        now: datetime | None = None, idempotency_key: str | None = None,
    ) -> ApplyResult:  # fmt: skip
        """Plan and journal `ops` in one transaction, then update the projections (see `MemoryStore.apply`)."""
        return await self.store.apply(
            ops, scope=scope, actor=actor, source=source, now=now, idempotency_key=idempotency_key
        )

    async def add(
        self, text: str, *, scope: Scope, kind: MemoryKind = "semantic", actor: str = "user",
        source: Source | None = None,
    ) -> MemoryRecord:  # fmt: skip
        """Store one memory (an exact duplicate returns the existing one)."""
        return await self.store.add(text, scope=scope, kind=kind, actor=actor, source=source)

    @property
    def graph(self) -> GraphStore | None:
        """The memory graph (the store of the `graph` projection), or None when no graph is projected."""
        return next((p.graph for p in self.store.projections if isinstance(p, GraphProjection)), None)

    async def link(
        self, source_id: UUID, target_id: UUID, relation: EdgeType, *, scope: Scope, weight: float = 1.0,
        metadata: Mapping[str, Scalar] | None = None, actor: str = "user", source: Source | None = None,
    ) -> JournalEntry:  # fmt: skip
        """Join two current records by a `relation` edge in `scope` (again: a NOOP, or an UPDATE of its weight).

        Raises:
            RecordNotFoundError: an end is not a current record.
            ScopeViolationError: an end is outside `scope`.
            InvalidInputError: an end is not of the kind the relation joins, or the two ends are one record.

        """
        op = LinkOp(source=source_id, target=target_id, relation=relation, weight=weight, metadata=dict(metadata or {}))
        return await self._one(op, scope=scope, actor=actor, source=source)

    async def unlink(
        self, source_id: UUID, target_id: UUID, relation: EdgeType, *, scope: Scope, actor: str = "user"
    ) -> JournalEntry:
        """Close the `relation` link from `source_id` to `target_id` in `scope` (kept in its history; undo reopens it).

        Raises:
            RecordNotFoundError: there is no such open link in exactly `scope`.

        """
        return await self._one(
            UnlinkOp(source=source_id, target=target_id, relation=relation), scope=scope, actor=actor
        )

    async def _one(self, op: MemoryOp, *, scope: Scope, actor: str, source: Source | None = None) -> JournalEntry:
        """Apply one op and return its entry, or raise the refusal as the error its code names."""
        result = await self.apply([op], scope=scope, actor=actor, source=source)
        if not result.refused:
            return result.applied[0]
        refused = result.refused[0]
        named = _UUID.search(refused.reason)
        record_id = named.group(0) if named else ""
        match refused.code:
            case "not_found":
                raise RecordNotFoundError(record_id, refused.reason)
            case "scope":
                raise ScopeViolationError(record_id, refused.reason)
            case "conflict":
                raise ConflictError(record_id, refused.reason)
            case _:
                raise InvalidInputError(op.event.lower(), refused.reason)

    async def undo(self, op_id: UUID, *, scope: Scope, actor: str = "user") -> JournalEntry:
        """Revert one op (the revert is journaled and can itself be undone)."""
        return await self.store.undo(op_id, scope=scope, actor=actor)

    async def get(self, record_id: UUID, *, scope: Scope, as_of: datetime | None = None) -> MemoryRecord | None:
        """A record's current version (or the one valid at `as_of`) inside `scope`."""
        return await self.store.get(record_id, scope=scope, as_of=as_of)

    async def history(self, record_id: UUID, *, scope: Scope) -> RecordHistory:
        """Every version of a record and the ops that made them."""
        return await self.store.history(record_id, scope=scope)

    async def verify(self, *, repair: bool = False) -> VerifyReport:
        """Compare every projection with the journal; `repair` re-derives what differs."""
        return await self.store.verify(repair=repair)

    async def rebuild(self) -> int:
        """Re-derive every projection from the journal; returns the entries replayed."""
        return await self.store.rebuild()


def _sources(projections: Sequence[Projection]) -> list[RetrievalSource]:
    """The projections that are also retrieval sources (a graph, say)."""
    return [p for p in projections if isinstance(p, RetrievalSource)]


@asynccontextmanager
async def open_memory(
    settings: HivegraphSettings, *, catch_up: bool = True, counter: TokenCounter | None = None
) -> AsyncGenerator[Memory]:
    """The configured `Memory`, caught up with its journal, closed on exit.

    With `catch_up=False` the projections are not opened: they stay exactly as
    found, not caught up, re-derived or repaired (`verify` and `rebuild` need that).

    Raises:
        ConfigError: a backend name is unknown or a setting is invalid.
        BackendUnavailableError: a configured server cannot be reached.

    """
    check_backends(settings)
    # Opening a backend touches files and sockets: it runs in a worker thread, off the event loop.
    space: VectorSpace = await asyncio.to_thread(
        VECTOR_STORES.load(settings.vector_store.backend).from_settings, settings
    )
    try:
        journal: Journal = await asyncio.to_thread(JOURNALS.load(settings.journal.backend).from_settings, settings)
    except BaseException:
        await space.aclose()
        raise
    try:
        projections = await asyncio.to_thread(
            lambda: [PROJECTIONS.load(name).from_settings(settings) for name in settings.memory.projections]
        )
    except BaseException:
        await space.aclose()
        await journal.aclose()
        raise
    store = MemoryStore(
        space, journal=journal, projections=projections, max_text_chars=settings.memory.max_text_chars,
        tenant_key=settings.memory.tenant_key,
        exact=ExactVectors(max_items=settings.memory.exact_max_items, max_vectors=settings.memory.exact_max_vectors),
    )  # fmt: skip
    counter = counter or TokenCounter(settings.model.model)
    memory = Memory(
        store, options=MemoryOptions.from_settings(settings), counter=counter, sources=_sources(projections)
    )
    try:
        yield await memory.open() if catch_up else memory
    finally:
        await memory.aclose()
