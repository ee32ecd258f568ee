"""Turning memory records into vector-index items and back, losslessly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hivegraph.memory.stores.base import Filter, IndexItem
from hivegraph.memory.types import MemoryKind, MemoryRecord, Scalar, Scope

OPEN = 2**63 - 1
"""`valid_to` stored for a current version (index metadata cannot hold None; a far end keeps range filters simple).

Times are integer microseconds since the epoch, so `as_of` boundaries are exact."""
SCOPE_PREFIX = "scope_"
META_PREFIX = "meta_"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt(value: Scalar | None) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value or 0))


def to_item(record: MemoryRecord) -> IndexItem:
    """The index item of one record version; scope and times become filterable metadata."""
    metadata: dict[str, Scalar] = {
        "record_id": str(record.id),
        "kind": record.kind,
        "version": record.version,
        "current": record.is_current,
        "hash": record.hash,
        "created_at": micros(record.created_at),
        "updated_at": micros(record.updated_at),
        "valid_from": micros(record.valid_from),
        "valid_to": micros(record.valid_to) if record.valid_to is not None else OPEN,
        "source": record.source.model_dump_json(exclude_defaults=True),
    }
    metadata |= {SCOPE_PREFIX + name: value for name, value in record.scope.fields().items()}
    metadata |= {META_PREFIX + key: value for key, value in record.metadata.items()}
    return IndexItem(id=record.version_id, text=record.text, metadata=metadata)


def from_item(item: IndexItem) -> MemoryRecord:
    """The record version an index item holds."""
    meta = item.metadata
    valid_to = int(meta.get("valid_to", OPEN))
    kind: MemoryKind = meta["kind"]  # type: ignore[assignment]
    fields: dict[str, Any] = {
        "id": UUID(str(meta["record_id"])),
        "kind": kind,
        "text": item.text,
        "metadata": {k.removeprefix(META_PREFIX): v for k, v in meta.items() if k.startswith(META_PREFIX)},
        "scope": {k.removeprefix(SCOPE_PREFIX): str(v) for k, v in meta.items() if k.startswith(SCOPE_PREFIX)},
        "created_at": _dt(meta.get("created_at")),
        "updated_at": _dt(meta.get("updated_at")),
        "valid_from": _dt(meta.get("valid_from")),
        "valid_to": None if valid_to == OPEN else _dt(valid_to),
        "version": int(meta.get("version", 1)),
        "source": json.loads(str(meta.get("source") or "{}")),
        "hash": str(meta.get("hash", "")),
    }
    return MemoryRecord.model_validate(fields, context={"stored": True})


def scope_filter(
    scope: Scope,
    *,
    current: bool | None = True,
    kinds: tuple[MemoryKind, ...] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Filter:
    """The index filter that keeps a read inside `scope` (and to current versions by default)."""
    where: dict[str, Any] = {SCOPE_PREFIX + name: value for name, value in scope.fields().items()}
    if current is not None:
        where["current"] = current
    if kinds:
        where["kind"] = kinds[0] if len(kinds) == 1 else {"$in": list(kinds)}
    if extra:
        where |= dict(extra)
    return where
