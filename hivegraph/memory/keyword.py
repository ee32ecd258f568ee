r"""`KeywordIndex`: an incremental BM25 index over the current record versions.

It is a `Projection` of the journal, like the vector index: `project` adds
each version an entry opens and removes each version it closes, so only
current versions are searchable. It keeps nothing on disk (`persistent` is
False): a store that opens replays the journal into it.

Searches take the same filters as a `VectorIndex` (`matches` over the codec
metadata), so scope, kind and time filters behave identically in both.

Choices, and why:
    - Written here rather than taken from a library: `rank-bm25` rebuilds its
      whole model on every change, and `bm25s` builds a static sparse matrix;
      memory changes one record at a time, so the index keeps postings, document
      frequencies and lengths that a write updates in O(words of the record).
    - Scoring is Okapi BM25 with Lucene's IDF, `log(1 + (N - n + 0.5) / (n + 0.5))`,
      which is never negative (the classic form goes negative for words in more
      than half the documents and would then penalise a match). Statistics are
      over the whole index, every scope together, as a search engine keeps them;
      a filter only decides which documents are scored.
    - Tokens are lowercase word characters (`\w+`, so digits and non-Latin
      letters count; "Ada's" gives "ada" and "s"), minus a short English
      stop-word list (91 function words: pronouns, articles,
      auxiliaries, question words, common prepositions), then Snowball
      (Porter 2) stemmed, so that "researching"
      meets "research". The stemmer is the `snowballstemmer` package (pure
      Python, BSD); stems are cached.
    - `facets` name metadata keys whose values the index also tracks (which
      items have which value, grouped by scope), so that the items of one
      session, or the speakers seen in a scope, are found without a scan.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import snowballstemmer  # pyright: ignore[reportMissingTypeStubs]

from hivegraph.memory.codec import SCOPE_PREFIX, to_item
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.projection import Projection, final_versions, version_fingerprint
from hivegraph.memory.stores.base import Filter, Hit, IndexItem, matches
from hivegraph.memory.types import MemoryRecord, Scalar

_STOP_WORDS_TEXT = """
a about all an and any are as at be been being both but by can could did do does don each few for from had has
have he her here him his how i if in is it its just me more most my no not now of on only or other our own s
same she should so some such t than that the their them there these they this those to too very was we were
what when where which who whom why will with would you your
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
"""English function words left out of documents and queries."""

_WORD = re.compile(r"\w+")
_ScopeKey = tuple[tuple[str, Scalar], ...]


def _scope_key(metadata: Mapping[str, Scalar]) -> _ScopeKey:
    return tuple(sorted((k, v) for k, v in metadata.items() if k.startswith(SCOPE_PREFIX)))


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    stemmer: Any = snowballstemmer.stemmer("english")  # pyright: ignore[reportUnknownMemberType]

    @lru_cache(maxsize=65536)
    def stem(word: str) -> str:
        return str(stemmer.stemWord(word))

    return stem


def tokenize(text: str, *, stem: bool = True, stop_words: frozenset[str] = STOP_WORDS) -> list[str]:
    """The index terms of `text`: lowercase words, stop words dropped, optionally stemmed."""
    words = [word for word in _WORD.findall(text.casefold()) if word not in stop_words]
    if not stem:
        return words
    stemmed = _stemmer()
    return [stemmed(word) for word in words]


@dataclass(frozen=True)
class _Doc:
    item: IndexItem
    terms: Counter[str]
    length: int


class KeywordIndex(Projection):
    """BM25 over the current record versions, kept in step with the journal."""

    def __init__(
        self,
        *,
        name: str = "keyword",
        k1: float = 1.2,
        b: float = 0.75,
        stem: bool = True,
        stop_words: frozenset[str] = STOP_WORDS,
        facets: Sequence[str] = ("meta_session_id", "meta_speaker"),
    ) -> None:
        """Configure an empty index.

        Args:
            name: Cursor name of this projection.
            k1: BM25 term-frequency saturation.
            b: BM25 length normalisation (0: none, 1: full).
            stem: Whether words are reduced to their Snowball stem.
            stop_words: Words left out of documents and queries.
            facets: Metadata keys whose values are tracked for `members` and `values`.

        """
        self.name = name
        self.k1 = k1
        self.b = b
        self.stem = stem
        self.stop_words = stop_words
        self._docs: dict[str, _Doc] = {}
        self._postings: dict[str, dict[str, int]] = {}
        self._total_length = 0
        self._facets: dict[str, dict[Scalar, dict[_ScopeKey, set[str]]]] = {key: {} for key in facets}
        """Facet key -> value -> the ids with that value, grouped by their scope."""

    @property
    def persistent(self) -> bool:
        """Never: the index is re-derived from the journal in each process."""
        return False

    @property
    def facets(self) -> frozenset[str]:
        """The metadata keys whose values the index tracks."""
        return frozenset(self._facets)

    def __len__(self) -> int:
        return len(self._docs)

    async def project(self, entries: Sequence[JournalEntry]) -> None:
        """Index the versions the entries open and drop those they close (idempotent)."""
        await self.repair(final_versions(entries), ())

    def fingerprint(self, version: MemoryRecord) -> str | None:
        """Only current versions are held."""
        return version_fingerprint(version.hash, True) if version.is_current else None

    async def fingerprints(self) -> dict[str, str]:
        """The hash of every indexed document."""
        return {i: version_fingerprint(doc.item.metadata.get("hash"), True) for i, doc in self._docs.items()}

    async def repair(self, write: Sequence[MemoryRecord], remove: Sequence[str]) -> None:
        """Index the current versions of `write`, drop its closed ones and the ids `remove`."""
        for version in write:
            item = to_item(version)
            if version.is_current:
                self.add(item)
            else:
                self.remove(item.id)
        for item_id in remove:
            self.remove(item_id)

    async def reset(self) -> None:
        """Forget every document."""
        self._docs.clear()
        self._postings.clear()
        self._total_length = 0
        for values in self._facets.values():
            values.clear()

    async def is_empty(self) -> bool:
        """Whether no document is indexed."""
        return not self._docs

    def add(self, item: IndexItem) -> None:
        """Index `item`, replacing any document with the same id."""
        self.remove(item.id)
        terms = Counter(tokenize(item.text, stem=self.stem, stop_words=self.stop_words))
        doc = _Doc(item=IndexItem(item.id, item.text, dict(item.metadata)), terms=terms, length=terms.total())
        self._docs[item.id] = doc
        self._total_length += doc.length
        for term, count in terms.items():
            self._postings.setdefault(term, {})[item.id] = count
        scope = _scope_key(item.metadata)
        for key, values in self._facets.items():
            if (value := item.metadata.get(key)) is not None:
                values.setdefault(value, {}).setdefault(scope, set()).add(item.id)

    def remove(self, item_id: str) -> None:
        """Drop the document `item_id`; unknown ids are ignored."""
        doc = self._docs.pop(item_id, None)
        if doc is None:
            return
        self._total_length -= doc.length
        for term in doc.terms:
            posting = self._postings[term]
            del posting[item_id]
            if not posting:
                del self._postings[term]
        scope = _scope_key(doc.item.metadata)
        for key, values in self._facets.items():
            value = doc.item.metadata.get(key)
            groups = values.get(value) if value is not None else None
            if groups is not None and scope in groups:
                groups[scope].discard(item_id)
                if not groups[scope]:
                    del groups[scope]
                if not groups:
                    del values[value]  # pyright: ignore[reportArgumentType]

    async def query(self, text: str, *, k: int = 10, where: Filter | None = None) -> list[Hit]:
        """The `k` best BM25 matches for `text` among the documents matching `where`, best first.

        Documents that share no term with the query are never returned; ties
        are broken by id.
        """
        scores = self.scores(text, where=where)
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[: max(k, 0)]
        return [self._hit(item_id, score) for item_id, score in ranked]

    def scores(self, text: str, *, where: Filter | None = None) -> dict[str, float]:
        """The BM25 score of every document matching `where` that shares a term with `text`."""
        if not self._docs:
            return {}
        terms = Counter(tokenize(text, stem=self.stem, stop_words=self.stop_words))
        average = self._total_length / len(self._docs) or 1.0
        allowed: dict[str, bool] = {}
        scores: dict[str, float] = {}
        for term, query_count in terms.items():
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = math.log(1.0 + (len(self._docs) - len(posting) + 0.5) / (len(posting) + 0.5))
            for item_id, count in posting.items():
                if item_id not in allowed:
                    allowed[item_id] = matches(self._docs[item_id].item.metadata, where)
                if allowed[item_id]:
                    norm = count + self.k1 * (1.0 - self.b + self.b * self._docs[item_id].length / average)
                    scores[item_id] = scores.get(item_id, 0.0) + query_count * idf * count * (self.k1 + 1.0) / norm
        return scores

    def get(self, ids: Iterable[str]) -> list[IndexItem]:
        """The indexed items with these ids, in the order asked (unknown ids left out)."""
        return [self._docs[item_id].item for item_id in ids if item_id in self._docs]

    def members(self, key: str, value: Scalar, *, where: Filter | None = None) -> list[IndexItem]:
        """The items whose facet `key` equals `value` and that match `where`, by id.

        Raises:
            KeyError: `key` is not one of the index's facets.

        """
        ids = sorted(i for ids in self._groups(key, value, where) for i in ids)
        rest = {k: c for k, c in (where or {}).items() if not k.startswith(SCOPE_PREFIX)}  # scope: checked by group
        return [item for item in self.get(ids) if matches(item.metadata, rest)]

    def values(self, key: str, *, where: Filter | None = None) -> list[Scalar]:
        """The values facet `key` takes among the items matching `where`, sorted by text.

        Raises:
            KeyError: `key` is not one of the index's facets.

        """
        found = [
            value
            for value in self._facets[key]
            if any(matches(self._docs[i].item.metadata, where) for ids in self._groups(key, value, where) for i in ids)
        ]
        return sorted(found, key=str)

    def _groups(self, key: str, value: Scalar, where: Filter | None) -> list[set[str]]:
        """The id groups of one facet value whose scope can satisfy the scope part of `where`."""
        scope_where = {k: c for k, c in (where or {}).items() if k.startswith(SCOPE_PREFIX)}
        groups = self._facets[key].get(value, {})
        return [ids for scope, ids in groups.items() if matches(dict(scope), scope_where)]

    def _hit(self, item_id: str, score: float) -> Hit:
        item = self._docs[item_id].item
        return Hit(id=item.id, text=item.text, metadata=dict(item.metadata), score=score)
