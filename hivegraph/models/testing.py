"""Deterministic stand-ins for unit tests, shipped with the package."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from hivegraph.config import HivegraphSettings


class HashEmbedder:
    """Embeds text by hashing its words into a fixed number of buckets.

    Texts that share words get similar vectors, so nearest-neighbour search
    behaves plausibly in tests, with no model and no randomness.
    """

    __test__ = False
    name: ClassVar[str] = "hash"

    def __init__(self, dim: int = 64) -> None:
        self._dim = dim

    @classmethod
    def from_settings(cls, settings: HivegraphSettings) -> HashEmbedder:
        """Build from `embedder.hash`."""
        return cls(dim=settings.embedder.hash.dim)

    def get_config(self) -> dict[str, Any]:
        """What `from_config` needs to rebuild this embedder."""
        return {"dim": self._dim}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HashEmbedder:
        """Rebuild from `get_config` output."""
        return cls(dim=int(config["dim"]))

    @property
    def dim(self) -> int:
        """Length of every vector."""
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text (the zero text maps to a fixed unit vector)."""
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self._dim
        for word in re.findall(r"\w+", text.casefold()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self._dim
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]
