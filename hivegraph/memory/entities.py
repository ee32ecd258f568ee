"""Entities of a text, found without a model: what the entity graph links records through.

An entity is a normalised name: the words of a mention, lowercased, stop words
dropped and each word stemmed with the keyword index's stemmer
(`hivegraph.memory.text`), joined by single spaces. So "Paris", "paris" and
"Paris's" are one entity, and a query meets the records that mention what it
names. `WordEntities`, the default extractor, finds:

- **content words**: every word that is not a stop word (a single-word name
  such as "Caroline" is one of them);
- **names**: runs of two or more capitalised words ("New York", "Golden Gate
  Bridge"), not counting a leading function word ("The" of "The Golden Gate");
- **phrases**: two content words side by side with nothing between them
  ("pottery class", "adoption agency"), a cheap stand-in for noun phrases.

Extraction is deterministic and general (no list of a corpus's names). The
graph's specificity weighting (how many records mention an entity) is what
tells a rare name from a common word, so no word list is tuned here. A model
that can do better adds entities through a record's metadata (`ENTITIES_KEY`,
names separated by semicolons), which the graph projection merges with these;
`memory/` itself never calls a model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from hivegraph.memory.text import STOP_WORDS, tokenize
from hivegraph.memory.types import Scalar

ENTITIES_KEY = "entities"
"""Record metadata key of entities found by someone else (a model), separated by semicolons."""
MAX_ENTITY_CHARS = 200

_TOKEN = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*|[.!?;:,()\"\u201c\u201d\n]")
_BREAK = frozenset('.!?;:,()"\u201c\u201d\n')


class EntityExtractor(Protocol):
    """Finds the entities of a text (normalised with `normalise`), in a stable order."""

    def __call__(self, text: str) -> list[str]:
        """The entities `text` mentions, each once."""
        ...


def normalise(mention: str) -> str:
    """The entity a mention names: its words lowercased, stop words out, stemmed, joined by spaces ("" if none)."""
    return " ".join(tokenize(_strip_possessive(mention)))[:MAX_ENTITY_CHARS].strip()


class WordEntities:
    """The default extractor: content words, capitalised names and adjacent content-word phrases."""

    def __init__(self, *, phrases: bool = True, names: bool = True, min_chars: int = 2) -> None:
        """Find content words (at least `min_chars` long), and names and two-word phrases when asked."""
        self.phrases = phrases
        self.names = names
        self.min_chars = min_chars

    def __call__(self, text: str) -> list[str]:
        """The entities of `text`: content words first, then names and phrases, each once."""
        found: dict[str, None] = {}
        run: list[str] = []
        previous: str | None = None
        for token in _TOKEN.findall(text):
            if token in _BREAK:
                self._name(run, found)
                run, previous = [], None
                continue
            word = _strip_possessive(token)
            capitalised = word[:1].isupper()
            if capitalised and (run or word.casefold() not in STOP_WORDS):
                run.append(word)
            else:
                self._name(run, found)
                run = []
            term = normalise(word)
            if not term or len(term) < self.min_chars:
                previous = None
                continue
            found.setdefault(term)
            if self.phrases and previous is not None:
                found.setdefault(f"{previous} {term}")
            previous = term
        self._name(run, found)
        return list(found)

    def _name(self, run: list[str], found: dict[str, None]) -> None:
        if self.names and len(run) > 1 and (name := normalise(" ".join(run))) and " " in name:
            found.setdefault(name)


def given_entities(metadata: Mapping[str, Scalar]) -> list[str]:
    """The entities a record's metadata names (`ENTITIES_KEY`), normalised, each once."""
    given = metadata.get(ENTITIES_KEY)
    if not isinstance(given, str):
        return []
    return list(dict.fromkeys(name for part in given.split(";") if (name := normalise(part))))


def _strip_possessive(word: str) -> str:
    return re.sub(r"['\u2019]s?$", "", re.sub(r"['\u2019]s\b", "", word))
