"""The in-memory reference index: the conformance suite, plus what only the reference promises."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hivegraph.config import EmbedderSettings, HashEmbedderSettings, HivegraphSettings, VectorStoreSettings
from hivegraph.memory.conformance import CHECKS, PERSISTENCE_CHECKS, checks_for
from hivegraph.memory.stores.base import (
    IndexDeleteOp,
    IndexItem,
    IndexOp,
    IndexResult,
    IndexUpsertOp,
    VectorIndex,
)
from hivegraph.memory.stores.inmemory import InMemoryVectorIndex
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


def test_from_settings_uses_the_configured_embedder(tmp_path: Path) -> None:
    settings = HivegraphSettings(
        data_dir=tmp_path,
        embedder=EmbedderSettings(backend="hash", hash=HashEmbedderSettings(dim=24)),
        vector_store=VectorStoreSettings(backend="inmemory"),
    )
    index = VECTOR_STORES.load("inmemory").from_settings(settings)
    assert isinstance(index, InMemoryVectorIndex)
    assert isinstance(index.embedder, HashEmbedder)
    assert index.embedder.dim == 24


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
    ],
)
async def test_the_suite_catches_a_broken_backend(broken: type[InMemoryVectorIndex], check: str) -> None:
    async def open_broken() -> VectorIndex:
        return broken(HashEmbedder())

    with pytest.raises(AssertionError):
        await CHECKS[check](open_broken)
