"""Graph-aware retrieval: entities found without a model, the entity graph projected from the journal,
and the `graph` source (Personalized PageRank from the query's entities), on the reference and on SQLite.

`tests/integration/test_graph_retrieval_neo4j.py` runs the same scenarios on a Bolt server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from hivegraph.config import GraphStoreSettings, HivegraphSettings, RetrievalConfig
from hivegraph.memory.entities import ENTITIES_KEY, WordEntities, given_entities, normalise
from hivegraph.memory.facade import Memory
from hivegraph.memory.graph import GraphNode, GraphStore, InMemoryGraph, SqliteGraph, Subgraph
from hivegraph.memory.graph.mentions import entity_id
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.graph.source import GraphRetrievalSettings, personalized_pagerank
from hivegraph.memory.graph.store import GraphEdge
from hivegraph.memory.hits import MemoryHit
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.sources import SearchQuery
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import AddOp, DeleteOp, MemoryKind, Scalar, Scope, UpdateOp
from hivegraph.models.testing import HashEmbedder

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
ADA_RUN = Scope(user_id="ada", run_id="r1")


# ---------------------------------------------------------------- extraction


def test_words_names_and_phrases_are_found_and_normalised() -> None:
    found = WordEntities()("Yesterday Ada's pottery class met in New York City, near the Golden Gate.")
    assert {"ada", "potteri", "potteri class", "new york citi", "golden gate"} <= set(found)
    assert "the" not in found and "in" not in found
    assert len(found) == len(set(found))


def test_a_query_and_a_record_that_name_the_same_thing_meet() -> None:
    extract = WordEntities()
    assert normalise("Paris's") == normalise("paris") == normalise("PARIS") == "pari"
    assert "adopt agenc" in extract("She called the Adoption Agency.")
    assert "adopt agenc" in extract("what did the adoption agencies say?")


def test_extraction_is_deterministic_and_punctuation_breaks_phrases() -> None:
    text = "Chess, painting; hiking. Mount Rainier!"
    assert WordEntities()(text) == WordEntities()(text)
    assert "chess paint" not in WordEntities()(text)
    assert WordEntities(phrases=False, names=False)(text) == ["chess", "paint", "hike", "mount", "rainier"]


def test_entities_a_model_names_in_metadata_are_normalised() -> None:
    assert given_entities({ENTITIES_KEY: "Marie Curie; the Sorbonne ;; "}) == ["mari curi", "sorbonn"]
    assert given_entities({ENTITIES_KEY: 3}) == []


def test_entity_ids_are_deterministic_and_differ_by_scope() -> None:
    assert entity_id(ADA, "pari") == entity_id(Scope(user_id="ada"), "pari")
    assert (
        len({entity_id(ADA, "pari"), entity_id(BOB, "pari"), entity_id(ADA_RUN, "pari"), entity_id(ADA, "rome")}) == 4
    )


# ---------------------------------------------------------------- PageRank


def _graph(mentions: dict[str, list[str]]) -> Subgraph:
    entities = sorted({e for names in mentions.values() for e in names})
    nodes = [GraphNode(m, "Memory", ADA) for m in mentions] + [GraphNode(e, "Entity", ADA, e) for e in entities]
    edges = [GraphEdge(f"{m}>{e}", "MENTIONS", m, e, ADA) for m, names in mentions.items() for e in names]
    return Subgraph(nodes=nodes, edges=edges)


def test_pagerank_favours_records_of_specific_seeds_and_what_they_share() -> None:
    subgraph = _graph({
        "m1": ["rare", "common"], "m2": ["common"], "m3": ["common"], "m4": ["common", "other"],
        "m5": ["rare", "x"], "m6": ["x"],
    })  # fmt: skip
    scores = personalized_pagerank(subgraph, ["rare", "common"], GraphRetrievalSettings())
    assert scores["m1"] > scores["m5"] > scores["m2"]
    assert scores["m6"] > 0, "one hop beyond a seed's record, through an entity they share"
    assert scores["m2"] == pytest.approx(scores["m3"])
    assert sum(scores.values()) == pytest.approx(1.0)


def test_pagerank_without_a_seed_in_the_subgraph_ranks_nothing() -> None:
    assert personalized_pagerank(_graph({"m1": ["a"]}), ["zz"], GraphRetrievalSettings()) == {}


# ---------------------------------------------------------------- the source on a memory


def open_memory(graph: GraphStore, journal: InMemoryJournal | SqliteJournal) -> Memory:
    """A memory whose graph projection keeps the entity graph, walked 3 hops (so the checks cover every hop)."""
    projection = GraphProjection(graph, entities=WordEntities(), retrieval=GraphRetrievalSettings(hops=3))
    return Memory.of(InMemorySpace(HashEmbedder()), journal=journal, projections=[projection])


@pytest.fixture(params=["reference", "sqlite"])
async def memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Memory]:
    if request.param == "reference":
        opened = await open_memory(InMemoryGraph(), InMemoryJournal()).open()
    else:
        file = tmp_path / "memory.sqlite"
        opened = await open_memory(SqliteGraph(file), SqliteJournal(file)).open()
    yield opened
    await opened.aclose()


def projection_of(memory: Memory) -> GraphProjection:
    return next(p for p in memory.store.projections if isinstance(p, GraphProjection))


async def add(memory: Memory, text: str, *, scope: Scope = ADA, kind: MemoryKind = "episodic", **meta: Scalar) -> UUID:
    result = await memory.apply([AddOp(text=text, kind=kind, metadata=meta, dedupe=False)], scope=scope, actor="t")
    after = result.applied[0].after
    assert after is not None
    return after.id


async def graph_ids(
    memory: Memory,
    text: str,
    *,
    scope: Scope = ADA,
    kinds: tuple[MemoryKind, ...] | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
) -> list[str]:
    """The record ids the graph source ranks for `text` (after catching up)."""
    await memory.store.catch_up()
    query = SearchQuery(text=text, scope=scope, kinds=kinds, since_us=since_us, until_us=until_us)
    return [hit.id.rsplit(":", 1)[0] for hit in await projection_of(memory).search(query, k=10)]


async def check_multi_hop_and_scopes(memory: Memory) -> None:
    """A record two hops away is found through a shared entity; no read crosses scopes; narrower scopes are seen."""
    trip = await add(memory, "Ada booked the trip to Lisbon for the conference.")
    venue = await add(memory, "The conference venue in Lisbon is the Belem Tower.", kind="semantic")
    tower = await add(memory, "Belem Tower opens at nine on weekdays.")
    await add(memory, "Ada likes green tea.")
    bob = await add(memory, "Bob booked the trip to Lisbon too.", scope=BOB)
    in_run = await add(memory, "The Lisbon trip has a run of its own.", scope=ADA_RUN)
    found = await graph_ids(memory, "when does the trip to Lisbon start?")
    assert found[:2] == [str(trip), str(in_run)] or set(found[:3]) >= {str(trip), str(venue)}
    assert str(tower) in found, "two hops: trip -> Lisbon -> venue -> Belem Tower"
    assert str(bob) not in found
    assert await graph_ids(memory, "Lisbon trip", scope=BOB) == [str(bob)]
    assert str(in_run) in found and await graph_ids(memory, "Lisbon", scope=ADA_RUN) == [str(in_run)]
    assert await graph_ids(memory, "Lisbon", scope=Scope(user_id="eve")) == []


async def test_multi_hop_and_scopes(memory: Memory) -> None:
    await check_multi_hop_and_scopes(memory)


async def test_two_hops_rank_only_the_records_that_mention_a_seed(memory: Memory) -> None:
    projection_of(memory).source.settings = GraphRetrievalSettings(hops=2)
    trip = await add(memory, "Ada booked the trip to Lisbon for the conference.")
    venue = await add(memory, "The conference venue in Lisbon is the Belem Tower.")
    await add(memory, "Belem Tower opens at nine on weekdays.")
    assert sorted(await graph_ids(memory, "the trip to Lisbon")) == sorted([str(trip), str(venue)])
    assert (await graph_ids(memory, "the trip to Lisbon"))[0] == str(trip)


class _Fixed:
    """A retrieval source that always returns the same hits (stands in for the vector source)."""

    name = "fixed"
    projected = False

    def __init__(self, *ids: str) -> None:
        self.ids = ids

    async def search(self, query: SearchQuery, *, k: int) -> list[MemoryHit]:
        return [MemoryHit(id=i, score=1.0) for i in self.ids[:k]]


async def test_records_of_another_source_seed_the_walk_when_asked(memory: Memory) -> None:
    """HippoRAG 2's dense seeds: a query that names nothing in the graph still reaches the records that share
    an entity with the seeding source's best record; with `dense_seeds` 0 it reaches nothing."""
    source = projection_of(memory).source
    assert source.dense is memory.retriever.sources[0], "the memory hands its vector source to the graph source"
    tower = await add(memory, "Belem Tower opens at nine on weekdays.")
    ticket = await add(memory, "Tickets for Belem Tower cost ten euros.")
    await add(memory, "Ada likes green tea.")
    source.dense = _Fixed(f"{tower}:1")
    assert await graph_ids(memory, "qqq") == []
    source.settings = GraphRetrievalSettings(hops=2, dense_seeds=1, dense_share=1.0)
    found = await graph_ids(memory, "qqq")
    assert found == [str(tower), str(ticket)], "the seed first, then the record it shares 'Belem Tower' with"


async def check_kinds_times_and_versions(memory: Memory) -> None:
    """Only the asked kinds and time range; an update moves the record to its new entities; a delete removes it."""
    day = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    old = await add(memory, "Violin lesson with Clara.", occurred_at=day)
    new = await add(memory, "Violin recital with Clara.", occurred_at=day + 86_400)
    fact = await add(memory, "Clara teaches violin.", kind="semantic")
    assert set(await graph_ids(memory, "Clara violin")) == {str(old), str(new), str(fact)}
    assert await graph_ids(memory, "Clara violin", kinds=("semantic",)) == [str(fact)]
    since = int((day + 3600) * 1_000_000)
    assert await graph_ids(memory, "Clara violin", since_us=since) == [str(new)]
    assert await graph_ids(memory, "Clara violin", until_us=since) == [str(old)]
    await memory.apply([UpdateOp(record_id=fact, text="Clara teaches the cello.")], scope=ADA, actor="t")
    await memory.store.catch_up()
    graph = projection_of(memory).graph
    [violin] = await graph.entities_named([normalise("violin")], scope=ADA)
    mentioning = await graph.neighbours([violin.id], scope=ADA, edge_types=["MENTIONS"])
    assert str(fact) not in {n.node.id for n in mentioning}, "the update's text no longer mentions a violin"
    hits = await projection_of(memory).search(SearchQuery(text="cello", scope=ADA), k=5)
    assert [hit.id for hit in hits][:1] == [f"{fact}:2"], (hits, fact, old, new)
    await memory.apply([DeleteOp(record_id=old, expected_version=1)], scope=ADA, actor="t")
    assert str(old) not in await graph_ids(memory, "violin lesson")


async def test_kinds_times_and_versions(memory: Memory) -> None:
    await check_kinds_times_and_versions(memory)


async def test_verify_and_rebuild_agree_with_the_entity_graph(memory: Memory) -> None:
    first = await add(memory, "Ada visited Kyoto in April.")
    await add(memory, "Kyoto temples are quiet at dawn.", kind="semantic", entities="Kinkaku-ji")
    await memory.apply([DeleteOp(record_id=first, expected_version=1)], scope=ADA, actor="t")
    assert (await memory.verify()).clean
    before = await graph_ids(memory, "Kyoto Kinkaku-ji")
    await memory.rebuild()
    assert (await memory.verify()).clean
    assert await graph_ids(memory, "Kyoto Kinkaku-ji") == before != []


async def test_recall_fuses_the_graph_source(memory: Memory) -> None:
    target = await add(memory, "The Zephyr project deadline moved to March.")
    for n in range(5):
        await add(memory, f"Unrelated note number {n} about lunch.")
    found = await memory.recall("Zephyr deadline", scope=ADA, k=3)
    assert found.hits[0].record_id == target
    assert "graph" in found.hits[0].ranks


async def test_without_entities_the_projection_holds_no_records_and_finds_nothing(tmp_path: Path) -> None:
    graph = InMemoryGraph()
    memory = await Memory.of(
        InMemorySpace(HashEmbedder()), journal=InMemoryJournal(), projections=[GraphProjection(graph)]
    ).open()
    try:
        await add(memory, "Ada visited Kyoto.")
        assert (await graph.counts()).nodes == 0
        assert await graph_ids(memory, "Kyoto") == []
    finally:
        await memory.aclose()


def test_settings_turn_the_entity_graph_on_by_default(tmp_path: Path) -> None:
    on = GraphProjection.from_settings(
        HivegraphSettings(data_dir=tmp_path, graph_store=GraphStoreSettings(backend="inmemory"))
    )
    off = GraphProjection.from_settings(
        HivegraphSettings(data_dir=tmp_path, graph_store=GraphStoreSettings(backend="inmemory", entities=False))
    )
    assert on.kinds is not None and "episodic" in on.kinds and "semantic" in on.kinds
    assert off.kinds is not None and "episodic" not in off.kinds
    assert (on.source.settings.dense_seeds, on.source.settings.dense_share) == (10, 0.5)
    tuned = HivegraphSettings(data_dir=tmp_path, graph_store=GraphStoreSettings(backend="inmemory"),
                              retrieval=RetrievalConfig(graph_dense_seeds=0, graph_dense_share=0.2))  # fmt: skip
    assert GraphProjection.from_settings(tuned).source.settings.dense_seeds == 0


async def test_verify_finds_missing_record_nodes_and_repair_brings_them_back(memory: Memory) -> None:
    kept = await add(memory, "Ada planted tulips in the garden.")
    await memory.store.catch_up()
    graph = projection_of(memory).graph
    await graph.reset()
    report = await memory.verify()
    assert [d.version_id for d in report.divergences] == [f"{kept}:1"]
    assert (await memory.verify(repair=True)).repaired
    assert (await memory.verify()).clean
    assert await graph_ids(memory, "tulips") == [str(kept)]
