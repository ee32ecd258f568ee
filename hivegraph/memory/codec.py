"""Turning memory records into vector-index items and back, losslessly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from hivegraph.memory.stores.base import Filter, IndexItem
from hivegraph.memory.types import MemoryKind, MemoryRecord, Scalar, Scope, Source

OPEN = 1e18
"""`valid_to` stored for a current version (index metadata cannot hold None; a far end keeps range filters simple)."""
SCOPE_PREFIX = "scope_"
META_PREFIX = "meta_"


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: Scalar | None) -> datetime:
    return datetime.fromtimestamp(float(value or 0.0), tz=UTC)


def to_item(record: MemoryRecord) -> IndexItem:
    """The index item of one record version; scope and times become filterable metadata."""
    metadata: dict[str, Scalar] = {
        "record_id": str(record.id),
        "kind": record.kind,
        "version": record.version,
        "current": record.is_current,
        "hash": record.hash,
        "created_at": _ts(record.created_at),
        "updated_at": _ts(record.updated_at),
        "valid_from": _ts(record.valid_from),
        "valid_to": _ts(record.valid_to) if record.valid_to is not None else OPEN,
        "source": record.source.model_dump_json(exclude_defaults=True),
    }
    metadata |= {SCOPE_PREFIX + name: value for name, value in record.scope.fields().items()}
    metadata |= {META_PREFIX + key: value for key, value in record.metadata.items()}
    return IndexItem(id=record.version_id, text=record.text, metadata=metadata)


def from_item(item: IndexItem) -> MemoryRecord:
    """The record version an index item holds."""
    meta = item.metadata
    valid_to = float(meta.get("valid_to", OPEN))
    kind: MemoryKind = meta["kind"]  # type: ignore[assignment]
    return MemoryRecord(
        id=UUID(str(meta["record_id"])),
        kind=kind,
        text=item.text,
        metadata={k.removeprefix(META_PREFIX): v for k, v in meta.items() if k.startswith(META_PREFIX)},
        scope=Scope(**{k.removeprefix(SCOPE_PREFIX): str(v) for k, v in meta.items() if k.startswith(SCOPE_PREFIX)}),
        created_at=_dt(meta.get("created_at")),
        updated_at=_dt(meta.get("updated_at")),
        valid_from=_dt(meta.get("valid_from")),
        valid_to=None if valid_to == OPEN else _dt(valid_to),
        version=int(meta.get("version", 1)),
        source=Source.model_validate(json.loads(str(meta.get("source") or "{}"))),
        hash=str(meta.get("hash", "")),
    )


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
