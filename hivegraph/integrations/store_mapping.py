"""How a LangGraph store item lives in hivegraph memory: its namespace as a scope, its value in record metadata.

The mapping (`NamespaceMap`):

- **Scope.** A namespace starts with zero or more *scope pairs*, a scope label
  then a value: `("users", "u1", ...)` sets `user_id="u1"`, and `agents`,
  `teams`, `runs` set `agent_id`, `team_id`, `run_id` (the labels are
  configurable). Pairs are read from the left and stop at the first label that
  is not a scope label, whose field an earlier pair set, or whose value is
  `"*"`. The item's scope is the store's own scope plus these fields; a pair
  that contradicts the store's scope is refused. So `("users", "u1", "prefs")`
  lives in `Scope(user_id="u1")` and hivegraph's own readers of that user see it.
- **Path.** The whole namespace (scope pairs included) and the key are kept in
  the record's metadata, so the namespace reads back exactly as it was written.
- **Value.** The value is stored as ASCII JSON in the record's metadata (split
  into chunks of `MAX_STRING_VALUE_CHARS`), so it round-trips exactly, whatever
  the text limits. The record's *text* is what search ranks: the fields the put
  asked to index (LangGraph's `index`), by default the whole value as JSON, cut
  to the memory's text limit; with `index=False` only the namespace and key.
- **Identity.** The record id of an item is derived from its scope, namespace,
  key and *generation*: a put of a new key adds generation 0, later puts update
  that record (a journaled UPDATE, so history and undo work), a delete closes it,
  and a put after a delete adds the next generation (a closed record id cannot
  be taken again).
- **Ownership.** A record is an item of a store when it is of the store's kind,
  carries the metadata above, and its scope is exactly the one its namespace
  maps to; other memories in the same scope are not items.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import NAMESPACE_URL, UUID, uuid5

from langgraph.store.base import InvalidNamespaceError, Item, MatchCondition
from langgraph.store.base.embed import get_text_at_path

from hivegraph.errors import InvalidInputError
from hivegraph.memory.types import SCOPE_FIELDS, MemoryRecord, Scalar, Scope
from hivegraph.memory.validation import MAX_METADATA_KEYS, MAX_STRING_VALUE_CHARS

NAMESPACE = "lg_namespace"
"""Metadata key: the namespace, as a JSON list."""
KEY = "lg_key"
"""Metadata key: the item key, as a JSON string."""
CHUNKS = "lg_chunks"
"""Metadata key: how many value chunks (`lg_value_0`, ...) hold the value's JSON."""
INDEXED = "lg_indexed"
"""Metadata key: False when the put asked not to index the item (`index=False`)."""
MAX_CHUNKS = MAX_METADATA_KEYS - 4
MAX_VALUE_CHARS = MAX_CHUNKS * MAX_STRING_VALUE_CHARS
"""The longest value, in characters of ASCII JSON."""
SCOPE_LABELS: Mapping[str, str] = {"users": "user_id", "agents": "agent_id", "teams": "team_id", "runs": "run_id"}
"""The default scope labels: a namespace `("users", "u1", ...)` is in `user_id="u1"`."""
_IDS = uuid5(NAMESPACE_URL, "hivegraph:langgraph-store")
_COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
OPERATORS = ("$eq", "$ne", *_COMPARISONS)
"""The filter operators `search` understands (as LangGraph's `InMemoryStore`)."""


class StoreNamespaceError(InvalidInputError, InvalidNamespaceError):
    """A namespace that cannot be stored: empty, a label that is not a non-empty string, or one with '.'.

    It is both hivegraph's `InvalidInputError` and LangGraph's `InvalidNamespaceError`.
    """

    def __init__(self, namespace: object, message: str) -> None:
        super().__init__("namespace", f"{namespace!r}: {message}")
        self.namespace = namespace


def value_chunk(n: int) -> str:
    """Metadata key of the n-th chunk of the value's JSON."""
    return f"lg_value_{n}"


def check_namespace(namespace: object, *, allow_empty: bool = False) -> tuple[str, ...]:
    """`namespace` as a tuple of labels, checked as LangGraph checks them.

    Raises:
        StoreNamespaceError: not a tuple of strings, empty (unless allowed), or a label empty or with '.' or NUL.

    """
    if not isinstance(namespace, tuple):
        raise StoreNamespaceError(namespace, f"must be a tuple of strings, not {type(namespace).__name__}")
    labels = cast(tuple[object, ...], namespace)
    if not labels and not allow_empty:
        raise StoreNamespaceError(labels, "is empty; a namespace needs at least one label")
    for label in labels:
        if not isinstance(label, str):
            raise StoreNamespaceError(labels, f"label {label!r} is a {type(label).__name__}, not a string")
        if not label:
            raise StoreNamespaceError(labels, "has an empty label")
        if "." in label or "\x00" in label:
            raise StoreNamespaceError(labels, f"label {label!r} contains '.' or NUL, which LangGraph forbids")
    return cast(tuple[str, ...], labels)


@dataclass(frozen=True)
class NamespaceMap:
    """Which scope each namespace lives in, for a store bound to `base`."""

    base: Scope = field(default_factory=Scope)
    labels: Mapping[str, str] = field(default_factory=lambda: dict(SCOPE_LABELS))

    def __post_init__(self) -> None:
        """Check that every scope label names a scope field.

        Raises:
            InvalidInputError: a label maps to something that is not a scope field.

        """
        wrong = {k: v for k, v in self.labels.items() if v not in SCOPE_FIELDS}
        if wrong:
            raise InvalidInputError("scope_labels", f"{wrong} name no scope field; choose from {SCOPE_FIELDS}")

    def pairs(self, namespace: Sequence[str]) -> dict[str, str]:
        """The scope fields the leading scope pairs of `namespace` set."""
        found: dict[str, str] = {}
        for i in range(0, len(namespace) - 1, 2):
            name, value = self.labels.get(namespace[i]), namespace[i + 1]
            if name is None or name in found or value == "*":
                break
            found[name] = value
        return found

    def scope(self, namespace: Sequence[str]) -> Scope:
        """The scope the items of `namespace` (or of every namespace it is a prefix of) live in.

        Raises:
            StoreNamespaceError: a scope pair contradicts the store's own scope.
            InvalidInputError: a scope value is too long to be a scope field.

        """
        fields = self.base.fields()
        for name, value in self.pairs(namespace).items():
            if fields.get(name, value) != value:
                raise StoreNamespaceError(
                    tuple(namespace), f"sets {name}={value!r}, but this store is bound to {self.base}"
                )
            fields[name] = value
        return Scope(**fields)

    def owns(self, record: MemoryRecord, kind: str) -> tuple[tuple[str, ...], str] | None:
        """The (namespace, key) of `record` when it is an item of this store, else None."""
        meta = record.metadata
        ns, key = meta.get(NAMESPACE), meta.get(KEY)
        if record.kind != kind or not isinstance(ns, str) or not isinstance(key, str) or CHUNKS not in meta:
            return None
        try:
            labels: object = json.loads(ns)
            decoded: object = json.loads(key)
            namespace = check_namespace(tuple(cast(list[object], labels))) if isinstance(labels, list) else None
            if namespace is None or not isinstance(decoded, str) or self.scope(namespace) != record.scope:
                return None
        except (ValueError, InvalidInputError):
            return None
        return namespace, decoded


def record_id(scope: Scope, namespace: Sequence[str], key: str, generation: int) -> UUID:
    """The id of the record that holds generation `generation` of an item."""
    name = json.dumps([scope.fields(), list(namespace), key, generation], ensure_ascii=True, sort_keys=True)
    return uuid5(_IDS, name)


def encode_value(value: object) -> list[str]:
    """The value as ASCII JSON, in chunks that each fit a metadata string.

    Raises:
        InvalidInputError: not a mapping of JSON values (string keys, finite numbers), or too large.

    """
    if not isinstance(value, Mapping):
        raise InvalidInputError("value", f"must be a mapping (a JSON object), not {type(value).__name__}")
    _check_json(cast(Mapping[object, object], value), "value")
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidInputError("value", f"is {len(text)} characters of JSON, over the limit of {MAX_VALUE_CHARS}")
    return [text[i : i + MAX_STRING_VALUE_CHARS] for i in range(0, len(text), MAX_STRING_VALUE_CHARS)] or ["{}"]


def _check_json(value: object, where: str) -> None:
    """Refuse what JSON would not give back as it was (tuples, non-string keys, NaN, other objects)."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(where, f"must be a finite number, not {value}")
        return
    if isinstance(value, list):
        for n, item in enumerate(cast(list[object], value)):
            _check_json(item, f"{where}[{n}]")
        return
    if isinstance(value, Mapping):
        for key, item in cast(Mapping[object, object], value).items():
            if not isinstance(key, str):
                raise InvalidInputError(where, f"key {key!r} is not a string (JSON would turn it into one)")
            _check_json(item, f"{where}.{key}")
        return
    raise InvalidInputError(where, f"a {type(value).__name__} is not a JSON value (use a list for a tuple)")


def metadata(
    namespace: Sequence[str], key: str, chunks: Sequence[str], *, indexed: bool, stale: int = 0
) -> dict[str, Scalar]:
    """The record metadata of an item; `stale` chunks of an older, longer value are blanked.

    Raises:
        InvalidInputError: the namespace or key is too long to keep.

    """
    meta: dict[str, Scalar] = {
        NAMESPACE: json.dumps(list(namespace), ensure_ascii=True),
        KEY: json.dumps(key, ensure_ascii=True),
        CHUNKS: len(chunks),
        INDEXED: indexed,
    }
    for name in (NAMESPACE, KEY):
        if len(cast(str, meta[name])) > MAX_STRING_VALUE_CHARS:
            raise InvalidInputError(name.removeprefix("lg_"), f"is over {MAX_STRING_VALUE_CHARS} characters as JSON")
    meta |= {value_chunk(n): chunk for n, chunk in enumerate(chunks)}
    meta |= {value_chunk(n): "" for n in range(len(chunks), stale)}
    return meta


def chunk_count(record: MemoryRecord) -> int:
    """How many value chunks a record's metadata holds."""
    count = record.metadata.get(CHUNKS, 0)
    return count if isinstance(count, int) else 0


def decode(record: MemoryRecord, namespace: tuple[str, ...], key: str) -> Item:
    """The LangGraph item a record holds."""
    text = "".join(str(record.metadata.get(value_chunk(n), "")) for n in range(chunk_count(record)))
    return Item(
        value=json.loads(text), key=key, namespace=namespace,
        created_at=record.created_at, updated_at=record.updated_at,
    )  # fmt: skip


def item_text(
    namespace: Sequence[str], key: str, value: Mapping[str, Any], fields: Sequence[str] | None, *, max_chars: int
) -> str:
    """What search ranks an item by: the text at `fields` (None: the whole value as JSON), cut to `max_chars`.

    With no field text (`fields` empty, or naming nothing), the namespace path and key.
    """
    paths = ["$"] if fields is None else list(fields)
    text = "\n".join(t for path in paths for t in get_text_at_path(value, path))
    if not text.strip():
        text = "/".join([*namespace, key])
    text = text.encode("utf-8", "replace").decode("utf-8")[:max_chars]  # a lone surrogate cannot be journaled
    return text if text.strip() else "/".join([*namespace, key])[:max_chars]


def matches_namespace(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """Whether `namespace` starts (prefix) or ends (suffix) with the condition's path; `"*"` matches any label."""
    path = condition.path
    if len(namespace) < len(path):
        return False
    ends = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path) :]
    return all(want in ("*", have) for want, have in zip(path, ends, strict=True))


def matches_filter(value: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
    """Whether an item's value satisfies a LangGraph filter.

    A filter maps a field (or a dotted path into nested objects) to a value it
    must equal (JSON equality: `True` is not `1`; objects and lists compare
    field by field) or to operators: `$eq`, `$ne`, and `$gt`, `$gte`, `$lt`,
    `$lte`, which compare numbers with numbers and strings with strings (a
    missing field or a value of another type never matches them).

    Raises:
        InvalidInputError: an operator is not one of `OPERATORS`.

    """
    return all(_compare(_lookup(value, name), want) for name, want in (where or {}).items())


def _lookup(value: Mapping[str, Any], name: str) -> Any:
    if name in value or "." not in name:
        return value.get(name)
    found: Any = value
    for part in name.split("."):
        if not isinstance(found, Mapping):
            return None
        found = cast(Mapping[str, Any], found).get(part)
    return found


def _compare(have: Any, want: Any) -> bool:
    if isinstance(want, Mapping):
        conditions = cast(Mapping[str, Any], want)
        if any(str(k).startswith("$") for k in conditions):
            return all(_operator(have, op, arg) for op, arg in conditions.items())
        if not isinstance(have, Mapping):
            return False
        nested = cast(Mapping[str, Any], have)
        return all(_compare(nested.get(k), v) for k, v in conditions.items())
    if isinstance(want, list | tuple):
        wanted = cast(Sequence[Any], want)
        if not isinstance(have, list | tuple):
            return False
        items = cast(Sequence[Any], have)
        return len(items) == len(wanted) and all(_compare(h, w) for h, w in zip(items, wanted, strict=True))
    return _same(have, want)


def _same(have: Any, want: Any) -> bool:
    if isinstance(have, bool) or isinstance(want, bool):
        return isinstance(have, bool) and isinstance(want, bool) and have == want
    if isinstance(have, list | tuple | Mapping):
        return False  # `want` is a scalar here: `_compare` handled lists and objects
    return bool(have == want)


def _operator(have: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return _compare(have, arg)
    if op == "$ne":
        return not _compare(have, arg)
    if op not in _COMPARISONS:
        raise InvalidInputError("filter", f"unknown operator {op!r}; supported: {', '.join(OPERATORS)}")
    both_numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (have, arg))
    if not (both_numbers or (isinstance(have, str) and isinstance(arg, str))):
        return False
    match op:
        case "$gt":
            return bool(have > arg)
        case "$gte":
            return bool(have >= arg)
        case "$lt":
            return bool(have < arg)
        case _:
            return bool(have <= arg)
