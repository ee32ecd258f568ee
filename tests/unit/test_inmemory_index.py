"""The in-memory reference index: the conformance suite, plus what only the reference promises."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hivegraph.config import EmbedderSettings, HashEmbedderSettings, HivegraphSettings, VectorStoreSettings
from hivegraph.memory.conformance import CHECKS, PERSISTENCE_CHECKS, checks_for
from hivegraph.memory.space_conformance import (
    SPACE_CHECKS,
    SPACE_PERSISTENCE_CHECKS,
    CountingEmbedder,
    space_checks_for,
)
from hivegraph.memory.stores.base import (
    IndexDeleteOp,
    IndexItem,
    IndexNearestOp,
    IndexOp,
    IndexResult,
    IndexUpsertOp,
    QueryCache,
    VectorIndex,
    VectorSpace,
)
from hivegraph.memory.stores.inmemory import InMemorySpace, InMemoryVectorIndex
from hivegraph.models.embedder import Embedder
from hivegraph.models.testing import HashEmbedder
from hivegraph.registry import VECTOR_STORES


async def _open() -> VectorIndex:
    return InMemoryVectorIndex(HashEmbedder())


@pytest.mark.parametrize("name", checks_for(InMemoryVectorIndex))
async def test_conformance(name: str) -> None:
    await CHECKS[name](_open)


def test_persistence_checks_do_not_apply_to_the_in_memory_index() -> None:
    assert InMemoryVectorIndex.persistent is False
    assert PERSISTENCE_CHECKS.isdisjoint(checks_for(InMemoryVectorIndex))
    assert set(CHECKS) > PERSISTENCE_CHECKS


def _settings(tmp_path: Path) -> HivegraphSettings:
    return HivegraphSettings(
        data_dir=tmp_path,
        embedder=EmbedderSettings(backend="hash", hash=HashEmbedderSettings(dim=24)),
        vector_store=VectorStoreSettings(backend="inmemory"),
    )


def test_from_settings_uses_the_configured_embedder(tmp_path: Path) -> None:
    index = InMemoryVectorIndex.from_settings(_settings(tmp_path))
    assert isinstance(index.embedder, HashEmbedder)
    assert index.embedder.dim == 24


def test_the_registry_names_the_space(tmp_path: Path) -> None:
    space = VECTOR_STORES.load("inmemory").from_settings(_settings(tmp_path))
    assert isinstance(space, InMemorySpace)
    assert isinstance(space.embedder, HashEmbedder)
    assert space.embedder.dim == 24
    assert space.collection("users").embedder is space.embedder


async def test_scores_are_exact_cosines() -> None:
    embedder = HashEmbedder(dim=16)
    index = InMemoryVectorIndex(embedder)
    texts = ["red apples and pears", "red cars drive fast", "pears ripen slowly", "blue sky"]
    await index.upsert([IndexItem(f"i{n}", text) for n, text in enumerate(texts)])
    hits = await index.query("red pears", k=4)
    vectors = np.array(embedder.embed(texts))
    query = np.array(embedder.embed(["red pears"])[0])
    expected = {f"i{n}": float(score) for n, score in enumerate(vectors @ query)}
    assert {hit.id: hit.score for hit in hits} == pytest.approx(expected)
    assert [hit.id for hit in hits] == sorted(expected, key=lambda i: (-expected[i], i))


async def test_nearest_scores_are_exact_cosines_of_any_vector() -> None:
    index = InMemoryVectorIndex(HashEmbedder(dim=4))
    await index.upsert([IndexItem(f"i{n}", f"word{n}") for n in range(6)])
    vectors = np.array(HashEmbedder(dim=4).embed([f"word{n}" for n in range(6)]))
    query = np.array([0.5, -2.0, 1.0, 0.25])
    expected = {f"i{n}": float(score) for n, score in enumerate(vectors @ (query / np.linalg.norm(query)))}
    found = await index.nearest(list(query), k=6)
    assert dict(found) == pytest.approx(expected)
    assert [id_ for id_, _ in found] == sorted(expected, key=lambda i: (-expected[i], i))


async def test_a_repeated_query_is_embedded_once_and_the_cache_is_bounded() -> None:
    embedder = CountingEmbedder(dim=8)
    queries = QueryCache(embedder, size=2)
    index = InMemoryVectorIndex(embedder, queries=queries)
    await index.upsert([IndexItem("a", "apples")])
    embedder.texts.clear()
    await index.query("where does Ada live", k=1)
    assert index.embed_query("where does Ada live") == HashEmbedder(dim=8).embed(["where does Ada live"])[0]
    assert embedder.texts == ["where does Ada live"]
    index.embed_query("b")
    index.embed_query("c")  # evicts the oldest
    await index.query("where does Ada live", k=1)
    assert embedder.texts == ["where does Ada live", "b", "c", "where does Ada live"]


def test_the_default_query_cache_keeps_1024_queries() -> None:
    embedder = CountingEmbedder(dim=4)
    index = InMemoryVectorIndex(embedder)
    for n in range(1025):
        index.embed_query(f"q{n}")
    index.embed_query("q1024")
    index.embed_query("q1")
    index.embed_query("q0")  # the oldest, evicted
    assert embedder.texts[1025:] == ["q0"]


@pytest.mark.parametrize("name", space_checks_for(InMemorySpace))
async def test_space_conformance(name: str) -> None:
    async def open_space(embedder: Embedder) -> VectorSpace:
        return InMemorySpace(embedder)

    await SPACE_CHECKS[name](open_space)


def test_the_in_memory_space_is_not_persistent() -> None:
    assert InMemorySpace.persistent is False
    assert SPACE_PERSISTENCE_CHECKS.isdisjoint(space_checks_for(InMemorySpace))
    assert set(SPACE_CHECKS) > SPACE_PERSISTENCE_CHECKS


async def test_string_ranges_follow_the_reference_semantics() -> None:
    index = InMemoryVectorIndex(HashEmbedder())
    await index.upsert([IndexItem(d, d, {"day": d}) for d in ("2024-01-05", "2024-02-01", "2024-03-09")])
    found = await index.get(where={"day": {"$gte": "2024-01-31", "$lte": "2024-03-01"}})
    assert [item.id for item in found] == ["2024-02-01"]


async def test_returned_items_are_copies() -> None:
    index = InMemoryVectorIndex(HashEmbedder())
    await index.upsert([IndexItem("a", "text", {"k": 1})])
    (item,) = await index.get(["a"])
    item.metadata["k"] = 2  # type: ignore[index]
    (hit,) = await index.query("text", k=1)
    hit.metadata["k"] = 3  # type: ignore[index]
    assert (await index.get(["a"]))[0].metadata == {"k": 1}


class _IgnoresDeletes(InMemoryVectorIndex):
    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        kept = [op for op in ops if not isinstance(op, IndexDeleteOp)]
        return await super().abatch(kept)


class _MergesMetadata(InMemoryVectorIndex):
    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        merged: list[IndexOp] = []
        for op in ops:
            if isinstance(op, IndexUpsertOp):
                old = {item.id: item.metadata for item in await super().get([i.id for i in op.items])}
                op = IndexUpsertOp([IndexItem(i.id, i.text, {**old.get(i.id, {}), **i.metadata}) for i in op.items])
            merged.append(op)
        return await super().abatch(merged)


class _NearestIgnoresFilters(InMemoryVectorIndex):
    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        unfiltered = [IndexNearestOp(op.vector, op.k) if isinstance(op, IndexNearestOp) else op for op in ops]
        return await super().abatch(unfiltered)


class _ReversesResults(InMemoryVectorIndex):
    async def abatch(self, ops: Sequence[IndexOp]) -> list[IndexResult]:
        results = await super().abatch(ops)
        return [list(reversed(r)) if r and isinstance(r, list) else r for r in results]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_IgnoresDeletes, "delete_removes_and_ignores_unknown_ids"),
        (_MergesMetadata, "upsert_replaces_text_metadata_and_vector"),
        (_MergesMetadata, "upsert_with_empty_metadata_clears_it"),
        (_ReversesResults, "query_ranks_exact_text_first"),
        (_ReversesResults, "nearest_ranks_by_cosine"),
        (_NearestIgnoresFilters, "nearest_filters"),
        (_NearestIgnoresFilters, "nearest_agrees_with_query"),
    ],
)
async def test_the_suite_catches_a_broken_backend(broken: type[InMemoryVectorIndex], check: str) -> None:
    async def open_broken() -> VectorIndex:
        return broken(HashEmbedder())

    with pytest.raises(AssertionError):
        await CHECKS[check](open_broken)


class _Unshared(InMemorySpace):
    """Each collection with a query cache of its own, and dropped collections still listed."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(embedder)
        self.own: dict[str, InMemoryVectorIndex] = {}

    def collection(self, name: str) -> InMemoryVectorIndex:
        return self.own.setdefault(name, InMemoryVectorIndex(self.embedder))

    async def names(self) -> list[str]:
        return sorted(self.own)


@pytest.mark.parametrize("check", ["embed_query_is_cached_across_collections", "names_follow_writes_and_drops"])
async def test_the_space_suite_catches_a_broken_space(check: str) -> None:
    async def open_broken(embedder: Embedder) -> VectorSpace:
        return _Unshared(embedder)

    with pytest.raises(AssertionError):
        await SPACE_CHECKS[check](open_broken)
