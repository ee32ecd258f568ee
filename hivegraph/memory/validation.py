"""Checks that keep a value the journal cannot store faithfully from ever reaching it.

Every check raises `InvalidInputError` naming the field, so a caller learns
what was wrong and nothing half-written is left behind. The limits are wide
enough for any real memory and narrow enough that one caller cannot make every
other caller's reads slow or fail.

Choices, and why:
    - Metadata values are finite JSON scalars. NaN and infinity have no JSON
      form (they would be journaled as `null` and poison every later read), and
      integers outside 64 bits fit neither SQLite, PostgreSQL nor Chroma.
    - Text must encode as UTF-8: a lone surrogate (from a broken decode) fails
      in every store's driver, so it is refused where it enters.
    - Naive datetimes are refused rather than guessed: local time and UTC differ
      by hours, and a guess would silently move `as_of` reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from hivegraph.errors import InvalidInputError

Scalar = str | int | float | bool
"""A metadata value."""
MAX_METADATA_KEYS = 64
MAX_KEY_CHARS = 128
MAX_STRING_VALUE_CHARS = 4000
MAX_SCOPE_VALUE_CHARS = 256
INT64 = 2**63


def check_text(value: object, field: str, *, max_chars: int | None = None, allow_empty: bool = False) -> str:
    """`value` as storable text: a `str` that encodes as UTF-8, within `max_chars`.

    Raises:
        InvalidInputError: not a string, not UTF-8, empty (unless allowed) or too long.

    """
    if not isinstance(value, str):
        raise InvalidInputError(field, f"must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(field, f"cannot be encoded as UTF-8 ({exc.reason} at position {exc.start})") from None
    if not allow_empty and not value.strip():
        raise InvalidInputError(field, "is empty")
    if max_chars is not None and len(value) > max_chars:
        raise InvalidInputError(field, f"is {len(value)} characters, over the limit of {max_chars}")
    return value


def check_scalar(value: object, field: str) -> Scalar:
    """`value` if it is a finite JSON scalar (str, bool, 64-bit int, finite float).

    Raises:
        InvalidInputError: any other value.

    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise InvalidInputError(field, "integer does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(field, f"must be a finite number, not {value}")
        return value
    if isinstance(value, str):
        return check_text(value, field, max_chars=MAX_STRING_VALUE_CHARS, allow_empty=True)
    raise InvalidInputError(field, f"must be a string, number or boolean, not {type(value).__name__}")


def check_metadata(value: object, field: str = "metadata") -> dict[str, Scalar]:
    """`value` as storable metadata: at most 64 keys of 1-128 characters, finite scalar values.

    Raises:
        InvalidInputError: not a mapping, too many keys, a bad key or a bad value.

    """
    if not isinstance(value, Mapping):
        raise InvalidInputError(field, f"must be a mapping, not {type(value).__name__}")
    mapping = cast(Mapping[Any, Any], value)
    if len(mapping) > MAX_METADATA_KEYS:
        raise InvalidInputError(field, f"has {len(mapping)} keys, over the limit of {MAX_METADATA_KEYS}")
    checked: dict[str, Scalar] = {}
    for key, item in mapping.items():
        name = check_text(key, f"{field} key", max_chars=MAX_KEY_CHARS)
        checked[name] = check_scalar(item, f"{field}.{name}")
    return checked


def check_scope_value(value: object, field: str) -> str | None:
    """A scope field: None, or a non-empty UTF-8 string of at most 256 characters.

    Raises:
        InvalidInputError: any other value.

    """
    if value is None:
        return None
    return check_text(value, field, max_chars=MAX_SCOPE_VALUE_CHARS)


def aware(value: object, field: str) -> datetime:
    """`value` if it is a timezone-aware datetime.

    Raises:
        InvalidInputError: not a datetime, or naive (no timezone).

    """
    if not isinstance(value, datetime):
        raise InvalidInputError(field, f"must be a datetime, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise InvalidInputError(field, "must be timezone-aware (a naive datetime is ambiguous); use UTC")
    return value
