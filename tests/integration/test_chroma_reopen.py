"""A Chroma collection written by hivegraph is reopened, by name only, in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hivegraph.errors import ConfigError
from hivegraph.memory.stores.base import IndexItem
from hivegraph.memory.stores.chroma import ChromaVectorIndex
from hivegraph.models.minilm import MiniLMEmbedder
from hivegraph.models.testing import HashEmbedder

pytestmark = pytest.mark.integration

FACTS = [
    IndexItem("pet", "The user has a cat called Miso.", {"kind": "fact"}),
    IndexItem("city", "Paris is the capital of France.", {"kind": "fact"}),
    IndexItem("meeting", "The budget meeting moved to Thursday at 3 pm.", {"kind": "event"}),
]

# Plain chromadb in a fresh interpreter: importing the module registers the embedding
# function; `get_collection` is given no embedding function, Chroma rebuilds ours.
REOPEN = textwrap.dedent(
    """
    import json, sys
    import chromadb
    from chromadb.config import Settings
    import hivegraph.memory.stores.chroma

    path, name, question = sys.argv[1:4]
    client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
    collection = client.get_collection(name)
    result = collection.query(query_texts=[question], n_results=3)
    function = collection.configuration["embedding_function"]
    print(json.dumps({
        "ids": result["ids"][0],
        "distances": result["distances"][0],
        "stored": collection.configuration_json["embedding_function"],
        "embedder": type(function.embedder).__name__,
    }))
    client.close()
    """
)


def _reopen_in_new_process(path: Path, name: str, question: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-W", "error", "-c", REOPEN, str(path), name, question],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


async def test_a_new_process_reopens_the_collection_and_queries_it_by_text(tmp_path: Path) -> None:
    embedder = MiniLMEmbedder()
    index = ChromaVectorIndex.persistent_at(tmp_path, collection="memories", embedder=embedder)
    await index.upsert(FACTS)
    await index.aclose()

    reopened = _reopen_in_new_process(tmp_path, "memories", "Which animal does the user keep as a pet?")

    assert reopened["ids"][0] == "pet"
    assert reopened["stored"] == {
        "type": "known",
        "name": "hivegraph",
        "config": {"backend": "minilm", "config": embedder.get_config()},
    }
    assert reopened["embedder"] == "MiniLMEmbedder"
    assert 1.0 - reopened["distances"][0] > 1.0 - reopened["distances"][1]


async def test_reopening_with_another_embedder_is_refused(tmp_path: Path) -> None:
    index = ChromaVectorIndex.persistent_at(tmp_path, collection="memories", embedder=HashEmbedder(dim=64))
    await index.upsert(FACTS)
    await index.aclose()

    other = ChromaVectorIndex.persistent_at(tmp_path, collection="memories", embedder=HashEmbedder(dim=32))
    with pytest.raises(ConfigError, match=r"'memories' holds vectors of embedding function 'hivegraph'"):
        await other.count()
    await other.aclose()
