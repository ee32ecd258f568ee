"""Hybrid retrieval: fusion order, token budget, neighbour expansion, scope and time filters."""

from datetime import UTC, datetime, timedelta

import pytest

from hivegraph.errors import InvalidInputError
from hivegraph.memory.facade import Memory, MemoryOptions
from hivegraph.memory.retrieval import Boost, RetrievalSettings
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.text import tokenize
from hivegraph.memory.types import AddOp, MemoryOp, Scalar, Scope
from hivegraph.models.testing import HashEmbedder
from hivegraph.models.tokens import TokenCounter

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
T0 = datetime(2030, 5, 1, tzinfo=UTC)
EXPANDING = RetrievalSettings(after_share=0.5, before_share=0.3)
"""Neighbour expansion on (off by default), with the shares LoCoMo-style data uses."""
KEYWORD_ONLY = {"vector": 0.0, "keyword": 1.0}

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


def make(settings: RetrievalSettings | None = None) -> Memory:
    """A memory over the in-memory space and journal, retrieving with `settings`."""
    store = MemoryStore(InMemorySpace(HashEmbedder()))
    return Memory(store, options=MemoryOptions(retrieval=settings or RetrievalSettings()))


def with_settings(memory: Memory, settings: RetrievalSettings) -> Memory:
    """Another memory over the same store, retrieving with `settings`."""
    return Memory(memory.store, options=MemoryOptions(retrieval=settings))


async def add_session(memory: Memory, scope: Scope, session: str, texts: list[str], day: int = 0) -> None:
    ops: list[MemoryOp] = []
    for turn, text in enumerate(texts):
        meta: dict[str, Scalar] = {"session_id": session, "turn": turn,
                                   "occurred_at": (T0 + timedelta(days=day, minutes=turn)).timestamp()}  # fmt: skip
        ops.append(AddOp(text=text, kind="episodic", metadata=meta))
    result = await memory.apply(ops, scope=scope, actor="test")
    assert not result.refused


async def test_hits_follow_reciprocal_rank_fusion_of_both_sources() -> None:
    memory = make(RetrievalSettings(rrf_k=3, weights={"vector": 0.5, "keyword": 1.0}))
    for text in CORPUS:
        await memory.add(text, scope=ADA)
    query = "cat at the lake"
    vector = [h.id for h in await memory.search(query, scope=ADA, k=50)]
    words = [version_id for version_id, _ in await memory.journal.keyword_search(tokenize(query), scope=ADA, k=50)]
    expected: dict[str, float] = {}
    for weight, ranking in ((0.5, vector), (1.0, words)):
        for rank, item_id in enumerate(ranking, start=1):
            expected[item_id] = expected.get(item_id, 0.0) + weight / (3 + rank)
    order = sorted(expected, key=lambda i: (-expected[i], i))

    result = await memory.recall(query, scope=ADA, k=10)
    assert [h.loaded.version_id for h in result.hits] == order
    assert [h.score for h in result.hits] == pytest.approx([expected[i] for i in order])
    first = result.hits[0]
    assert first.text == "a cat sat on the lake shore at sunset"
    assert first.ranks == {"vector": vector.index(first.loaded.version_id) + 1, "keyword": 1}
    assert result.candidates == len(order)


async def test_keyword_weight_alone_gives_the_bm25_order() -> None:
    memory = make(RetrievalSettings(weights=KEYWORD_ONLY))
    for text in CORPUS:
        await memory.add(text, scope=ADA)
    found = await memory.journal.keyword_search(tokenize("lake sunset"), scope=ADA, k=50)
    words = [version_id for version_id, _ in found]
    result = await memory.recall("lake sunset", scope=ADA, k=len(words))
    assert [h.loaded.version_id for h in result.hits] == words


@pytest.mark.parametrize("budget", [0, 5, 12, 20, 33, 1000])
async def test_the_token_budget_is_never_exceeded(budget: int) -> None:
    memory = make(RetrievalSettings(after_share=0.5, before_share=0.3, block_overhead=2))
    for text in CORPUS:
        await memory.add(text, scope=ADA)
    result = await memory.recall("Ada cat lake running", scope=ADA, k=10, token_budget=budget)
    counter = TokenCounter()
    assert result.tokens <= budget
    assert [h.tokens for h in result.hits] == [counter.count(h.text) + 2 for h in result.hits]
    assert result.tokens == sum(counter.count(h.text) + 2 for h in result.hits)
    unlimited = await memory.recall("Ada cat lake running", scope=ADA, k=10)
    ids = [h.loaded.version_id for h in unlimited.hits]
    assert [ids.index(h.loaded.version_id) for h in result.hits] == sorted(
        ids.index(h.loaded.version_id) for h in result.hits
    )  # packing keeps rank order
    assert (budget == 1000) == (len(result.hits) == len(CORPUS))


async def test_k_caps_the_number_of_hits() -> None:
    memory = make(EXPANDING)
    for text in CORPUS:
        await memory.add(text, scope=ADA)
    result = await memory.recall("Ada", scope=ADA, k=2, token_budget=1000)
    assert len(result.hits) == 2


async def test_neighbour_expansion_brings_in_the_answer_after_a_question() -> None:
    memory = make(RetrievalSettings(weights=KEYWORD_ONLY, after_share=0.5, before_share=0.3))
    await add_session(memory, ADA, "s1", SESSION)
    await add_session(memory, ADA, "s2", ["Ada: I went swimming.", "Bob: Researching anything new?"], day=1)
    plain = await with_settings(memory, RetrievalSettings(weights=KEYWORD_ONLY)).recall(
        "what are you researching", scope=ADA, k=10
    )
    (unmatched,) = [h for h in plain.hits if h.text == "Ada: Mostly adoption agencies, honestly."]
    assert "keyword" not in unmatched.ranks and unmatched.score == 0.0  # only the zero-weight vector source has it

    result = await memory.recall("what are you researching", scope=ADA, k=10)
    texts = [h.text for h in result.hits]
    assert texts[2] == "Ada: Mostly adoption agencies, honestly."  # right after the two direct hits
    assert result.hits[2].ranks["keyword"] == 3 and result.hits[2].score > 0.0
    assert {"Bob: How was your week?", "Ada: I went swimming."} <= set(texts[3:5])  # turns before the hits
    assert all(not h.neighbour for h in plain.hits)
    assert [h.neighbour for h in result.hits[:3]] == [False, False, False]  # the vector source listed it


async def test_reads_never_cross_the_scope_even_through_neighbours() -> None:
    memory = make(EXPANDING)
    await add_session(memory, ADA, "s1", SESSION)
    await add_session(memory, BOB, "s1", ["Bob: researching secrets", "Bob: the secret answer", "Bob: more"])
    result = await memory.recall("researching secrets answer", scope=ADA, k=50)
    assert result.hits and all(h.loaded.scope == ADA for h in result.hits)
    other = await memory.recall("researching secrets answer", scope=BOB, k=50)
    assert {h.text for h in other.hits} == {"Bob: researching secrets", "Bob: the secret answer", "Bob: more"}
    assert (await memory.recall("researching", scope=Scope(user_id="eve"), k=5)).hits == []


async def test_time_filters_apply_to_the_event_time() -> None:
    memory = make(EXPANDING)
    await add_session(memory, ADA, "monday", ["Ada: went to the lake"], day=0)
    await add_session(memory, ADA, "friday", ["Ada: went to the lake again"], day=4)
    await memory.add("Ada likes the lake", scope=ADA)  # no event time
    since, until = T0 + timedelta(days=3), T0 + timedelta(days=5)
    result = await memory.recall("lake", scope=ADA, k=10, since=since, until=until)
    assert [h.text for h in result.hits] == ["Ada: went to the lake again"]
    before = await memory.recall("lake", scope=ADA, k=10, until=T0 + timedelta(days=1))
    assert [h.text for h in before.hits] == ["Ada: went to the lake"]
    with pytest.raises(InvalidInputError, match="timezone"):
        await memory.recall("lake", scope=ADA, since=datetime(2030, 1, 1))


async def test_kinds_and_boosts() -> None:
    memory = make(EXPANDING)
    await add_session(memory, ADA, "s1", ["Ada: the lake was cold", "Bob: the lake was warm"])
    await memory.add("The lake is deep", scope=ADA)
    episodic = await memory.recall("lake", scope=ADA, k=10, kinds=["episodic"])
    assert {h.kind for h in episodic.hits} == {"episodic"} and len(episodic.hits) == 2
    boosted = await memory.recall("lake", scope=ADA, k=1, boosts=[Boost({"turn": 1}, 100.0)])
    assert [h.text for h in boosted.hits] == ["Bob: the lake was warm"]


async def test_a_hit_reached_only_through_a_neighbour_is_marked() -> None:
    memory = make(RetrievalSettings(candidates=1, weights=KEYWORD_ONLY, after_share=0.5, before_share=0.3))
    await add_session(memory, ADA, "s1", SESSION)
    result = await memory.recall("what are you researching", scope=ADA, k=10)
    marks = {h.text: h.neighbour for h in result.hits}
    assert marks["Bob: What are you researching these days?"] is False
    assert marks["Ada: Mostly adoption agencies, honestly."] is True
    assert "Bob: Nice. Mine was quiet." not in marks  # two turns away: not a neighbour


async def test_turns_next_to_a_hit_take_a_share_of_its_score() -> None:
    memory = make(RetrievalSettings(candidates=2, weights=KEYWORD_ONLY, after_share=0.5, before_share=0.3))
    await add_session(memory, ADA, "s1", ["Bob: hello there", "Ada: quantum quantum quantum physics",
                                          "Bob: fascinating stuff", "Ada: thanks"])  # fmt: skip
    await add_session(memory, ADA, "s2", ["Ada: some physics is fun"], day=1)
    result = await memory.recall("quantum physics", scope=ADA, k=10)
    assert [h.text for h in result.hits] == [
        "Ada: quantum quantum quantum physics",
        "Bob: fascinating stuff",  # after the strong hit: half its score
        "Bob: hello there",  # before it: a smaller share
        "Ada: some physics is fun",  # the weak hit, with no neighbours
    ]  # "Ada: thanks", two turns from the hit, is no candidate


async def test_turns_of_the_session_the_query_is_about_rise_together() -> None:
    plain = make(RetrievalSettings(weights=KEYWORD_ONLY))
    await add_session(plain, ADA, "trip", ["Ada: the lake trip", "Bob: the lake was cold", "Ada: we swam in the lake"])
    await add_session(plain, ADA, "chat", ["Bob: hello", "Bob: lake photos", "Ada: bye"], day=1)
    first = (await plain.recall("lake photos", scope=ADA, k=1)).hits
    assert [h.text for h in first] == ["Bob: lake photos"]  # both words: the best single turn

    lifted = with_settings(plain, RetrievalSettings(weights=KEYWORD_ONLY, session_lift=1.0))
    hits = (await lifted.recall("lake photos", scope=ADA, k=4)).hits
    trip = {"Ada: the lake trip", "Bob: the lake was cold", "Ada: we swam in the lake"}
    assert {h.text for h in hits[:3]} == trip  # three matching turns make "trip" the stronger session
    assert hits[3].text == "Bob: lake photos"


async def test_records_outside_sessions_keep_their_score() -> None:
    plain = make(RetrievalSettings(weights=KEYWORD_ONLY))
    await plain.add("lake photos from the trip", scope=ADA)
    await add_session(plain, ADA, "s", ["Ada: lake", "Bob: the lake"])
    lifted = with_settings(plain, RetrievalSettings(weights=KEYWORD_ONLY, session_lift=0.5))
    before = {h.text: h.score for h in (await plain.recall("lake photos trip", scope=ADA, k=3)).hits}
    after = {h.text: h.score for h in (await lifted.recall("lake photos trip", scope=ADA, k=3)).hits}
    assert after["lake photos from the trip"] == before["lake photos from the trip"]
    assert all(after[text] > before[text] for text in ("Ada: lake", "Bob: the lake"))
