"""Hybrid retrieval: fusion order, token budget, neighbour expansion, scope and time filters."""

from datetime import UTC, datetime, timedelta

import pytest

from hivegraph.errors import ConfigError, InvalidInputError
from hivegraph.memory.codec import scope_filter
from hivegraph.memory.keyword import KeywordIndex
from hivegraph.memory.retrieval import Boost, HybridRetriever, RetrievalSettings
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemoryVectorIndex
from hivegraph.memory.types import AddOp, MemoryOp, Scalar, Scope
from hivegraph.models.testing import HashEmbedder
from hivegraph.models.tokens import TokenCounter

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
T0 = datetime(2030, 5, 1, tzinfo=UTC)

CORPUS = [
    "Ada adopted a grey cat from the shelter",
    "the shelter had many cats and dogs",
    "Ada painted a sunset over the lake",
    "a cat sat on the lake shore at sunset",
    "Ada bought new running shoes",
    "running by the lake every morning",
]

SESSION = [  # one conversation: the answer (turn 2) shares no word with the question
    "Bob: How was your week?",
    "Bob: What are you researching these days?",
    "Ada: Mostly adoption agencies, honestly.",
    "Bob: Nice. Mine was quiet.",
]


async def make(settings: RetrievalSettings | None = None) -> tuple[MemoryStore, KeywordIndex, HybridRetriever]:
    keyword = KeywordIndex()
    store = MemoryStore(InMemoryVectorIndex(HashEmbedder()), projections=[keyword])
    return store, keyword, HybridRetriever(store, keyword, settings=settings)


async def add_session(store: MemoryStore, scope: Scope, session: str, texts: list[str], day: int = 0) -> None:
    ops: list[MemoryOp] = []
    for turn, text in enumerate(texts):
        meta: dict[str, Scalar] = {"session_id": session, "turn": turn,
                                   "occurred_at": (T0 + timedelta(days=day, minutes=turn)).timestamp()}  # fmt: skip
        ops.append(AddOp(text=text, kind="episodic", metadata=meta))
    result = await store.apply(ops, scope=scope, actor="test")
    assert not result.refused


async def test_blocks_follow_reciprocal_rank_fusion_of_both_sources() -> None:
    store, keyword, retriever = await make(RetrievalSettings(rrf_k=3, vector_weight=0.5))
    for text in CORPUS:
        await store.add(text, scope=ADA)
    query = "cat at the lake"
    where = scope_filter(ADA)
    vector = [h.id for h in await store.index.query(query, k=50, where=where)]
    words = [h.id for h in await keyword.query(query, k=50, where=where)]
    expected: dict[str, float] = {}
    for weight, ranking in ((0.5, vector), (1.0, words)):
        for rank, item_id in enumerate(ranking, start=1):
            expected[item_id] = expected.get(item_id, 0.0) + weight / (3 + rank)
    order = sorted(expected, key=lambda i: (-expected[i], i))

    result = await retriever.retrieve(query, scope=ADA, k=10, expand_neighbours=False)
    assert [b.record.version_id for b in result.blocks] == order
    assert [b.score for b in result.blocks] == pytest.approx([expected[i] for i in order])
    first = result.blocks[0]
    assert first.text == "a cat sat on the lake shore at sunset"
    assert first.ranks == {"vector": vector.index(first.record.version_id) + 1, "keyword": 1}
    assert result.candidates == len(order)


async def test_keyword_weight_alone_gives_the_bm25_order() -> None:
    store, keyword, retriever = await make(RetrievalSettings(vector_weight=0.0))
    for text in CORPUS:
        await store.add(text, scope=ADA)
    words = [h.id for h in await keyword.query("lake sunset", k=50, where=scope_filter(ADA))]
    result = await retriever.retrieve("lake sunset", scope=ADA, k=len(words), expand_neighbours=False)
    assert [b.record.version_id for b in result.blocks] == words


@pytest.mark.parametrize("budget", [0, 5, 12, 20, 33, 1000])
async def test_the_token_budget_is_never_exceeded(budget: int) -> None:
    store, _, retriever = await make(RetrievalSettings(block_overhead=2))
    for text in CORPUS:
        await store.add(text, scope=ADA)
    result = await retriever.retrieve("Ada cat lake running", scope=ADA, k=10, token_budget=budget)
    counter = TokenCounter()
    assert result.tokens <= budget
    assert (
        result.tokens == sum(counter.count(b.text) + 2 for b in result.blocks) == sum(b.tokens for b in result.blocks)
    )
    unlimited = await retriever.retrieve("Ada cat lake running", scope=ADA, k=10)
    ids = [b.record.version_id for b in unlimited.blocks]
    assert [ids.index(b.record.version_id) for b in result.blocks] == sorted(
        ids.index(b.record.version_id) for b in result.blocks
    )  # packing keeps rank order
    assert (budget == 1000) == (len(result.blocks) == len(CORPUS))


async def test_k_caps_the_number_of_blocks() -> None:
    store, _, retriever = await make()
    for text in CORPUS:
        await store.add(text, scope=ADA)
    result = await retriever.retrieve("Ada", scope=ADA, k=2, token_budget=1000)
    assert len(result.blocks) == 2


async def test_neighbour_expansion_brings_in_the_answer_after_a_question() -> None:
    store, _, retriever = await make(RetrievalSettings(vector_weight=0.0))
    await add_session(store, ADA, "s1", SESSION)
    await add_session(store, ADA, "s2", ["Ada: I went swimming.", "Bob: Researching anything new?"], day=1)
    plain = await retriever.retrieve("what are you researching", scope=ADA, k=10, expand_neighbours=False)
    (unmatched,) = [b for b in plain.blocks if b.text == "Ada: Mostly adoption agencies, honestly."]
    assert "keyword" not in unmatched.ranks and unmatched.score == 0.0  # only the zero-weight vector source has it

    result = await retriever.retrieve("what are you researching", scope=ADA, k=10)
    texts = [b.text for b in result.blocks]
    assert texts[2] == "Ada: Mostly adoption agencies, honestly."  # right after the two direct hits
    assert result.blocks[2].ranks["keyword"] == 3 and result.blocks[2].score > 0.0
    assert {"Bob: How was your week?", "Ada: I went swimming."} <= set(texts[3:5])  # turns before the hits
    assert all(not b.neighbour for b in plain.blocks)
    assert [b.neighbour for b in result.blocks[:3]] == [False, False, False]  # the vector source listed it


async def test_reads_never_cross_the_scope_even_through_neighbours() -> None:
    store, _, retriever = await make()
    await add_session(store, ADA, "s1", SESSION)
    await add_session(store, BOB, "s1", ["Bob: researching secrets", "Bob: the secret answer", "Bob: more"])
    result = await retriever.retrieve("researching secrets answer", scope=ADA, k=50)
    assert result.blocks and all(b.record.scope == ADA for b in result.blocks)
    other = await retriever.retrieve("researching secrets answer", scope=BOB, k=50)
    assert {b.text for b in other.blocks} == {"Bob: researching secrets", "Bob: the secret answer", "Bob: more"}
    assert (await retriever.retrieve("researching", scope=Scope(user_id="eve"), k=5)).blocks == []


async def test_time_filters_apply_to_the_event_time() -> None:
    store, _, retriever = await make()
    await add_session(store, ADA, "monday", ["Ada: went to the lake"], day=0)
    await add_session(store, ADA, "friday", ["Ada: went to the lake again"], day=4)
    await store.add("Ada likes the lake", scope=ADA)  # no event time
    since, until = T0 + timedelta(days=3), T0 + timedelta(days=5)
    result = await retriever.retrieve("lake", scope=ADA, k=10, since=since, until=until)
    assert [b.text for b in result.blocks] == ["Ada: went to the lake again"]
    before = await retriever.retrieve("lake", scope=ADA, k=10, until=T0 + timedelta(days=1))
    assert [b.text for b in before.blocks] == ["Ada: went to the lake"]
    with pytest.raises(InvalidInputError, match="timezone"):
        await retriever.retrieve("lake", scope=ADA, since=datetime(2030, 1, 1))


async def test_kinds_and_boosts() -> None:
    store, _, retriever = await make()
    await add_session(store, ADA, "s1", ["Ada: the lake was cold", "Bob: the lake was warm"])
    await store.add("The lake is deep", scope=ADA)
    episodic = await retriever.retrieve("lake", scope=ADA, k=10, kinds=["episodic"])
    assert {b.kind for b in episodic.blocks} == {"episodic"} and len(episodic.blocks) == 2
    boosted = await retriever.retrieve("lake", scope=ADA, k=1, boosts=[Boost({"meta_turn": 1}, 100.0)])
    assert [b.text for b in boosted.blocks] == ["Bob: the lake was warm"]


async def test_a_block_reached_only_through_a_neighbour_is_marked() -> None:
    store, _, retriever = await make(RetrievalSettings(candidates=1, vector_weight=0.0))
    await add_session(store, ADA, "s1", SESSION)
    result = await retriever.retrieve("what are you researching", scope=ADA, k=10)
    marks = {b.text: b.neighbour for b in result.blocks}
    assert marks["Bob: What are you researching these days?"] is False
    assert marks["Ada: Mostly adoption agencies, honestly."] is True
    assert "Bob: Nice. Mine was quiet." not in marks  # two turns away: not a neighbour


async def test_a_keyword_index_without_the_session_facet_is_refused() -> None:
    store = MemoryStore(InMemoryVectorIndex(HashEmbedder()))
    with pytest.raises(ConfigError, match="meta_session_id"):
        HybridRetriever(store, KeywordIndex(facets=()))
