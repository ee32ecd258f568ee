from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.registry

from hivegraph.errors import ConfigError
from hivegraph.models.base import Message, system, user
from hivegraph.models.tokens import (
    FALLBACK_ENCODING,
    TokenCounter,
    encoding_for_model,
    encoding_name_for_model,
    ensure_offline_encodings,
    get_encoding,
    pack,
)

TIKTOKEN_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def cache_name(encoding: str) -> str:
    url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
    return hashlib.sha1(url.encode()).hexdigest()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every socket connection and name lookup fails."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def fresh_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken forgets the encodings it loaded in this process; TIKTOKEN_CACHE_DIR is unset."""
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)


@pytest.mark.usefixtures("fresh_tiktoken", "no_network")
def test_the_network_guard_really_stops_a_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    with pytest.raises(OSError):
        tiktoken.get_encoding("cl100k_base")


@pytest.mark.usefixtures("fresh_tiktoken", "no_network")
def test_encodings_load_offline_from_a_fresh_cache(tmp_path: Path) -> None:
    folder = ensure_offline_encodings(cache_dir=tmp_path / "cache")

    assert folder == tmp_path / "cache"
    assert sorted(p.name for p in folder.iterdir()) == sorted(cache_name(n) for n in TIKTOKEN_SHA256)
    for name, sha256 in TIKTOKEN_SHA256.items():
        assert hashlib.sha256((folder / cache_name(name)).read_bytes()).hexdigest() == sha256
    assert tiktoken.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert encoding_for_model("gpt-4").name == "cl100k_base"


@pytest.mark.usefixtures("fresh_tiktoken")
def test_cache_dir_is_pointed_at_ours_only_when_the_user_has_none(tmp_path: Path) -> None:
    ours = ensure_offline_encodings(cache_dir=tmp_path / "ours")
    assert ours == tmp_path / "ours"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(ours)
    # Calling again with another folder moves it, since the first value was ours, not the user's.
    assert ensure_offline_encodings(cache_dir=tmp_path / "again") == tmp_path / "again"


@pytest.mark.usefixtures("fresh_tiktoken", "no_network")
def test_a_user_cache_dir_is_kept_and_gets_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "something-else").write_text("keep me")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(user_dir))

    folder = ensure_offline_encodings(cache_dir=tmp_path / "ours")

    assert folder == user_dir
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(user_dir)
    assert not (tmp_path / "ours").exists()
    assert (user_dir / "something-else").read_text() == "keep me"
    assert {cache_name(n) for n in TIKTOKEN_SHA256} <= {p.name for p in user_dir.iterdir()}
    assert tiktoken.get_encoding("o200k_base").encode("hello world") == [24912, 2375]


@pytest.mark.usefixtures("fresh_tiktoken")
def test_a_corrupt_cached_file_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / cache_name("cl100k_base")).write_bytes(b"not a bpe file")

    ensure_offline_encodings(cache_dir=folder)

    data = (folder / cache_name("cl100k_base")).read_bytes()
    assert hashlib.sha256(data).hexdigest() == TIKTOKEN_SHA256["cl100k_base"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.usefixtures("fresh_tiktoken")
def test_an_empty_cache_dir_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(ConfigError, match="TIKTOKEN_CACHE_DIR"):
        ensure_offline_encodings()


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-4o", "o200k_base"),
        ("openai/gpt-4", "cl100k_base"),
        ("gpt-oss-20b", "o200k_harmony"),
        ("smollm2", FALLBACK_ENCODING),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", FALLBACK_ENCODING),
        ("text-davinci-003", FALLBACK_ENCODING),  # p50k_base is not bundled
    ],
)
def test_model_names_map_to_offline_encodings(model: str, encoding: str) -> None:
    assert FALLBACK_ENCODING == "o200k_base"
    assert encoding_name_for_model(model) == encoding


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="p50k_base"):
        TokenCounter(encoding_name="p50k_base")
    with pytest.raises(ConfigError, match="available"):
        get_encoding("r50k_base")


def test_count_treats_special_token_markup_as_text() -> None:
    counter = TokenCounter("gpt-4")
    assert counter.count("hello world") == 2
    assert counter.count("") == 0
    assert counter.count("<|endoftext|>") == 7


def test_count_messages_adds_the_chat_overhead() -> None:
    counter = TokenCounter("gpt-4o")
    # 3 (reply) + [3 + "system" 1 + "You are helpful." 4] + [3 + "user" 1 + "hello world" 2]
    assert counter.count_messages([system("You are helpful."), user("hello world")]) == 17
    # 3 + [3 + "user" 1 + "hi" 1] + name: 1 + "bob" 1
    assert counter.count_messages([Message(role="user", content="hi", name="bob")]) == 10
    assert counter.count_messages([]) == 3


def test_truncate_keeps_the_longest_prefix_within_the_limit() -> None:
    counter = TokenCounter("gpt-4")
    text = "The quick brown fox jumps over the lazy dog. " * 5
    cut = counter.truncate(text, 10)
    assert text.startswith(cut)
    assert counter.count(cut) == 10
    assert counter.truncate(text, 0) == ""
    assert counter.truncate("short", 10) == "short"


def test_truncate_never_splits_a_character() -> None:
    counter = TokenCounter("smollm2")
    text = "日本語のテキストと絵文字 🧑‍🚀🚀 を含む長い文章です。" * 3
    for limit in range(0, counter.count(text) + 1):
        cut = counter.truncate(text, limit)
        assert text.startswith(cut)
        assert "\ufffd" not in cut
        assert counter.count(cut) <= limit
    with pytest.raises(ValueError, match="max_tokens"):
        counter.truncate(text, -1)


def test_pack_takes_ranked_items_that_fit_in_order() -> None:
    packed = pack([5, 3, 8, 2, 1], 10, count=lambda n: n)
    assert packed.items == [5, 3, 2]
    assert packed.tokens == 10
    assert packed.skipped == [8, 1]


def test_pack_counts_the_per_item_overhead() -> None:
    packed = pack([4, 4, 1], 10, count=lambda n: n, overhead=1)
    assert packed.items == [4, 4]
    assert packed.tokens == 10
    assert pack([4], 0, count=lambda n: n).items == []
    with pytest.raises(ValueError, match="budget"):
        pack([1], -1, count=lambda n: n)


def test_pack_with_real_token_counts() -> None:
    counter = TokenCounter("gpt-4o")
    ranked = ["Alice lives in Paris.", "A long note " * 50, "Bob likes tea."]
    packed = pack(ranked, 20, count=counter.count)
    assert packed.items == ["Alice lives in Paris.", "Bob likes tea."]
    assert packed.tokens == counter.count(ranked[0]) + counter.count(ranked[2])
    assert packed.tokens <= 20
