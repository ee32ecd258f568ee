"""Projections: indexes derived from the journal, updated idempotently by version id.

Each projection says which versions it holds and how each should look there
(`fingerprint`), and reports what it holds now (`fingerprints`); `verify`
compares the two, and `repair` writes the difference. The vector projection
is `hivegraph.memory.vector_projection.VectorProjection`; the keyword index
lives in the journal itself and needs no projection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from hivegraph.memory.journal import Journal, JournalEntry
from hivegraph.memory.types import MemoryKind, MemoryRecord


class Projection(ABC):
    """Something kept in step with the journal (a vector index, a keyword index)."""

    name: str
    """Cursor name in the journal."""
    kinds: Sequence[MemoryKind] | None = None
    """The kinds of record whose versions it holds (None: every kind); `counts` is compared with theirs."""

    @property
    @abstractmethod
    def persistent(self) -> bool:
        """Whether what was projected survives a new process (else it is replayed from 0)."""

    @abstractmethod
    async def project(self, entries: Sequence[JournalEntry]) -> None:
        """Apply `entries`; applying the same entries again changes nothing."""

    @abstractmethod
    async def reset(self) -> None:
        """Forget everything projected so far (re-creating the store from nothing if it must)."""

    @abstractmethod
    def fingerprint(self, version: MemoryRecord) -> str | None:
        """How `version` should look in this projection, or None if the projection does not hold it."""

    @abstractmethod
    async def fingerprints(self) -> dict[str, str]:
        """What the projection holds now: version id -> fingerprint."""

    def expected(self, versions: Sequence[MemoryRecord]) -> dict[str, str]:
        """What the projection should hold given every version in the journal: version id -> fingerprint."""
        return {v.version_id: fp for v in versions if (fp := self.fingerprint(v)) is not None}

    @abstractmethod
    async def repair(self, write: Sequence[MemoryRecord], remove: Sequence[str], *, seq: int = 0) -> None:
        """Write the final state of `write` and drop the version ids `remove`.

        `seq` is the journal sequence that state is as of (for a projection that stamps what it writes).
        """

    async def applied(self) -> int | None:
        """The journal sequence the projection's own storage says it holds everything up to (None: it keeps none).

        A projection that keeps one (`mark_applied`) travels with its data: an
        index restored from an older copy, or wiped, says so, and opening the
        store replays from there instead of counting or reading the index.
        """
        return None

    async def mark_applied(self, seq: int) -> None:  # noqa: B027 - optional hook
        """Record, with the projected data, that entries up to `seq` are applied (under the projection's lock)."""

    def attach(self, journal: Journal) -> None:  # noqa: B027 - optional hook
        """Called once by the store that feeds this projection, with its journal (for reads beyond the entries)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the projection's own backend (the store closes the journal and the vector space)."""

    def invalidate(self) -> None:  # noqa: B027 - optional hook
        """Forget what this process caches of the projected data: another process has written to it."""

    async def counts(self) -> tuple[int, int]:
        """How many versions the projection holds, and how many of them as current (a cheap check at open)."""
        held = await self.fingerprints()
        return len(held), sum(1 for fp in held.values() if fp.endswith(":current"))

    async def is_empty(self) -> bool:
        """Whether nothing has been projected (a wiped index)."""
        return False


def final_versions(entries: Sequence[JournalEntry]) -> list[MemoryRecord]:
    """The last state of every version the entries touch, in first-touch order."""
    latest: dict[str, MemoryRecord] = {}
    for entry in entries:
        for version in (entry.before, entry.after):
            if version is not None:
                latest[version.version_id] = version
    return list(latest.values())


def version_fingerprint(hash_: object, current: object) -> str:
    """The fingerprint of a version held with its text hash and current flag."""
    return f"{hash_}:{'current' if current else 'closed'}"
