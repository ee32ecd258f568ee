"""Memory records, scopes and the operations that change them."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

MemoryKind = Literal["episodic", "semantic", "procedural", "insight", "query", "interaction"]
Scalar = str | int | float | bool
SCOPE_FIELDS = ("user_id", "agent_id", "team_id", "run_id")


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
    user_id: str | None = None
    agent_id: str | None = None
    team_id: str | None = None
    run_id: str | None = None

    def fields(self) -> dict[str, str]:
        """The fields that are set, by name."""
        return {name: value for name in SCOPE_FIELDS if (value := getattr(self, name)) is not None}

    def contains(self, other: Scope) -> bool:
        """Whether a record written in `other` is visible to a read in this scope."""
        return all(getattr(other, name) == value for name, value in self.fields().items())

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.fields().items()) or "<global>"


class Source(BaseModel):
    """Where a memory came from."""

    model_config = ConfigDict(frozen=True)
    run_id: str | None = None
    agent: str | None = None
    message_ids: list[str] = Field(default_factory=list[str])


class MemoryRecord(BaseModel):
    """One version of one memory.

    A record's `id` is stable across versions; UPDATE and DELETE close the
    current version (`valid_to`) and never erase it.
    """

    model_config = ConfigDict(frozen=True)
    id: UUID = Field(default_factory=uuid4)
    kind: MemoryKind = "semantic"
    text: str
    metadata: dict[str, Scalar] = Field(default_factory=dict[str, Scalar])
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
    text: str
    kind: MemoryKind = "semantic"
    metadata: dict[str, Scalar] = Field(default_factory=dict[str, Scalar])
    dedupe: bool = True
    """Turn an exact duplicate of a current record into a NOOP (facts); False for events that recur."""


class UpdateOp(BaseModel):
    """Replace the text (and optionally metadata) of a current memory; the old version is closed, not erased."""

    event: Literal["UPDATE"] = "UPDATE"
    record_id: UUID
    text: str
    metadata: dict[str, Scalar] | None = None
    """Keys to set on the new version (merged over the old metadata); None keeps it as it was."""


class DeleteOp(BaseModel):
    """Close a current memory; it stays in its history."""

    event: Literal["DELETE"] = "DELETE"
    record_id: UUID


class NoopOp(BaseModel):
    """Change nothing (the fact is already known)."""

    event: Literal["NOOP"] = "NOOP"
    record_id: UUID | None = None


MemoryOp = Annotated[AddOp | UpdateOp | DeleteOp | NoopOp, Field(discriminator="event")]


class ScoredRecord(BaseModel):
    """A record found by a search, with its score (higher is closer)."""

    record: MemoryRecord
    score: float
