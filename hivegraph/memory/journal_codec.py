"""Reading stored journal rows back, tolerating rows that an older, laxer version wrote.

Rows are validated as they are written, so a row that no longer parses was
written before a check existed (a NaN metadata value stored as `null`, say).
Such a row must not stop the journal from opening: the offending metadata
values are dropped (they were never readable), and a row that still does not
parse is reported as `Unreadable` and left out of reads. `verify` lists both.
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

from pydantic import ValidationError

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.codec import OPEN as OPEN_US
from hivegraph.memory.codec import micros
from hivegraph.memory.journal import JournalEntry, Unreadable
from hivegraph.memory.types import MemoryRecord

STORED = {"stored": True}
"""Validation context for rows read back: the write-time checks are not repeated."""
__all__ = ["OPEN_US", "STORED", "decode_entry", "decode_version", "micros"]


def decode_entry(seq: int, body: str) -> JournalEntry | Unreadable:
    """The entry stored at `seq`, or why it cannot be read."""
    try:
        entry = JournalEntry.model_validate_json(body, context=STORED)
    except (ValidationError, MemoryStoreError, ValueError) as exc:
        salvaged = _salvage(body, exc)
        if isinstance(salvaged, Unreadable):
            return Unreadable(f"op {seq}", salvaged.problem)
        entry = JournalEntry.model_validate(salvaged, context=STORED)
    return entry.model_copy(update={"seq": seq})


def decode_version(where: str, body: str) -> MemoryRecord | Unreadable:
    """The record version stored as `body`, or why it cannot be read."""
    try:
        return MemoryRecord.model_validate_json(body, context=STORED)
    except (ValidationError, MemoryStoreError, ValueError) as exc:
        salvaged = _salvage(body, exc, record=True)
        if isinstance(salvaged, Unreadable):
            return Unreadable(where, salvaged.problem)
        return MemoryRecord.model_validate(salvaged, context=STORED)


def _salvage(body: str, exc: Exception, *, record: bool = False) -> dict[str, Any] | Unreadable:
    """`body` with unreadable metadata values dropped, if that makes it valid."""
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            return Unreadable("", "not a JSON object")
        parsed = cast(dict[str, Any], data)
        for part in [parsed] if record else [parsed.get("op"), parsed.get("before"), parsed.get("after")]:
            _drop_bad_metadata(part)
        (MemoryRecord if record else JournalEntry).model_validate(parsed, context=STORED)
    except (ValidationError, MemoryStoreError, ValueError, TypeError):
        return Unreadable("", f"does not parse: {str(exc).splitlines()[0]:.200}")
    return parsed


def _drop_bad_metadata(part: object) -> None:
    if not isinstance(part, dict):
        return
    metadata = cast(dict[str, Any], part).get("metadata")
    if not isinstance(metadata, dict):
        return
    values = cast(dict[str, Any], metadata)
    for key in [k for k, v in values.items() if not _scalar(v)]:
        del values[key]


def _scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)
