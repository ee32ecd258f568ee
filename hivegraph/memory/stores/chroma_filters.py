"""Translate hivegraph filters (see `hivegraph.memory.stores.base`) to Chroma `where` clauses.

What Chroma supports, and therefore what `ChromaVectorIndex` accepts:

- equality, `$ne` and `$in` on str, int, float and bool values; `$in` may mix
  types (it becomes an `$or` of one `$in` per type);
- `$gte` and `$lte` on numbers only (Chroma rejects string ranges: those raise
  `MemoryStoreError`);
- `$ne` matches items that lack the key, as in the reference semantics;
- `$in` with an empty list matches nothing (Chroma would reject it, so the
  translation says `impossible` and the index answers without asking Chroma);
- values compare only with values of the same kind: `True` does not equal `1`
  in Chroma, although it does in Python (the reference); int and float compare
  numerically.

Chroma 1.5 truncates a fractional float operand toward zero when it compares
it with int values (`{"n": {"$gte": 1.5}}` admits `n = 1`, `{"n": 1.5}` admits
`n = 1`). The translation adds a clause that excludes (or, for `$ne`, admits)
that truncated value, which gives Python's numeric semantics for both int and
float values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.stores.base import FILTER_OPERATORS, Condition, Filter
from hivegraph.memory.types import Scalar

Clause = dict[str, Any]


@dataclass(frozen=True)
class ChromaWhere:
    """A translated filter."""

    clause: Clause | None
    """The Chroma `where` argument; None when nothing is filtered."""
    impossible: bool = False
    """The filter matches nothing and cannot be sent to Chroma (`$in: []`)."""


def chroma_where(where: Filter | None) -> ChromaWhere:
    """Translate `where` to Chroma.

    Raises:
        ValueError: an unknown operator or a malformed operand.
        MemoryStoreError: a filter Chroma cannot express (a range over strings).

    """
    clauses = [clause for key, cond in (where or {}).items() for clause in _key_clauses(key, cond)]
    if any(clause is None for clause in clauses):
        return ChromaWhere(clause=None, impossible=True)
    return ChromaWhere(clause=_all_of([clause for clause in clauses if clause is not None]))


def _key_clauses(key: str, cond: Condition) -> list[Clause | None]:
    if not isinstance(cond, Mapping):
        return [_compare(key, "$eq", cond)]
    return [_operator_clause(key, op, arg) for op, arg in cond.items()]


def _operator_clause(key: str, op: str, arg: Scalar | Sequence[Scalar]) -> Clause | None:
    if op not in FILTER_OPERATORS:
        raise ValueError(f"unknown filter operator {op!r}; allowed: {sorted(FILTER_OPERATORS)}")
    if op == "$in":
        if not _is_list(arg):
            raise ValueError(f"filter on {key!r}: $in needs a list of values, got {arg!r}")
        return _in_clause(key, list(arg))  # type: ignore[arg-type]
    if not isinstance(arg, str | int | float | bool):
        raise ValueError(f"filter on {key!r}: {op} needs a single value, got {arg!r}")
    if op in ("$gte", "$lte") and (isinstance(arg, bool) or not isinstance(arg, int | float)):
        raise MemoryStoreError(f"filter on {key!r}: Chroma compares {op} on numbers only, got {arg!r}")
    return _compare(key, op, arg)


def _compare(key: str, op: str, value: Scalar) -> Clause:
    """`{key: {op: value}}`, corrected for Chroma truncating a fractional float against ints."""
    clause: Clause = {key: {op: value}}
    if not _fractional(value):
        return clause
    cut = math.trunc(value)
    if op == "$eq" or (op == "$gte" and cut < value) or (op == "$lte" and cut > value):
        return {"$and": [clause, {key: {"$ne": cut}}]}
    if op == "$ne":
        return {"$or": [clause, {key: {"$eq": cut}}]}
    return clause


def _in_clause(key: str, values: list[Scalar]) -> Clause | None:
    if not values:
        return None
    fractional = [value for value in values if _fractional(value)]
    by_type: dict[type, list[Scalar]] = {}
    for value in values:
        if not _fractional(value):
            by_type.setdefault(type(value), []).append(value)
    clauses: list[Clause] = [{key: {"$in": group}} for group in by_type.values()]
    if fractional:
        cuts = sorted({math.trunc(value) for value in fractional})
        clauses.append({"$and": [{key: {"$in": fractional}}, {key: {"$nin": cuts}}]})
    if len(clauses) == 1:
        return clauses[0]
    return {"$or": clauses}


def _all_of(clauses: list[Clause]) -> Clause | None:
    if not clauses:
        return None
    if len(clauses) == 1:
        return clauses[0]
    return {"$and": clauses}


def _fractional(value: object) -> TypeGuard[float]:
    return isinstance(value, float) and math.isfinite(value) and not value.is_integer()


def _is_list(arg: object) -> bool:
    return isinstance(arg, Sequence) and not isinstance(arg, str)
