"""The `Embedder` protocol: texts in, unit-length float vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of a fixed dimension.

    Embedding is CPU- or I/O-bound and synchronous; async callers run it in a
    worker thread. Vectors are L2-normalised, so a dot product is a cosine.
    """

    @property
    def name(self) -> str:
        """A stable name, recorded with the vectors it produced."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...
