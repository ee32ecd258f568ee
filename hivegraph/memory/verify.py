"""Comparing projections with the journal, and re-deriving what differs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from hivegraph.memory.journal import Unreadable
from hivegraph.memory.projection import Projection
from hivegraph.memory.types import MemoryRecord

DivergenceKind = Literal["missing", "extra", "stale"]


@dataclass(frozen=True)
class Divergence:
    """One way a projection disagrees with the journal."""

    projection: str
    kind: DivergenceKind
    """`missing`: the journal has it, the projection not; `extra`: the reverse; `stale`: both, differently."""
    version_id: str
    expected: str | None
    found: str | None


@dataclass
class VerifyReport:
    """What `MemoryStore.verify` found (and, with `repaired`, mended)."""

    divergences: list[Divergence] = field(default_factory=list[Divergence])
    unreadable: list[Unreadable] = field(default_factory=list[Unreadable])
    repaired: bool = False

    @property
    def clean(self) -> bool:
        """Whether every projection agrees with the journal and every entry reads."""
        return not self.divergences and not self.unreadable

    def lines(self) -> list[str]:
        """One line per finding, for people."""
        found = [f"{d.projection}: {d.kind} {d.version_id} (journal: {d.expected}, index: {d.found})"
                 for d in self.divergences]  # fmt: skip
        return found + [f"journal: unreadable {u.where}: {u.problem}" for u in self.unreadable]


async def verify_projection(
    projection: Projection, versions: Sequence[MemoryRecord], *, repair: bool, remove_extra: bool = True, seq: int = 0
) -> list[Divergence]:
    """The divergences of `projection` from the journal's `versions` (as of entry `seq`); `repair` writes them."""
    expected = projection.expected(versions)
    found = await projection.fingerprints()
    divergences: list[Divergence] = []
    for version_id in sorted(expected.keys() | found.keys()):
        want, have = expected.get(version_id), found.get(version_id)
        if want == have:
            continue
        kind: DivergenceKind = "missing" if have is None else "extra" if want is None else "stale"
        divergences.append(Divergence(projection.name, kind, version_id, want, have))
    if repair and divergences:
        by_id = {v.version_id: v for v in versions}
        write = [by_id[d.version_id] for d in divergences if d.kind != "extra"]
        extra = [d.version_id for d in divergences if d.kind == "extra"] if remove_extra else []
        await projection.repair(write, extra, seq=seq)
    return divergences
