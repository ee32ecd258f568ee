"""Translating hivegraph filters to Chroma `where` clauses (no Chroma needed)."""

from __future__ import annotations

import pytest

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.stores.base import Filter
from hivegraph.memory.stores.chroma_filters import ChromaWhere, chroma_where


@pytest.mark.parametrize(
    ("where", "clause"),
    [
        (None, None),
        ({}, None),
        ({"kind": "fact"}, {"kind": {"$eq": "fact"}}),
        ({"kind": "fact", "n": {"$ne": 2}}, {"$and": [{"kind": {"$eq": "fact"}}, {"n": {"$ne": 2}}]}),
        ({"n": {"$gte": 1, "$lte": 3}}, {"$and": [{"n": {"$gte": 1}}, {"n": {"$lte": 3}}]}),
        ({"n": {"$in": [1, "one", 2]}}, {"$or": [{"n": {"$in": [1, 2]}}, {"n": {"$in": ["one"]}}]}),
        ({"n": {"$gte": 1.5}}, {"$and": [{"n": {"$gte": 1.5}}, {"n": {"$ne": 1}}]}),
        ({"n": {"$gte": -1.5}}, {"n": {"$gte": -1.5}}),
        ({"n": {"$lte": -1.5}}, {"$and": [{"n": {"$lte": -1.5}}, {"n": {"$ne": -1}}]}),
        ({"n": 2.5}, {"$and": [{"n": {"$eq": 2.5}}, {"n": {"$ne": 2}}]}),
        ({"n": {"$ne": 2.5}}, {"$or": [{"n": {"$ne": 2.5}}, {"n": {"$eq": 2}}]}),
        ({"n": 2.0}, {"n": {"$eq": 2.0}}),
        (
            {"n": {"$in": [0.5, 2.0]}},
            {"$or": [{"n": {"$in": [2.0]}}, {"$and": [{"n": {"$in": [0.5]}}, {"n": {"$nin": [0]}}]}]},
        ),
    ],
)
def test_translation(where: Filter | None, clause: dict[str, object] | None) -> None:
    assert chroma_where(where) == ChromaWhere(clause=clause)


def test_an_empty_in_list_is_impossible_rather_than_sent() -> None:
    assert chroma_where({"kind": "fact", "n": {"$in": []}}).impossible


def test_an_unknown_operator_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"\$regex"):
        chroma_where({"n": {"$regex": "x"}})


@pytest.mark.parametrize("where", [{"n": {"$in": 3}}, {"n": {"$ne": [1, 2]}}])
def test_malformed_operands_are_value_errors(where: Filter) -> None:
    with pytest.raises(ValueError, match="'n'"):
        chroma_where(where)


@pytest.mark.parametrize("bound", ["2024-01-01", True])
def test_ranges_over_non_numbers_are_refused(bound: object) -> None:
    with pytest.raises(MemoryStoreError, match="numbers only"):
        chroma_where({"day": {"$gte": bound}})  # type: ignore[dict-item]
