"""One conformance suite that every `VectorIndex` backend must pass.

Each check is a small async function that takes an `OpenIndex` (a callable
opening the backend under test at one location) and raises `AssertionError`
on a deviation from the reference behaviour (`InMemoryVectorIndex` and
`hivegraph.memory.stores.base.matches`). A test module parametrises over
backends and checks::

    @pytest.mark.parametrize("name", checks_for(MyIndex))
    async def test_my_index(name: str, tmp_path: Path) -> None:
        await CHECKS[name](lambda: MyIndex.open(tmp_path))

Calling `OpenIndex` twice in one check must open the same location again, so
that a persistent backend shows the items written before `aclose`. The checks
rely only on the embedder mapping identical texts to identical vectors and
texts without shared words to clearly different ones.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hivegraph.memory.stores.base import (
    Filter,
    Hit,
    IndexDeleteOp,
    IndexGetOp,
    IndexItem,
    IndexNearestOp,
    IndexQueryOp,
    IndexUpsertOp,
    VectorIndex,
)

OpenIndex = Callable[[], Awaitable[VectorIndex]]
"""Opens the index under test; every call opens the same location."""
Check = Callable[[OpenIndex], Awaitable[None]]

CHECKS: dict[str, Check] = {}
"""Every check, by name."""
PERSISTENCE_CHECKS: frozenset[str] = frozenset({"survives_reopen"})
"""Checks that only apply to backends whose `persistent` flag is True."""

EXACT = 0.99
"""The least score an item whose text equals the query may have."""


def checks_for(index_type: type[VectorIndex]) -> list[str]:
    """Name the checks that apply to `index_type` (persistence checks need `persistent`)."""
    return [name for name in CHECKS if index_type.persistent or name not in PERSISTENCE_CHECKS]


def _check(fn: Check) -> Check:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


@asynccontextmanager
async def _opened(open_index: OpenIndex) -> AsyncGenerator[VectorIndex]:
    index = await open_index()
    try:
        yield index
    finally:
        await index.aclose()


def _expect(got: object, want: object, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, expected {want!r}")


def _expect_true(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def _ids(found: Sequence[IndexItem] | Sequence[Hit]) -> list[str]:
    return [entry.id for entry in found]


def _typed(metadata: Mapping[str, Any]) -> dict[str, tuple[type, Any]]:
    return {key: (type(value), value) for key, value in metadata.items()}


FRUIT = [
    IndexItem("a", "apples grow in orchards", {"kind": "fact", "n": 1}),
    IndexItem("b", "bicycles have two wheels", {"kind": "fact", "n": 2}),
    IndexItem("c", "comets orbit far stars", {"kind": "event", "n": 3}),
]

FILTERED = [
    IndexItem("a", "apples grow in orchards", {"kind": "fact", "n": 1, "w": 0.5, "ok": True, "lang": "en"}),
    IndexItem("b", "bicycles have two wheels", {"kind": "fact", "n": 2, "w": 1.5, "ok": False}),
    IndexItem("c", "comets orbit far stars", {"kind": "event", "n": 3, "w": 2.5, "ok": True, "lang": "fr"}),
    IndexItem("d", "dolphins swim in waves", {"kind": "event", "n": 4, "w": 3.5, "ok": False, "lang": "en"}),
    IndexItem("e", "engines burn diesel fuel", {}),
]


async def _expect_filter(open_index: OpenIndex, cases: Sequence[tuple[Filter, set[str]]]) -> None:
    """Both `get` and `query` return exactly the items `where` admits."""
    async with _opened(open_index) as index:
        await index.upsert(FILTERED)
        for where, want in cases:
            _expect({item.id for item in await index.get(where=where)}, want, f"get(where={where!r})")
            hits = await index.query("apples bicycles comets", k=10, where=where)
            _expect(set(_ids(hits)), want, f"query(where={where!r})")


@_check
async def check_upsert_then_get_by_ids(open_index: OpenIndex) -> None:
    """`get(ids)` returns the asked items in the order asked, leaving out missing ids."""
    async with _opened(open_index) as index:
        await index.upsert(FRUIT)
        found = await index.get(["c", "missing", "a"])
        _expect(found, [FRUIT[2], FRUIT[0]], "get(['c', 'missing', 'a'])")
        _expect(await index.get([]), [], "get([])")


@_check
async def check_get_without_ids_returns_everything(open_index: OpenIndex) -> None:
    """`get()` with neither ids nor filter returns every item."""
    async with _opened(open_index) as index:
        await index.upsert(FRUIT)
        _expect(sorted(await index.get(), key=lambda item: item.id), FRUIT, "get()")


@_check
async def check_upsert_replaces_text_metadata_and_vector(open_index: OpenIndex) -> None:
    """Upserting an existing id replaces its text, its whole metadata and its vector."""
    async with _opened(open_index) as index:
        await index.upsert([IndexItem("a", "apples grow in orchards", {"kind": "fact", "n": 1})])
        await index.upsert([IndexItem("a", "volcanoes erupt molten lava", {"topic": "geology"})])
        replaced = IndexItem("a", "volcanoes erupt molten lava", {"topic": "geology"})
        _expect(await index.get(["a"]), [replaced], "get(['a'])")
        _expect(await index.count(), 1, "count")
        (hit,) = await index.query("volcanoes erupt molten lava", k=1)
        _expect_true(hit.score >= EXACT, f"the new text should match exactly, got {hit.score}")
        (hit,) = await index.query("apples grow in orchards", k=1)
        _expect_true(hit.score < EXACT, f"the old vector should be gone, got {hit.score}")
        _expect(await index.get(where={"kind": "fact"}), [], "old metadata still filtered on")


@_check
async def check_upsert_with_empty_metadata_clears_it(open_index: OpenIndex) -> None:
    """Upserting an item with no metadata over one with metadata leaves none."""
    async with _opened(open_index) as index:
        await index.upsert([IndexItem("a", "apples grow in orchards", {"kind": "fact"})])
        await index.upsert([IndexItem("a", "apples grow in orchards")])
        _expect(await index.get(["a"]), [IndexItem("a", "apples grow in orchards", {})], "a")


@_check
async def check_upsert_same_id_twice_in_one_batch_keeps_the_last(open_index: OpenIndex) -> None:
    """Within one upsert, the last item with a given id wins."""
    async with _opened(open_index) as index:
        await index.upsert([IndexItem("a", "first text", {"v": 1}), IndexItem("a", "second text", {"v": 2})])
        _expect(await index.get(["a"]), [IndexItem("a", "second text", {"v": 2})], "a")


@_check
async def check_delete_removes_and_ignores_unknown_ids(open_index: OpenIndex) -> None:
    """Check that deleted items leave get, query and count, and that unknown ids are ignored."""
    async with _opened(open_index) as index:
        await index.upsert(FRUIT)
        await index.delete(["a", "unknown"])
        _expect(_ids(await index.get(["a", "b", "c"])), ["b", "c"], "get after delete")
        _expect(await index.count(), 2, "count after delete")
        _expect_true("a" not in _ids(await index.query(FRUIT[0].text, k=10)), "query still returns a")


@_check
async def check_empty_writes_are_noops(open_index: OpenIndex) -> None:
    """Empty upserts, deletes and batches change nothing."""
    async with _opened(open_index) as index:
        await index.upsert(FRUIT)
        await index.upsert([])
        await index.delete([])
        _expect(await index.abatch([IndexUpsertOp([]), IndexDeleteOp([])]), [None, None], "empty ops")
        _expect(await index.abatch([]), [], "empty batch")
        _expect(await index.count(), 3, "count")


@_check
async def check_batch_runs_ops_in_order(open_index: OpenIndex) -> None:
    """`abatch` runs its ops in order and returns one result per op."""
    async with _opened(open_index) as index:
        item = FRUIT[0]
        ops = [IndexUpsertOp([item]), IndexGetOp(["a"]), IndexDeleteOp(["a"]), IndexGetOp(["a"])]
        results = await index.abatch([*ops, IndexQueryOp(item.text)])
        _expect(results, [None, [item], None, [], []], "batch results")


@_check
async def check_count(open_index: OpenIndex) -> None:
    """`count` is the number of distinct ids held (matching a filter, when given)."""
    async with _opened(open_index) as index:
        _expect(await index.count(), 0, "count of an empty index")
        await index.upsert(FRUIT)
        await index.upsert(FRUIT[:1])
        _expect(await index.count(), 3, "count")
        _expect(await index.count(where={"kind": "fact"}), 2, "count with a filter")
        _expect(await index.count(where={"kind": "fact", "n": {"$gte": 5}}), 0, "count matching nothing")


@_check
async def check_query_ranks_exact_text_first(open_index: OpenIndex) -> None:
    """Closest first, scores are cosine similarities in [-1, 1], the exact text scores about 1."""
    async with _opened(open_index) as index:
        await index.upsert(FILTERED)
        hits = await index.query("comets orbit far stars", k=5)
        _expect(len(hits), 5, "number of hits")
        _expect(hits[0].id, "c", "first hit")
        _expect_true(hits[0].score >= EXACT, f"exact text scores {hits[0].score}")
        scores = [hit.score for hit in hits]
        _expect_true(all(-1.0 <= score <= 1.0 for score in scores), f"scores out of [-1, 1]: {scores}")
        _expect(scores, sorted(scores, reverse=True), "scores in decreasing order")


@_check
async def check_query_hits_carry_text_and_metadata(open_index: OpenIndex) -> None:
    """Check that a hit holds the item's text and metadata."""
    async with _opened(open_index) as index:
        await index.upsert(FRUIT)
        (hit,) = await index.query(FRUIT[1].text, k=1)
        _expect((hit.id, hit.text, dict(hit.metadata)), ("b", FRUIT[1].text, dict(FRUIT[1].metadata)), "hit")


@_check
async def check_query_k_limits_and_exceeds_size(open_index: OpenIndex) -> None:
    """`k` caps the hits; a `k` above the size returns every item; `k` = 0 returns none."""
    async with _opened(open_index) as index:
        _expect(await index.query("anything", k=3), [], "query on an empty index")
        await index.upsert(FRUIT)
        _expect(_ids(await index.query(FRUIT[0].text, k=1)), ["a"], "k=1")
        _expect(len(await index.query(FRUIT[0].text, k=2)), 2, "k=2")
        _expect(sorted(_ids(await index.query(FRUIT[0].text, k=100))), ["a", "b", "c"], "k=100")
        _expect(await index.query(FRUIT[0].text, k=0), [], "k=0")


@_check
async def check_query_breaks_ties_by_id(open_index: OpenIndex) -> None:
    """Items with equal scores come in id order."""
    async with _opened(open_index) as index:
        await index.upsert([IndexItem(i, "identical twin texts") for i in ("t3", "t1", "t2")])
        _expect(_ids(await index.query("identical twin texts", k=3)), ["t1", "t2", "t3"], "tie order")


@_check
async def check_filter_equality(open_index: OpenIndex) -> None:
    """Check that a scalar condition means equality, for str, int, float and bool values."""
    cases: list[tuple[Filter, set[str]]] = [
        ({"kind": "fact"}, {"a", "b"}),
        ({"n": 3}, {"c"}),
        ({"w": 1.5}, {"b"}),
        ({"ok": True}, {"a", "c"}),
    ]
    await _expect_filter(open_index, cases)


@_check
async def check_filter_ne(open_index: OpenIndex) -> None:
    """`$ne` admits items whose value differs, and items without the key."""
    await _expect_filter(
        open_index, [({"kind": {"$ne": "fact"}}, {"c", "d", "e"}), ({"lang": {"$ne": "en"}}, {"b", "c", "e"})]
    )


@_check
async def check_filter_in(open_index: OpenIndex) -> None:
    """`$in` admits items whose value is in the list, of one or several types."""
    cases: list[tuple[Filter, set[str]]] = [
        ({"kind": {"$in": ["event", "other"]}}, {"c", "d"}),
        ({"n": {"$in": [1, 4]}}, {"a", "d"}),
        ({"n": {"$in": [2, "two"]}}, {"b"}),
    ]
    await _expect_filter(open_index, cases)


@_check
async def check_filter_ranges(open_index: OpenIndex) -> None:
    """`$gte` and `$lte` bound numbers inclusively, alone or together, int or float."""
    cases: list[tuple[Filter, set[str]]] = [
        ({"n": {"$gte": 3}}, {"c", "d"}),
        ({"n": {"$lte": 2}}, {"a", "b"}),
        ({"w": {"$gte": 1.5, "$lte": 2.5}}, {"b", "c"}),
        ({"n": {"$gte": 1.5}}, {"b", "c", "d"}),
    ]
    await _expect_filter(open_index, cases)


@_check
async def check_filter_compares_ints_and_floats_numerically(open_index: OpenIndex) -> None:
    """Check that fractional bounds and values compare with int values as numbers do."""
    items = [IndexItem(f"n{n}", f"number {n}", {"n": n, "f": n + 0.25}) for n in range(-2, 3)]
    cases: list[tuple[Filter, set[str]]] = [
        ({"n": {"$gte": 0.5}}, {"n1", "n2"}),
        ({"n": {"$gte": -1.5}}, {"n-1", "n0", "n1", "n2"}),
        ({"n": {"$lte": -0.5}}, {"n-2", "n-1"}),
        ({"n": {"$lte": 1.5}}, {"n-2", "n-1", "n0", "n1"}),
        ({"n": 0.5}, set()),
        ({"n": 1.0}, {"n1"}),
        ({"n": {"$ne": -1.5}}, {"n-2", "n-1", "n0", "n1", "n2"}),
        ({"n": {"$in": [0.5, 2.0, -1]}}, {"n2", "n-1"}),
        ({"f": {"$gte": 1}}, {"n1", "n2"}),
        ({"f": {"$lte": -1}}, {"n-2"}),
    ]
    async with _opened(open_index) as index:
        await index.upsert(items)
        for where, want in cases:
            _expect({item.id for item in await index.get(where=where)}, want, f"get(where={where!r})")


@_check
async def check_filter_combines_keys_with_and(open_index: OpenIndex) -> None:
    """Conditions on several keys must all hold."""
    cases: list[tuple[Filter, set[str]]] = [
        ({"kind": "fact", "ok": False}, {"b"}),
        ({"n": {"$gte": 2}, "kind": "event", "lang": {"$in": ["en"]}}, {"d"}),
    ]
    await _expect_filter(open_index, cases)


@_check
async def check_filter_excluding_everything(open_index: OpenIndex) -> None:
    """Check that a filter nothing satisfies gives empty results, not an error."""
    cases: list[tuple[Filter, set[str]]] = [
        ({"kind": "nothing"}, set()),
        ({"n": {"$gte": 10}}, set()),
        ({"n": {"$in": []}}, set()),
        ({"kind": "fact", "n": 3}, set()),
    ]
    await _expect_filter(open_index, cases)


@_check
async def check_query_with_filter_ranks_within_matches(open_index: OpenIndex) -> None:
    """Check that a filtered query returns the closest of the admitted items only."""
    async with _opened(open_index) as index:
        await index.upsert(FILTERED)
        hits = await index.query("comets orbit far stars", k=10, where={"kind": "fact"})
        _expect(sorted(_ids(hits)), ["a", "b"], "filtered query")
        (hit,) = await index.query("dolphins swim in waves", k=1, where={"kind": "event"})
        _expect(hit.id, "d", "closest admitted item")


@_check
async def check_get_by_ids_and_filter(open_index: OpenIndex) -> None:
    """`get(ids, where=...)` returns the asked items that the filter admits."""
    async with _opened(open_index) as index:
        await index.upsert(FILTERED)
        _expect(_ids(await index.get(["d", "b", "a"], where={"kind": "fact"})), ["b", "a"], "get(ids, where)")


@_check
async def check_unknown_filter_operator_raises(open_index: OpenIndex) -> None:
    """Check that an unknown operator is a ValueError, not an empty result."""
    async with _opened(open_index) as index:
        await index.upsert(FRUIT)
        try:
            await index.get(where={"n": {"$regex": "x"}})
        except ValueError:
            return
        raise AssertionError("get(where={'n': {'$regex': 'x'}}) did not raise ValueError")


@_check
async def check_metadata_types_round_trip(open_index: OpenIndex) -> None:
    """str, int, float and bool metadata values come back with their types."""
    metadata = {"s": "text", "i": 7, "neg": -3, "big": 2**40, "f": 2.5, "whole": 2.0, "t": True, "no": False}
    async with _opened(open_index) as index:
        await index.upsert([IndexItem("a", "typed values", metadata)])
        (item,) = await index.get(["a"])
        _expect(_typed(item.metadata), _typed(metadata), "metadata")


@_check
async def check_unicode_text(open_index: OpenIndex) -> None:
    """Non-ASCII ids, texts and metadata round-trip and can be searched and filtered."""
    item = IndexItem("ünï-1", "café naïve — 東京 ёлка 🚀", {"città": "Zürich"})
    async with _opened(open_index) as index:
        await index.upsert([item, *FRUIT])
        _expect(await index.get(["ünï-1"]), [item], "get")
        _expect(_ids(await index.query(item.text, k=1)), ["ünï-1"], "query")
        _expect(await index.get(where={"città": "Zürich"}), [item], "filter")


@_check
async def check_thousand_items_round_trip(open_index: OpenIndex) -> None:
    """1,000 items: all kept, all fetched in order, ranges and exact search still right."""
    items = [
        IndexItem(f"id-{i:04d}", f"entry {i} " + " ".join(f"t{i * p % 9973}" for p in (31, 37, 41)), {"i": i})
        for i in range(1000)
    ]
    async with _opened(open_index) as index:
        await index.upsert(items)
        _expect(await index.count(), 1000, "count")
        ids = [item.id for item in reversed(items)]
        _expect(await index.get(ids), list(reversed(items)), "get all by id")
        _expect(len(await index.get(where={"i": {"$gte": 900}})), 100, "range filter")
        hits = await index.query(items[537].text, k=5)
        _expect(hits[0].id, "id-0537", "exact text first")


@_check
async def check_survives_reopen(open_index: OpenIndex) -> None:
    """Items written before `aclose` are there, searchable by text, after reopening."""
    async with _opened(open_index) as index:
        await index.upsert(FILTERED)
        await index.delete(["e"])
    async with _opened(open_index) as index:
        _expect(await index.count(), 4, "count after reopen")
        _expect(await index.get(["a", "e"]), [FILTERED[0]], "get after reopen")
        hits = await index.query(FILTERED[3].text, k=2, where={"kind": "event"})
        _expect(hits[0].id, "d", "query after reopen")
        _expect_true(math.isclose(hits[0].score, 1.0, abs_tol=1 - EXACT), f"score {hits[0].score}")


@_check
async def check_nearest_agrees_with_query(open_index: OpenIndex) -> None:
    """`nearest(embed_query(text))` gives the ids and scores `query(text)` gives, with and without a filter."""
    cases: list[tuple[str, int, Filter | None]] = [
        ("comets orbit far stars", 5, None),
        ("apples bicycles", 3, None),
        ("dolphins swim", 10, {"kind": "event"}),
        ("engines fuel", 2, {"n": {"$gte": 2}}),
        ("apples", 10, {"lang": {"$ne": "en"}}),
    ]
    async with _opened(open_index) as index:
        await index.upsert(FILTERED)
        for text, k, where in cases:
            hits = await index.query(text, k=k, where=where)
            pairs = await index.nearest(index.embed_query(text), k=k, where=where)
            what = f"nearest({text!r}, k={k}, where={where!r})"
            _expect([id_ for id_, _ in pairs], _ids(hits), what)
            scores = [score for _, score in pairs]
            _expect_true(all(isinstance(score, float) for score in scores), f"{what}: scores are not floats")
            _expect_true(
                all(math.isclose(a, b.score, abs_tol=1e-5) for a, b in zip(scores, hits, strict=True)),
                f"{what}: scores {scores} differ from query's {[hit.score for hit in hits]}",
            )


@_check
async def check_nearest_ranks_by_cosine(open_index: OpenIndex) -> None:
    """Best first, scores in [-1, 1], the item's own vector scores about 1, a scaled vector ranks the same."""
    async with _opened(open_index) as index:
        await index.upsert(FILTERED)
        vector = index.embed_query(FILTERED[3].text)
        pairs = await index.nearest(vector, k=5)
        _expect(len(pairs), 5, "number of results")
        _expect(pairs[0][0], "d", "first result")
        _expect_true(pairs[0][1] >= EXACT, f"its own vector scores {pairs[0][1]}")
        scores = [score for _, score in pairs]
        _expect_true(all(-1.0 <= score <= 1.0 for score in scores), f"scores out of [-1, 1]: {scores}")
        _expect(scores, sorted(scores, reverse=True), "scores in decreasing order")
        scaled = await index.nearest([3.0 * x for x in vector], k=5)
        _expect([id_ for id_, _ in scaled], [id_ for id_, _ in pairs], "a scaled vector's ranking")


@_check
async def check_nearest_k_limits_and_exceeds_size(open_index: OpenIndex) -> None:
    """`k` caps the results; a `k` above the size returns every item; `k` < 1 returns none."""
    async with _opened(open_index) as index:
        vector = index.embed_query(FRUIT[0].text)
        _expect(await index.nearest(vector, k=3), [], "nearest on an empty index")
        await index.upsert(FRUIT)
        _expect([id_ for id_, _ in await index.nearest(vector, k=1)], ["a"], "k=1")
        _expect(len(await index.nearest(vector, k=2)), 2, "k=2")
        _expect(sorted(id_ for id_, _ in await index.nearest(vector, k=100)), ["a", "b", "c"], "k=100")
        _expect(await index.nearest(vector, k=0), [], "k=0")
        _expect(await index.nearest(vector, k=-1), [], "k=-1")


@_check
async def check_nearest_breaks_ties_by_id(open_index: OpenIndex) -> None:
    """Items with equal scores come in id order."""
    async with _opened(open_index) as index:
        await index.upsert([IndexItem(i, "identical twin texts") for i in ("t3", "t1", "t2")])
        found = await index.nearest(index.embed_query("identical twin texts"), k=3)
        _expect([id_ for id_, _ in found], ["t1", "t2", "t3"], "tie order")


@_check
async def check_nearest_filters(open_index: OpenIndex) -> None:
    """Only admitted items come back; a filter nothing satisfies, `$in: []` included, gives []."""
    cases: list[tuple[Filter, set[str]]] = [
        ({"kind": "fact"}, {"a", "b"}),
        ({"n": {"$in": [1, 4]}}, {"a", "d"}),
        ({"w": {"$gte": 1.5, "$lte": 2.5}}, {"b", "c"}),
        ({"kind": "nothing"}, set()),
        ({"n": {"$in": []}}, set()),
    ]
    async with _opened(open_index) as index:
        await index.upsert(FILTERED)
        vector = index.embed_query("apples bicycles comets")
        for where, want in cases:
            _expect({id_ for id_, _ in await index.nearest(vector, k=10, where=where)}, want, f"where={where!r}")
        (best,) = await index.nearest(index.embed_query(FILTERED[3].text), k=1, where={"kind": "event"})
        _expect(best[0], "d", "closest admitted item")


@_check
async def check_nearest_in_a_batch(open_index: OpenIndex) -> None:
    """`IndexNearestOp` runs in `abatch` in order with the other ops."""
    async with _opened(open_index) as index:
        vector = index.embed_query(FRUIT[1].text)
        ops = [IndexNearestOp(vector, 1), IndexUpsertOp(FRUIT), IndexNearestOp(vector, 1)]
        before, written, after = await index.abatch(ops)
        _expect(before, [], "nearest on an empty index")
        _expect(written, None, "upsert")
        _expect([pair[0] for pair in after or [] if isinstance(pair, tuple)], ["b"], "nearest after the upsert")


@_check
async def check_nearest_refuses_a_vector_of_another_length(open_index: OpenIndex) -> None:
    """Check that a vector whose length is not the embedder's dimension is a ValueError."""
    async with _opened(open_index) as index:
        await index.upsert(FRUIT)
        wrong = [*index.embed_query("apples"), 0.0]
        try:
            await index.nearest(wrong, k=1)
        except ValueError:
            return
        raise AssertionError(f"nearest with a vector of {len(wrong)} numbers did not raise ValueError")


@_check
async def check_embed_query_is_the_embedders_vector(open_index: OpenIndex) -> None:
    """`embed_query` gives the same values every time, in a list of the caller's own; an item's text scores ~1."""
    async with _opened(open_index) as index:
        first = index.embed_query("where does Ada live")
        first.append(99.0)  # the caller's copy: the cached vector stays as it was
        again = index.embed_query("where does Ada live")
        _expect(again, first[:-1], "embed_query twice")
        await index.upsert([IndexItem("ada", "where does Ada live")])
        (best,) = await index.nearest(again, k=1)
        _expect_true(best[1] >= EXACT, f"the query vector of an item's text scores {best[1]}")


@_check
async def check_vectors_are_the_items_embeddings(open_index: OpenIndex) -> None:
    """`vectors` lists each item's id with its text's vector (or None for an index that cannot), within `limit`."""
    async with _opened(open_index) as index:
        _expect_vectors(await index.vectors(limit=10), {}, index, "vectors of an empty index")
        await index.upsert(FRUIT)
        await index.delete(["b"])
        want = {item.id: item.text for item in FRUIT if item.id != "b"}
        _expect_vectors(await index.vectors(limit=10), want, index, "vectors")
        found = await index.vectors(limit=1)
        if found is not None:
            _expect((len(found[0]), found[1].shape[0], set(found[0]) <= set(want)), (1, 1, True), "vectors(limit=1)")


def _expect_vectors(
    found: tuple[list[str], NDArray[np.float32]] | None, want: dict[str, str], index: VectorIndex, what: str
) -> None:
    if found is None:
        return
    ids, rows = found
    _expect(sorted(ids), sorted(want), f"{what}: ids")
    for item_id, row in zip(ids, rows, strict=True):
        expected = np.asarray(index.embed_query(want[item_id]), dtype=np.float64)
        _expect(row.shape, expected.shape, f"{what}: length of {item_id}'s vector")
        cosine = float(row @ expected) / ((float(np.linalg.norm(row)) * float(np.linalg.norm(expected))) or 1.0)
        _expect(round(cosine, 4), 1.0, f"{what}: cosine of {item_id}'s vector with its text's")
