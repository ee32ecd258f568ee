r"""Index terms of a text: the words keyword search matches, in every journal backend.

Tokens are lowercase word characters (`\w+`, so digits and non-Latin letters
count; "Ada's" gives "ada" and "s"), minus a short English stop-word list (91
function words: pronouns, articles, auxiliaries, question words, common
prepositions), then Snowball (Porter 2) stemmed, so that "researching" meets
"research". The stemmer is the `snowballstemmer` package (pure Python, BSD);
stems are cached. Documents and queries go through the same function, so the
journal's full-text index (SQLite FTS5, PostgreSQL `tsvector`) stores and
matches these terms verbatim and never applies a stemmer of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import snowballstemmer  # pyright: ignore[reportMissingTypeStubs]

_STOP_WORDS_TEXT = """
a about all an and any are as at be been being both but by can could did do does don each few for from had has
have he her here him his how i if in is it its just me more most my no not now of on only or other our own s
same she should so some such t than that the their them there these they this those to too very was we were
what when where which who whom why will with would you your
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
"""English function words left out of documents and queries."""

_WORD = re.compile(r"\w+")


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
