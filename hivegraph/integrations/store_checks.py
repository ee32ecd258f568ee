"""Checks of what LangGraph's store calls carry, raising hivegraph errors.

`BaseStore`'s convenience methods check namespace labels themselves and raise
LangGraph's `InvalidNamespaceError`. `NamespaceCheckedStore` overrides them to
check first, with the same rules, and raise `StoreNamespaceError`, which is both
that error and hivegraph's `InvalidInputError`; then they defer to `BaseStore`
unchanged. `check_op` refuses a raw op (as `abatch` receives) that a store
cannot run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    NamespacePath,
    NotProvided,
    Op,
    PutOp,
    SearchItem,
    SearchOp,
)

from hivegraph.errors import InvalidInputError
from hivegraph.integrations.store_mapping import StoreNamespaceError, check_namespace


def check_put_namespace(namespace: object) -> tuple[str, ...]:
    """A namespace an item may be put in: checked labels, and not under LangGraph's reserved root.

    Raises:
        StoreNamespaceError: it is empty, a label is bad, or its root label is "langgraph".

    """
    labels = check_namespace(namespace)
    if labels[0] == "langgraph":
        raise StoreNamespaceError(namespace, 'the root label "langgraph" is reserved by LangGraph')
    return labels


def check_op(op: Op) -> None:
    """Refuse an op the store cannot run, before any op of the batch runs.

    Raises:
        StoreNamespaceError: a bad namespace.
        InvalidInputError: a key that is not a string, a TTL, a negative limit or offset, an unknown op.

    """
    match op:
        case GetOp() | PutOp():
            check_namespace(op.namespace)
            if not isinstance(op.key, str):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise InvalidInputError("key", f"must be a string, not {type(op.key).__name__}")
            if isinstance(op, PutOp) and op.ttl is not None:
                raise InvalidInputError("ttl", "hivegraph memory keeps every version; items cannot expire")
        case SearchOp():
            check_namespace(op.namespace_prefix, allow_empty=True)
            _check_page(op.limit, op.offset)
        case ListNamespacesOp():
            for condition in op.match_conditions or ():
                check_namespace(condition.path, allow_empty=True)
            _check_page(op.limit, op.offset)
            if op.max_depth is not None and op.max_depth < 0:
                raise InvalidInputError("max_depth", f"must be >= 0, not {op.max_depth}")
        case _:  # pyright: ignore[reportUnnecessaryComparison]
            raise InvalidInputError("op", f"unknown store operation {type(op).__name__}")


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise InvalidInputError("limit", f"limit and offset must be >= 0, not {limit} and {offset}")


def _check_path(path: NamespacePath | None) -> None:
    if path is not None:
        check_namespace(path, allow_empty=True)


class NamespaceCheckedStore(BaseStore):
    """A `BaseStore` whose convenience methods raise `StoreNamespaceError` for a bad namespace."""

    def get(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None) -> Item | None:
        """`BaseStore.get`, the namespace checked first."""
        check_namespace(namespace)
        return super().get(namespace, key, refresh_ttl=refresh_ttl)

    async def aget(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None) -> Item | None:
        """`BaseStore.aget`, the namespace checked first."""
        check_namespace(namespace)
        return await super().aget(namespace, key, refresh_ttl=refresh_ttl)

    def search(
        self, namespace_prefix: tuple[str, ...], /, *, query: str | None = None, filter: dict[str, Any] | None = None,
        limit: int = 10, offset: int = 0, refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:  # fmt: skip
        """`BaseStore.search`, the prefix checked first."""
        check_namespace(namespace_prefix, allow_empty=True)
        return super().search(
            namespace_prefix, query=query, filter=filter, limit=limit, offset=offset, refresh_ttl=refresh_ttl
        )

    async def asearch(
        self, namespace_prefix: tuple[str, ...], /, *, query: str | None = None, filter: dict[str, Any] | None = None,
        limit: int = 10, offset: int = 0, refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:  # fmt: skip
        """`BaseStore.asearch`, the prefix checked first."""
        check_namespace(namespace_prefix, allow_empty=True)
        return await super().asearch(
            namespace_prefix, query=query, filter=filter, limit=limit, offset=offset, refresh_ttl=refresh_ttl
        )

    def put(
        self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None, *, ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:  # fmt: skip
        """`BaseStore.put`, the namespace checked first."""
        check_put_namespace(namespace)
        super().put(namespace, key, value, index, ttl=ttl)

    async def aput(
        self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None, *, ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:  # fmt: skip
        """`BaseStore.aput`, the namespace checked first."""
        check_put_namespace(namespace)
        await super().aput(namespace, key, value, index, ttl=ttl)

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        """`BaseStore.delete`, the namespace checked first."""
        check_namespace(namespace)
        super().delete(namespace, key)

    async def adelete(self, namespace: tuple[str, ...], key: str) -> None:
        """`BaseStore.adelete`, the namespace checked first."""
        check_namespace(namespace)
        await super().adelete(namespace, key)

    def list_namespaces(
        self, *, prefix: NamespacePath | None = None, suffix: NamespacePath | None = None,
        max_depth: int | None = None, limit: int = 100, offset: int = 0,
    ) -> list[tuple[str, ...]]:  # fmt: skip
        """`BaseStore.list_namespaces`, the prefix and suffix checked first."""
        _check_path(prefix)
        _check_path(suffix)
        return super().list_namespaces(prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset)

    async def alist_namespaces(
        self, *, prefix: NamespacePath | None = None, suffix: NamespacePath | None = None,
        max_depth: int | None = None, limit: int = 100, offset: int = 0,
    ) -> list[tuple[str, ...]]:  # fmt: skip
        """`BaseStore.alist_namespaces`, the prefix and suffix checked first."""
        _check_path(prefix)
        _check_path(suffix)
        return await super().alist_namespaces(
            prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset
        )
