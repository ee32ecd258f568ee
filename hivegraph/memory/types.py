"""Memory records, scopes and the operations that change them."""

from __future__ import annotations

import hashlib
import math
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast
from uuid import UUID, uuid4

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from hivegraph.errors import InvalidInputError
from hivegraph.memory.validation import Scalar, check_metadata, check_scope_value, check_text
from hivegraph.memory.vocabulary import EdgeType

MemoryKind = Literal["episodic", "semantic", "procedural", "insight", "query", "interaction", "link"]
"""What a record is; `link` records are the graph's edges (written by `LinkOp` / `UnlinkOp`, never searched)."""
SEARCHED_KINDS: tuple[MemoryKind, ...] = ("episodic", "semantic", "procedural", "insight", "query", "interaction")
"""The kinds a search looks at when it names none (every kind but `link`)."""
SCOPE_FIELDS = ("user_id", "agent_id", "team_id", "run_id")


def _stored(info: ValidationInfo) -> bool:
    """Whether the value is read back from a journal (checked when it was written; old entries may be laxer)."""
    context: object = info.context
    return isinstance(context, dict) and cast(dict[str, object], context).get("stored") is True


def _metadata(value: object, info: ValidationInfo) -> object:
    return value if _stored(info) else check_metadata(value, info.field_name or "metadata")


def _text(value: object, info: ValidationInfo) -> object:
    return value if _stored(info) else check_text(value, info.field_name or "text", allow_empty=True)


def _scope_value(value: object, info: ValidationInfo) -> object:
    return value if _stored(info) else check_scope_value(value, f"scope.{info.field_name}")


Metadata = Annotated[dict[str, Scalar], BeforeValidator(_metadata)]
"""Metadata checked to be storable (finite scalars, bounded size); see `hivegraph.memory.validation`."""
Text = Annotated[str, BeforeValidator(_text)]
"""Text checked to encode as UTF-8 (length limits are the store's)."""
ScopeValue = Annotated[str | None, BeforeValidator(_scope_value)]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def text_hash(text: str) -> str:
    """A hash of `text` that ignores case, Unicode form and runs of whitespace."""
    normal = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(normal.encode()).hexdigest()


class Scope(BaseModel):
    """Who a memory belongs to. Every read and write carries one.

    A read with a scope sees only records whose scope has the same value for
    every field the read sets; fields left unset do not filter.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    user_id: ScopeValue = None
    agent_id: ScopeValue = None
    team_id: ScopeValue = None
    run_id: ScopeValue = None

    def fields(self) -> dict[str, str]:
        """The fields that are set, by name."""
        return {name: value for name in SCOPE_FIELDS if (value := getattr(self, name)) is not None}

    def contains(self, other: Scope) -> bool:
        """Whether a record written in `other` is visible to a read in this scope."""
        return all(getattr(other, name) == value for name, value in self.fields().items())

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.fields().items()) or "<global>"


def ensure_scope(scope: object) -> Scope:
    """`scope` if it is a `Scope`.

    Raises:
        InvalidInputError: it is anything else (a dict, a string).

    """
    if not isinstance(scope, Scope):
        raise InvalidInputError("scope", f"must be a Scope, not {type(scope).__name__}")
    return scope


class Source(BaseModel):
    """Where a memory came from: the run, the agent, its step in the run, and the messages or tool results."""

    model_config = ConfigDict(frozen=True)
    run_id: str | None = None
    agent: str | None = None
    message_ids: list[str] = Field(default_factory=list[str])
    step: int | None = Field(default=None, ge=0)
    """The index of the agent's turn in the run that wrote it (None: not written by an agent's turn)."""


class MemoryRecord(BaseModel):
    """One version of one memory.

    A record's `id` is stable across versions; UPDATE and DELETE close the
    current version (`valid_to`) and never erase it.
    """

    model_config = ConfigDict(frozen=True)
    id: UUID = Field(default_factory=uuid4)
    kind: MemoryKind = "semantic"
    text: Text
    metadata: Metadata = Field(default_factory=dict[str, Scalar])
    scope: Scope = Scope()
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    valid_from: datetime = Field(default_factory=utcnow)
    valid_to: datetime | None = None
    version: int = 1
    source: Source = Source()
    hash: str = ""

    def model_post_init(self, context: Any, /) -> None:
        """Fill in the text hash when none was given."""
        if not self.hash:
            object.__setattr__(self, "hash", text_hash(self.text))

    @property
    def is_current(self) -> bool:
        """Whether this version is the live one."""
        return self.valid_to is None

    @property
    def version_id(self) -> str:
        """Identifier of this version: `<id>:<version>`."""
        return f"{self.id}:{self.version}"


class AddOp(BaseModel):
    """Store a new memory."""

    event: Literal["ADD"] = "ADD"
    text: Text
    kind: MemoryKind = "semantic"
    metadata: Metadata = Field(default_factory=dict[str, Scalar])
    dedupe: bool = True
    """Turn an exact duplicate of a current record into a NOOP (facts); False for events that recur."""
    record_id: UUID | None = None
    """The id the new record takes (so later ops of the same batch can link to it); a new one when None."""


class UpdateOp(BaseModel):
    """Replace the text (and optionally metadata) of a current memory; the old version is closed, not erased."""

    event: Literal["UPDATE"] = "UPDATE"
    record_id: UUID
    text: Text
    metadata: Metadata | None = None
    """Keys to set on the new version (merged over the old metadata); None keeps it as it was."""
    expected_version: int | None = Field(default=None, ge=1)
    """The version the decision saw; the op is refused as a conflict if the record has moved on. None: any."""


class DeleteOp(BaseModel):
    """Close a current memory; it stays in its history."""

    event: Literal["DELETE"] = "DELETE"
    record_id: UUID
    expected_version: int | None = Field(default=None, ge=1)
    """The version the decision saw; the op is refused as a conflict if the record has moved on. None: any."""


class NoopOp(BaseModel):
    """Change nothing (the fact is already known)."""

    event: Literal["NOOP"] = "NOOP"
    record_id: UUID | None = None


def _weight(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError("weight", f"must be a finite number, not {value!r}")
    return float(value)


class LinkOp(BaseModel):
    """Join two current records by a typed, directed edge of the memory graph (or re-weigh the edge there is).

    The link is a record of kind `link` in the batch's scope, so it has versions,
    history and undo like any memory; both ends must be current records that
    scope contains, of the kinds the relation joins (`hivegraph.memory.links`).
    """

    event: Literal["LINK"] = "LINK"
    source: UUID
    target: UUID
    relation: EdgeType
    weight: Annotated[float, BeforeValidator(_weight)] = 1.0
    """The similarity of a `SIMILAR` link; 1.0 where nothing is measured."""
    metadata: Metadata = Field(default_factory=dict[str, Scalar])


class UnlinkOp(BaseModel):
    """Close the link `relation` from `source` to `target` in the batch's scope; it stays in its history."""

    event: Literal["UNLINK"] = "UNLINK"
    source: UUID
    target: UUID
    relation: EdgeType


MemoryOp = Annotated[AddOp | UpdateOp | DeleteOp | NoopOp | LinkOp | UnlinkOp, Field(discriminator="event")]


class ScoredRecord(BaseModel):
    """A record found by a search, with its score (higher is closer)."""

    record: MemoryRecord
    score: float
