"""`HivegraphStore`: hivegraph memory as a LangGraph `BaseStore`.

Pass it to `StateGraph.compile(store=...)` and nodes reach hivegraph memory
through `runtime.store` (or `get_store()`); LangGraph's server reaches it
through `hivegraph_store`, an async context manager that opens memory from
hivegraph's configuration. Every item is a memory record, so hivegraph's own
readers (recall, the memory tools, `Memory.search`) see what a graph wrote, and
every put is a journaled ADD, UPDATE or DELETE with history and undo.

The mapping is in `hivegraph.integrations.store_mapping`: leading `("users", id)`
(`agents`, `teams`, `runs`) pairs pick the scope; namespace, key and exact JSON
value live in the record's metadata; its text (what search ranks) is the indexed fields.

Semantics, as LangGraph's stores:

- `get` returns the item with its `created_at` (first put) and `updated_at`
  (last put); `put` with the same namespace and key replaces the value; a put of
  `None` deletes.
- `search` with a `query` ranks by hivegraph's hybrid retrieval (vector and
  keyword, fused by reciprocal rank; `score` is the fused score) and keeps the
  items that match `filter`; matching items outside the retriever's candidates,
  and items put with `index=False`, follow with `score=None`. Without a query it
  returns the matching items, most recently updated first. Then `offset` and `limit`.
- `list_namespaces` matches `prefix`/`suffix` (with `"*"` for any label),
  truncates to `max_depth`, sorts, then applies `offset` and `limit`.
- In one batch, reads see the state before the batch's puts, and of several
  puts to one item the last wins.
- TTLs are not supported (`supports_ttl` is False): memory keeps every version.

`search` and `list_namespaces` read every current record of the store's kind in
the scope the prefix maps to (no index on namespaces): a large scope costs that on each call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from langgraph.store.base import GetOp, Item, ListNamespacesOp, Op, PutOp, Result, SearchItem, SearchOp

from hivegraph.config import HivegraphSettings, load_settings
from hivegraph.errors import ConflictError, InvalidInputError
from hivegraph.integrations.store_checks import NamespaceCheckedStore, check_op
from hivegraph.integrations.store_generations import ItemTarget, current_record, next_generation
from hivegraph.integrations.store_loops import off_loop, running_loop
from hivegraph.integrations.store_mapping import (
    INDEXED,
    NamespaceMap,
    StoreNamespaceError,
    chunk_count,
    decode,
    encode_value,
    item_text,
    matches_filter,
    matches_namespace,
    metadata,
)
from hivegraph.memory.facade import Memory, open_memory
from hivegraph.memory.types import AddOp, DeleteOp, MemoryKind, MemoryOp, MemoryRecord, Scope, UpdateOp
from hivegraph.models._sync import run_sync

__all__ = ["HivegraphStore", "StoreNamespaceError", "hivegraph_store"]

_EVERY_HIT = 100_000
"""A `k` that keeps every fused candidate (the sources' candidate lists bound their number)."""


class HivegraphStore(NamespaceCheckedStore):
    """LangGraph's `BaseStore` over a hivegraph `Memory` (async first; `batch` runs `abatch`)."""

    supports_ttl = False

    def __init__(
        self,
        memory: Memory,
        *,
        scope: Scope | None = None,
        scope_labels: Mapping[str, str] | None = None,
        kind: MemoryKind = "semantic",
        index_fields: Sequence[str] | None = None,
        actor: str = "langgraph",
        max_attempts: int = 8,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Keep items in `memory` as records of `kind` inside `scope`.

        Args:
            memory: An opened memory.
            scope: The scope every item lives in (namespace scope pairs add to it; default: global).
            scope_labels: Namespace labels that open a scope pair, to the scope field each sets
                (default: `users`, `agents`, `teams`, `runs`).
            kind: The kind of the records (semantic facts by default, so recall reads them).
            index_fields: The value fields search ranks by, as LangGraph's `index.fields`
                (default: the whole value); a put's own `index` overrides them.
            actor: Who the journal says made each change.
            max_attempts: Tries of a put that loses a race with another writer before `ConflictError`.
            loop: The event loop `memory` was opened on (default: the running one, else that of the
                first `abatch`); `batch` runs there.

        Raises:
            InvalidInputError: a scope label names no scope field.

        """
        super().__init__()
        self.memory = memory
        self.namespaces = NamespaceMap(base=scope or Scope(), labels=dict(scope_labels or NamespaceMap().labels))
        self.kind: MemoryKind = kind
        self.index_fields = list(index_fields) if index_fields is not None else None
        self.actor = actor
        self.max_attempts = max_attempts
        self._loop = loop or running_loop()

    # --- the one primitive ------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run `ops`: reads first (concurrently), then the puts in order, the last put per item winning.

        Raises:
            StoreNamespaceError: an op's namespace is bad (nothing is run).
            InvalidInputError: an op is unknown or malformed, or a value cannot be stored.
            ConflictError: a put kept losing races with other writers.

        """
        ops = list(ops)
        for op in ops:
            check_op(op)
        here = asyncio.get_running_loop()
        home = self._loop
        if home is None or home.is_closed():
            self._loop = here
        elif home is not here and home.is_running():  # memory's connections belong to that loop
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._run(ops), home))
        return await self._run(ops)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """`abatch` from synchronous code, on the event loop the memory belongs to.

        From a thread with no running loop, or one running another loop, it waits for
        the memory's loop (or runs it when it is idle). The memory's loop is the one given
        as `loop`, else the one running when the store was made or first awaited; with
        none of those, a call from a thread running a loop takes that loop, and one from
        a thread running none takes hivegraph's background loop (`run_sync`).

        Raises:
            RuntimeError: called on the memory's own loop thread, which would deadlock;
                await `abatch` (or `aget`, `aput`, ...) there instead.

        """
        ops = list(ops)
        home, here = self._loop, running_loop()
        if home is None or home.is_closed():
            if here is None:  # no loop known: hivegraph's background loop (`run_sync`) becomes the memory's
                return run_sync(self.abatch(ops))
            self._loop = home = here  # the caller's loop is the memory's, as far as anyone can tell
        if home is here:
            raise RuntimeError(
                "HivegraphStore.batch (get, put, search, ...) was called on the event loop its memory runs on, "
                "where waiting would deadlock; await abatch (aget, aput, asearch, ...) instead"
            )
        if home.is_running():
            return asyncio.run_coroutine_threadsafe(self.abatch(ops), home).result()
        return off_loop(here, lambda: home.run_until_complete(self.abatch(ops)))

    async def _run(self, ops: list[Op]) -> list[Result]:
        results: list[Result] = [None] * len(ops)
        reads = [(i, op) for i, op in enumerate(ops) if not isinstance(op, PutOp)]
        for (i, _), found in zip(reads, await asyncio.gather(*(self._read(op) for _, op in reads)), strict=True):
            results[i] = found
        puts = {(op.namespace, op.key): op for op in ops if isinstance(op, PutOp)}
        for put in puts.values():
            await self._put(put)
        return results

    async def _read(self, op: Op) -> Result:
        match op:
            case GetOp():
                return await self._get(op)
            case SearchOp():
                return await self._search(op)
            case ListNamespacesOp():
                return await self._list(op)
            case _:  # PutOp: never passed here
                return None

    # --- get and put ------------------------------------------------------------------------------

    def _target(self, namespace: tuple[str, ...], key: str) -> ItemTarget:
        return ItemTarget(scope=self.namespaces.scope(namespace), namespace=namespace, key=key)

    async def _get(self, op: GetOp) -> Item | None:
        record = await current_record(self.memory.journal, self._target(op.namespace, op.key), self.kind)
        owned = self.namespaces.owns(record, self.kind) if record is not None else None
        return decode(record, *owned) if record is not None and owned is not None else None

    async def _put(self, op: PutOp) -> None:
        target = self._target(op.namespace, op.key)
        change = self._change(op, target)
        for _ in range(self.max_attempts):
            if await self._put_once(target, change):
                return
        raise ConflictError(
            str(target.id(0)), f"{op.namespace!r} {op.key!r}: still changing after {self.max_attempts} tries"
        )

    def _change(self, op: PutOp, target: ItemTarget) -> Callable[[MemoryRecord | None, int], MemoryOp | None]:
        """The op that puts `op` over an item's current record (or as its given generation); None: nothing to do."""
        if op.value is None:
            return lambda current, _: DeleteOp(record_id=current.id) if current is not None else None
        chunks = encode_value(op.value)
        fields = [] if op.index is False else op.index if op.index is not None else self.index_fields
        text = item_text(op.namespace, op.key, op.value, fields, max_chars=self.memory.store.max_text_chars)

        def change(current: MemoryRecord | None, generation: int) -> MemoryOp:
            stale = chunk_count(current) if current is not None else 0
            meta = metadata(op.namespace, op.key, chunks, indexed=op.index is not False, stale=stale)
            if current is None:
                return AddOp(text=text, kind=self.kind, metadata=meta, dedupe=False, record_id=target.id(generation))
            return UpdateOp(record_id=current.id, text=text, metadata=meta, expected_version=current.version)

        return change

    async def _put_once(
        self, target: ItemTarget, change: Callable[[MemoryRecord | None, int], MemoryOp | None]
    ) -> bool:
        """One try of a put; False when another writer got in first (look again)."""
        current, generation = await current_record(self.memory.journal, target, self.kind), 0
        op = change(current, generation)
        if current is None and isinstance(op, AddOp):
            current, generation = await next_generation(self.memory.journal, target, self.kind)
            op = change(current, generation)
        if op is None:
            return True
        result = await self.memory.apply([op], scope=target.scope, actor=self.actor)
        if not result.refused:
            return True
        refused = result.refused[0]
        if refused.code in ("conflict", "not_found"):
            return False
        raise InvalidInputError("value", refused.reason)

    # --- search and list --------------------------------------------------------------------------

    async def _items(self, scope: Scope, prefix: tuple[str, ...], where: Mapping[str, Any] | None) -> list[Item]:
        """The items in `scope` under `prefix` that match `where`, most recently updated first."""
        found: list[Item] = []
        for record in await self.memory.journal.records(scope=scope, kinds=[self.kind]):
            owned = self.namespaces.owns(record, self.kind)
            if owned is not None and owned[0][: len(prefix)] == prefix:
                item = decode(record, *owned)
                if matches_filter(item.value, where):
                    found.append(item)
        found.sort(key=lambda i: (i.namespace, i.key))
        found.sort(key=lambda i: i.updated_at, reverse=True)
        return found

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        scope = self.namespaces.scope(op.namespace_prefix)
        items = await self._items(scope, op.namespace_prefix, op.filter)
        scored: list[tuple[Item, float | None]] = [(item, None) for item in items]
        if op.query and op.query.strip() and items:
            scored = await self._ranked(op.query, scope, items)
        return [
            SearchItem(i.namespace, i.key, i.value, i.created_at, i.updated_at, score=score)
            for i, score in scored[op.offset : op.offset + op.limit]
        ]

    async def _ranked(self, query: str, scope: Scope, items: list[Item]) -> list[tuple[Item, float | None]]:
        """`items` ranked by hybrid retrieval; those it did not rank (or that are not indexed) follow, unscored."""
        places = {(i.namespace, i.key): i for i in items}
        retrieval = await self.memory.recall(query, scope=scope, k=_EVERY_HIT, kinds=[self.kind])
        ranked: list[tuple[Item, float | None]] = []
        taken: set[tuple[tuple[str, ...], str]] = set()
        for hit in retrieval.hits:
            owned = self.namespaces.owns(hit.loaded, self.kind)
            if owned in places and owned not in taken and hit.loaded.metadata.get(INDEXED) is not False:
                ranked.append((places[owned], hit.score))
                taken.add(owned)
        return ranked + [(i, None) for i in items if (i.namespace, i.key) not in taken]

    async def _list(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = op.match_conditions or ()
        prefix = next((c.path for c in conditions if c.match_type == "prefix"), ())
        records = await self.memory.journal.records(scope=self.namespaces.scope(prefix), kinds=[self.kind])
        found = {owned[0] for r in records if (owned := self.namespaces.owns(r, self.kind)) is not None}
        found = {ns for ns in found if all(matches_namespace(c, ns) for c in conditions)}
        if op.max_depth is not None:
            found = {ns[: op.max_depth] for ns in found}
        return sorted(found)[op.offset : op.offset + op.limit]


@asynccontextmanager
async def hivegraph_store(
    settings: HivegraphSettings | None = None, *, scope: Scope | None = None, kind: MemoryKind = "semantic"
) -> AsyncGenerator[HivegraphStore]:
    """A `HivegraphStore` over the configured memory, opened on entry and closed on exit.

    With no `settings`, the effective configuration (`load_settings`): LangGraph's server calls it
    with no arguments (`store.path` in `langgraph.json`).

    Raises:
        ConfigError: the configuration is invalid or names an unknown backend.
        BackendUnavailableError: a configured server cannot be reached.

    """
    async with open_memory(settings or load_settings()) as memory:
        yield HivegraphStore(memory, scope=scope, kind=kind)
