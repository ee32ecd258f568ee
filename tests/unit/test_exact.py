"""`ExactVectors`: exact search over copies of small collections, and what keeps the copies honest."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
from numpy.typing import NDArray

from hivegraph.memory.exact import ExactVectors
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.base import IndexItem
from hivegraph.memory.stores.inmemory import InMemorySpace, InMemoryVectorIndex
from hivegraph.memory.types import Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder

WORDS = ("apple", "bike", "cat", "dog", "east", "fig", "goat", "hill", "ink", "jam", "kite", "lamp", "moon",
         "nest", "owl", "pear", "quay", "rose", "sun", "tree")  # fmt: skip
ADA = Scope(user_id="ada")


def items(count: int, seed: int = 0) -> list[IndexItem]:
    rng = random.Random(seed)
    return [IndexItem(f"i{n:03d}", " ".join(rng.sample(WORDS, 4)), {}) for n in range(count)]


async def filled(count: int, seed: int = 0) -> InMemoryVectorIndex:
    index = InMemoryVectorIndex(HashEmbedder(64))
    await index.upsert(items(count, seed))
    return index


@pytest.mark.parametrize("k", [1, 5, 40, 200])
async def test_exact_search_finds_what_the_index_finds(k: int) -> None:
    index = await filled(120)
    exact = ExactVectors()
    for text in ("apple moon", "owl tree sun", "nothing matches here"):
        vector = index.embed_query(text)
        got = await exact.nearest("c", index, vector, k=k)
        want = await index.nearest(vector, k=k)
        assert got is not None
        assert ranked(got) == ranked(want)  # float32 here, float64 there: equal up to rounding


def ranked(found: list[tuple[str, float]]) -> list[tuple[float, str]]:
    return sorted((-round(score, 4), item_id) for item_id, score in found)


async def test_k_below_one_and_an_empty_collection_find_nothing() -> None:
    exact = ExactVectors()
    index = await filled(3)
    assert await exact.nearest("c", index, index.embed_query("apple"), k=0) == []
    empty = InMemoryVectorIndex(HashEmbedder(64))
    assert await exact.nearest("e", empty, empty.embed_query("apple"), k=5) == []


async def test_a_collection_bigger_than_max_items_is_left_to_the_index() -> None:
    exact = ExactVectors(max_items=10)
    index = await filled(11)
    assert await exact.nearest("big", index, index.embed_query("apple"), k=3) is None
    assert exact.held == 0
    assert await ExactVectors(max_items=0).nearest("c", await filled(2), index.embed_query("apple"), k=3) is None


async def test_a_query_of_the_wrong_dimension_is_a_value_error() -> None:
    exact = ExactVectors()
    index = await filled(5)
    with pytest.raises(ValueError, match="query vector of 3 numbers"):
        await exact.nearest("c", index, [1.0, 0.0, 0.0], k=2)


async def test_copies_are_bounded_in_vectors_least_recently_searched_dropped_first() -> None:
    exact = ExactVectors(max_items=50, max_vectors=100)
    indexes = {name: await filled(40, seed) for seed, name in enumerate("abc")}
    vector = indexes["a"].embed_query("apple")
    await exact.nearest("a", indexes["a"], vector, k=1)
    await exact.nearest("b", indexes["b"], vector, k=1)
    await exact.nearest("a", indexes["a"], vector, k=1)  # a is now the most recent
    await exact.nearest("c", indexes["c"], vector, k=1)  # 120 > 100: b goes
    assert exact.held == 80
    await indexes["b"].upsert([IndexItem("new", "apple apple", {})])  # unseen by a copy that was dropped
    found = await exact.nearest("b", indexes["b"], vector, k=1)
    assert found is not None and found[0][0] == "new"


async def test_a_forgotten_collection_is_read_again() -> None:
    exact = ExactVectors()
    index = await filled(10)
    vector = index.embed_query("zebra")
    await exact.nearest("c", index, vector, k=1)
    await index.upsert([IndexItem("zebra", "zebra", {})])
    stale = await exact.nearest("c", index, vector, k=1)
    assert stale is not None and stale[0][0] != "zebra"  # a copy is not re-read by itself: the owner forgets it
    exact.forget(["c"])
    fresh = await exact.nearest("c", index, vector, k=1)
    assert fresh is not None and fresh[0][0] == "zebra"


class _SlowIndex(InMemoryVectorIndex):
    """Lists its vectors only once `release` is set (a load in flight)."""

    def __init__(self) -> None:
        super().__init__(HashEmbedder(64))
        self.release = asyncio.Event()

    async def vectors(self, *, limit: int) -> tuple[list[str], NDArray[np.float32]]:
        found = await super().vectors(limit=limit)
        await self.release.wait()
        return found


async def test_a_load_that_overlaps_a_forget_is_not_kept() -> None:
    exact = ExactVectors()
    index = _SlowIndex()
    await index.upsert(items(5))
    loading = asyncio.create_task(exact.nearest("c", index, index.embed_query("apple"), k=2))
    await asyncio.sleep(0)
    exact.forget(["c"])  # a write landed while the copy was being read
    index.release.set()
    assert await loading is not None  # the search that asked still gets an answer
    assert exact.held == 0


def test_negative_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        ExactVectors(max_items=-1)


async def test_a_store_searches_small_collections_exactly_and_sees_its_own_writes() -> None:
    store = await MemoryStore(InMemorySpace(HashEmbedder(64))).open()
    tea = await store.add("Ada likes green tea", scope=ADA)
    assert [h.text for h in await store.search("tea", scope=ADA, k=3)] == ["Ada likes green tea"]
    assert store.vectors.exact.held == 1  # the search was answered from the copy
    await store.apply([UpdateOp(record_id=tea.id, text="Ada likes black coffee")], scope=ADA, actor="ada")
    await store.add("Ada likes mint tea", scope=ADA)
    found = sorted(h.text for h in await store.search("Ada likes", scope=ADA, k=5))
    assert found == ["Ada likes black coffee", "Ada likes mint tea"]  # the old version is gone, the new ones found
    await store.aclose()
