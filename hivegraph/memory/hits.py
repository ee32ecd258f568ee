"""`MemoryHit`: one memory version found by a read, the single shape of the whole read path.

A retrieval source (vector index, keyword index, graph) returns hits that
carry only the version id and the source's score. The retriever reads the
records of all candidates from the journal in one query and returns the same
type, now with the record, its token count, its rank and score in each source
and the fused score; the `recall` node, the memory tools, the memory manager
and procedural recall all read that, and an agent's context block is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from uuid import UUID

from hivegraph.errors import MemoryStoreError
from hivegraph.memory.types import MemoryKind, MemoryRecord


@dataclass(frozen=True, slots=True)
class MemoryHit:
    """A record version and how well it matched; `score` is higher for better matches."""

    id: str
    """The version id, `<record id>:<version>`."""
    score: float
    """The source's own score (cosine, BM25) from a source; the fused score from the retriever."""
    record: MemoryRecord | None = None
    """The version itself, once the retriever (or a store read) has loaded it."""
    tokens: int | None = None
    """Tokens its text takes in a prompt (block overhead included), once counted."""
    ranks: Mapping[str, int] = field(default_factory=dict[str, int])
    """1-based rank in each source that ranked it."""
    scores: Mapping[str, float] = field(default_factory=dict[str, float])
    """Each source's own score for it (cosine similarity for `vector`, BM25 for `keyword`)."""
    neighbour: bool = False
    """True when no source found it itself: it came in as the neighbour of a hit."""

    @property
    def loaded(self) -> MemoryRecord:
        """The record (raises when the hit was not loaded: a bare source hit).

        Raises:
            MemoryStoreError: the hit carries no record.

        """
        if self.record is None:
            raise MemoryStoreError(f"hit {self.id} has not been loaded from the journal")
        return self.record

    @property
    def record_id(self) -> UUID:
        """The record's id (stable across versions)."""
        return self.loaded.id

    @property
    def kind(self) -> MemoryKind:
        """The record's kind."""
        return self.loaded.kind

    @property
    def text(self) -> str:
        """The record's text."""
        return self.loaded.text

    def with_record(self, record: MemoryRecord, *, tokens: int | None = None) -> MemoryHit:
        """The same hit with its record (and token count) filled in."""
        return replace(self, record=record, tokens=tokens if tokens is not None else self.tokens)
