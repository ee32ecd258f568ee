"""`VectorProjection`: record versions as vectors, current ones per tenant, closed ones apart.

Layout in a `VectorSpace` (one Chroma client, several collections):

- `live-<tenant>-<kind>`: the current versions of one kind of one tenant,
  the value of the configured scope field (`tenant_key`, `user_id` by
  default; `none` for versions whose scope does not set it). A search inside
  a scope that names the tenant reads that tenant's collections of the kinds
  asked for, filtered only on the other scope fields the scope sets, so it
  costs what that tenant's memories cost, not what everyone's do. A scope
  that does not name a tenant reads every live collection (correct for every
  scope shape, and as slow as the data is big).
- `history`: every closed version, for `as_of` reads.

So the live collections never need a `current` or a `kind` filter. The
journal sequence applied so far is also kept in the space (`VectorSpace.mark`),
so opening a store learns how far an index got without reading it. Measured
with Chroma 1.5 embedded, 384 dimensions: a query filtered on the user over
one shared collection took 9.2 ms p50 at 10k vectors and 69 ms at 100k; the
same query on the tenant's own collection of 600 vectors 1.3 to 1.6 ms at any
size, but any metadata filter (`kind`) on that collection costs 15 ms (Chroma
filters through its metadata tables), hence the kind in the partition. See
`benchmarks/read_path.py` for the figures up to 1M records.

Updates are idempotent: a version that opens is upserted into its live
collection; one that closes is upserted into `history` and deleted from its
live collection, in that order, so a crash in between leaves it in both
(`fingerprints` reports that as stale, and `repair` finishes the move).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
from collections import defaultdict
from collections.abc import Sequence

from hivegraph.memory.codec import to_item
from hivegraph.memory.exact import ExactVectors
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.projection import Projection, final_versions, version_fingerprint
from hivegraph.memory.stores.base import Filter, IndexItem, VectorIndex, VectorSpace
from hivegraph.memory.types import SCOPE_FIELDS, SEARCHED_KINDS, MemoryRecord, Scope

LIVE_PREFIX = "live-"
HISTORY = "history"
_BOTH = "in-live-and-history"


def tenant_prefix(tenant: str | None) -> str:
    """The name prefix of a tenant's live collections (a digest: values may hold any character)."""
    return LIVE_PREFIX + (hashlib.sha256(tenant.encode()).hexdigest()[:24] if tenant is not None else "none") + "-"


def live_name(tenant: str | None, kind: str) -> str:
    """The live collection of one kind of a tenant."""
    return tenant_prefix(tenant) + kind


class VectorProjection(Projection):
    """Current versions in one collection per tenant, closed versions in `history`."""

    def __init__(
        self,
        space: VectorSpace,
        *,
        tenant_key: str | None = "user_id",
        name: str = "vector",
        exact: ExactVectors | None = None,
    ) -> None:
        """Project into `space`, partitioning live versions by the scope field `tenant_key` (None: one collection).

        Small collections are searched from the copies in `exact` (default: `ExactVectors()`).

        Raises:
            ValueError: `tenant_key` is not a scope field.

        """
        if tenant_key is not None and tenant_key not in SCOPE_FIELDS:
            raise ValueError(f"tenant_key must be one of {SCOPE_FIELDS} or None, not {tenant_key!r}")
        self.space = space
        self.exact = exact if exact is not None else ExactVectors()
        self.tenant_key = tenant_key
        self.name = name
        self.kinds = SEARCHED_KINDS
        self._held_in: dict[str, set[str]] = {}
        """Where the last `fingerprints` found each id (so `repair` can remove ids the journal lacks)."""

    @property
    def persistent(self) -> bool:
        """Whether the space keeps its collections across processes."""
        return self.space.persistent

    def tenant(self, scope: Scope) -> str | None:
        """The tenant value of a scope (None when the scope does not set it, or there is no tenant key)."""
        return getattr(scope, self.tenant_key) if self.tenant_key is not None else None

    def partition(self, record: MemoryRecord) -> str:
        """The live collection that holds `record` while it is current."""
        return live_name(self.tenant(record.scope), record.kind)

    async def live(self, scope: Scope, kinds: Sequence[str]) -> list[tuple[str, VectorIndex, Filter]]:
        """The live collections a read in `scope` of `kinds` searches: name, index, the scope filter it still needs."""
        fields = {f"scope_{k}": v for k, v in scope.fields().items()}
        kinds = [kind for kind in kinds if kind in SEARCHED_KINDS]
        if self.tenant_key is None or self.tenant(scope) is not None:
            if self.tenant_key is not None:
                fields.pop(f"scope_{self.tenant_key}")
            prefix = tenant_prefix(self.tenant(scope))
            names = [prefix + kind for kind in kinds]
        else:
            live = await self.space.names()
            names = [n for n in live if n.startswith(LIVE_PREFIX) and n.rsplit("-", 1)[1] in kinds]
        return [(n, self.space.collection(n), fields) for n in names]

    async def nearest(
        self, scope: Scope, kinds: Sequence[str], vector: Sequence[float], *, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """The `k` current versions in `scope` of `kinds` nearest to `vector` (also matching `where`), best first.

        A collection that needs no filter is searched exactly here when it is small (`ExactVectors`).
        """
        if k < 1:
            return []

        async def search(name: str, index: VectorIndex, scope_where: Filter) -> list[tuple[str, float]]:
            combined = {**scope_where, **(where or {})}
            if not combined:
                found = await self.exact.nearest(name, index, vector, k=k)
                if found is not None:
                    return found
            return await index.nearest(vector, k=k, where=combined or None)

        found = await asyncio.gather(*(search(*target) for target in await self.live(scope, kinds)))
        return heapq.nsmallest(k, (pair for pairs in found for pair in pairs), key=lambda pair: (-pair[1], pair[0]))

    def invalidate(self) -> None:
        """Forget the exact copies: another process has written to the collections."""
        self.exact.clear()

    def history(self) -> VectorIndex:
        """The collection of closed versions."""
        return self.space.collection(HISTORY)

    async def project(self, entries: Sequence[JournalEntry]) -> None:
        """Apply the final state of each version the entries touch."""
        await self.repair(final_versions(entries), ())

    async def repair(self, write: Sequence[MemoryRecord], remove: Sequence[str], *, seq: int = 0) -> None:
        """Write `write` where each belongs (moving closed versions to history); drop the ids `remove` everywhere."""
        opened: dict[str, list[IndexItem]] = defaultdict(list)
        closed: list[IndexItem] = []
        gone: dict[str, list[str]] = defaultdict(list)
        for version in write:
            if version.kind not in SEARCHED_KINDS:  # links are graph edges, never searched by vector
                continue
            item = to_item(version)
            if version.is_current:
                opened[self.partition(version)].append(item)
            else:
                closed.append(item)
                gone[self.partition(version)].append(version.version_id)
        for item_id in remove:
            for where in self._held_in.get(item_id, ()):
                gone[where].append(item_id)
        await self.history().upsert(closed)  # first: a crash between the two leaves a copy, never none
        try:
            await asyncio.gather(*(self.space.collection(n).upsert(items) for n, items in opened.items()))
            await asyncio.gather(*(self.space.collection(n).delete(ids) for n, ids in gone.items()))
        finally:
            self.exact.forget([*opened, *gone])
        if remove:
            await self.history().delete(list(remove))

    async def reset(self) -> None:
        """Drop every collection of the layout (the mark first, so that a reset cut short is seen as one)."""
        await self.space.set_mark(self.name, 0)
        try:
            for name in await self._names():
                await self.space.drop(name)
        finally:
            self.exact.clear()

    async def applied(self) -> int | None:
        """The journal sequence kept as a mark in the space, beside the collections."""
        return await self.space.mark(self.name)

    async def mark_applied(self, seq: int) -> None:
        """Keep `seq` as the space's mark of this projection."""
        await self.space.set_mark(self.name, seq)

    def fingerprint(self, version: MemoryRecord) -> str | None:
        """Every version of a searched kind is held: its hash and whether it is current."""
        if version.kind not in SEARCHED_KINDS:
            return None
        return version_fingerprint(version.hash, version.is_current)

    async def fingerprints(self) -> dict[str, str]:
        """Hash and state of every item; an id found both live and in history is reported as such (stale)."""
        held: dict[str, str] = {}
        self._held_in = {}
        for name in await self._names():
            for item in await self.space.collection(name).get():
                current = name != HISTORY
                self._held_in.setdefault(item.id, set()).add(name)
                fingerprint = version_fingerprint(item.metadata.get("hash"), current)
                held[item.id] = _BOTH if item.id in held and held[item.id] != fingerprint else fingerprint
        return held

    async def counts(self) -> tuple[int, int]:
        """Items held, and items held as current, counted by the collections (no item is read)."""
        names = await self._names()
        sizes = await asyncio.gather(*(self.space.collection(n).count() for n in names))
        live = sum(size for name, size in zip(names, sizes, strict=True) if name != HISTORY)
        return sum(sizes), live

    async def is_empty(self) -> bool:
        """Whether no collection holds an item."""
        return (await self.counts())[0] == 0

    async def _names(self) -> list[str]:
        return [n for n in await self.space.names() if _ours(n)]


def _ours(name: str) -> bool:
    return name == HISTORY or name.startswith(LIVE_PREFIX)
