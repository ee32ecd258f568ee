"""`HivegraphStore`: hivegraph memory behind LangGraph's `BaseStore`.

The behaviour checks of LangGraph's own store tests (namespaces, filters,
pagination, search, validation), rewritten here, run against the adapter over
the in-memory reference journal and the SQLite journal; then what only the
adapter promises: namespaces as scopes, journaled history and undo, exact
values, concurrent writers, the sync wrapper, a compiled `StateGraph`, and the
factory LangGraph's server calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NotRequired, TypedDict, TypeVar

import pytest
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import GetOp, InvalidNamespaceError, Item, ListNamespacesOp, PutOp, SearchItem, SearchOp

from hivegraph.errors import InvalidInputError
from hivegraph.integrations.langgraph_store import HivegraphStore, StoreNamespaceError, hivegraph_store
from hivegraph.memory.facade import Memory
from hivegraph.memory.types import MemoryRecord, Scope
from hivegraph.models._sync import run_sync
from tests.fixtures.settings import embedded_hash_settings
from tests.unit.test_links import open_memory

T = TypeVar("T")
KINDS = ["reference", "sqlite"]
U1 = Scope(user_id="u1")
EVERYONE = Scope()


@pytest.fixture(params=KINDS)
async def memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Memory]:
    opened = await open_memory(request.param, tmp_path).open()
    yield opened
    await opened.aclose()


@pytest.fixture
async def store(memory: Memory) -> HivegraphStore:
    return HivegraphStore(memory)  # made on the loop the memory was opened on


async def records_of(memory: Memory, scope: Scope = EVERYONE) -> list[MemoryRecord]:
    """The current semantic records in `scope` (every store item is one)."""
    return await memory.journal.records(scope=scope, kinds=["semantic"])


async def only_record(memory: Memory, scope: Scope) -> MemoryRecord:
    found = [r for r in await records_of(memory, scope) if r.scope == scope]
    assert len(found) == 1, found
    return found[0]


def keys(items: list[SearchItem]) -> list[str]:
    return [i.key for i in items]


# --- get, put, delete ----------------------------------------------------------------------------


VALUES: list[dict[str, Any]] = [
    {},
    {"text": "short", "n": 1, "ok": True, "none": None, "pi": 3.141592653589793},
    {"nested": {"list": [1, 2.5, "three", [False, None], {"deep": {"er": []}}]}, "big": 2**80, "neg": -0.0},
    {"unicode": "Grüße, 日本語, emoji 🎉", "quote": '"\\\n\t', "keys in order": {"b": 1, "a": 2}},
    {"large": "x" * 9_000, "also": ["y" * 5_000]},
]


@pytest.mark.parametrize("value", VALUES, ids=["empty", "scalars", "nested", "unicode", "multi-chunk"])
async def test_values_round_trip_exactly(store: HivegraphStore, value: dict[str, Any]) -> None:
    await store.aput(("docs",), "k", value)
    item = await store.aget(("docs",), "k")
    assert item is not None
    assert item.value == value
    assert list(item.value) == list(value)  # key order too
    assert item.namespace == ("docs",) and item.key == "k"


async def test_a_value_that_shrinks_and_grows_again_reads_back_exactly(store: HivegraphStore) -> None:
    for value in ({"v": "a" * 12_000}, {"v": "b"}, {"v": "c" * 5_000}, {}):
        await store.aput(("docs",), "k", value)
        item = await store.aget(("docs",), "k")
        assert item is not None and item.value == value


async def test_put_replaces_the_value_and_keeps_creation_time(store: HivegraphStore) -> None:
    await store.aput(("users", "u1", "prefs"), "food", {"likes": "pizza"})
    first = await store.aget(("users", "u1", "prefs"), "food")
    await store.aput(("users", "u1", "prefs"), "food", {"likes": "sushi"})
    second = await store.aget(("users", "u1", "prefs"), "food")
    assert first is not None and second is not None
    assert second.value == {"likes": "sushi"}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert first.created_at.tzinfo is not None


async def test_a_put_is_a_journaled_update_with_history_and_undo(store: HivegraphStore, memory: Memory) -> None:
    await store.aput(("users", "u1", "prefs"), "food", {"likes": "pizza"})
    await store.aput(("users", "u1", "prefs"), "food", {"likes": "sushi"})
    record = await only_record(memory, U1)
    history = await memory.history(record.id, scope=U1)
    assert [e.op.event for e in history.entries] == ["ADD", "UPDATE"]
    assert [v.version for v in history.versions] == [1, 2]
    assert "sushi" in record.text

    await memory.undo(history.entries[-1].op_id, scope=U1)
    item = await store.aget(("users", "u1", "prefs"), "food")
    assert item is not None and item.value == {"likes": "pizza"}


async def test_put_none_deletes_and_a_later_put_starts_a_new_item(store: HivegraphStore, memory: Memory) -> None:
    ns = ("users", "u1", "prefs")
    await store.aput(ns, "food", {"likes": "pizza"})
    first = await store.aget(ns, "food")
    await store.adelete(ns, "food")
    assert await store.aget(ns, "food") is None
    assert await store.asearch(ns) == []
    assert await store.alist_namespaces() == []
    assert await records_of(memory, U1) == []
    await store.adelete(ns, "food")  # deleting what is gone changes nothing

    await store.aput(ns, "food", {"likes": "tacos"})
    again = await store.aget(ns, "food")
    assert first is not None and again is not None
    assert again.value == {"likes": "tacos"} and again.created_at > first.created_at
    closed = await memory.journal.records(scope=U1, all_versions=True)
    deleted = [r for r in closed if "pizza" in r.text]
    assert [e.op.event for e in (await memory.history(deleted[0].id, scope=U1)).entries] == ["ADD", "DELETE"]


async def test_many_delete_and_put_cycles_leave_one_current_record(store: HivegraphStore, memory: Memory) -> None:
    for n in range(20):  # more generations than one lookup window
        await store.aput(("docs",), "k", {"n": n})
        await store.adelete(("docs",), "k")
    await store.aput(("docs",), "k", {"n": "last"})
    await store.aput(("docs",), "k", {"n": "really last"})
    item = await store.aget(("docs",), "k")
    assert item is not None and item.value == {"n": "really last"}
    assert len(await records_of(memory)) == 1


async def test_get_of_a_missing_item_is_none(store: HivegraphStore) -> None:
    assert await store.aget(("docs",), "nothing") is None
    await store.aput(("docs",), "k", {"a": 1})
    assert await store.aget(("docs", "sub"), "k") is None
    assert await store.aget(("other",), "k") is None


async def test_reads_of_a_batch_see_the_state_before_its_puts(store: HivegraphStore) -> None:
    ns = ("docs",)
    results = await store.abatch(
        [PutOp(ns, "k", {"v": 1}), GetOp(ns, "k"), PutOp(ns, "k", {"v": 2}), SearchOp(ns), ListNamespacesOp()]
    )
    assert results == [None, None, None, [], []]
    item = await store.aget(ns, "k")
    assert item is not None and item.value == {"v": 2}  # the last put of the batch wins


# --- namespaces and scopes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "scope"),
    [
        (("users", "u1", "prefs"), Scope(user_id="u1")),
        (("users", "u1"), Scope(user_id="u1")),
        (("teams", "t1", "agents", "a1", "notes"), Scope(team_id="t1", agent_id="a1")),
        (("runs", "r1", "users", "u1"), Scope(run_id="r1", user_id="u1")),
        (("users", "u1", "users", "u2"), Scope(user_id="u1")),  # a field is set once; the rest is path
        (("docs", "users", "u1"), Scope()),  # pairs only lead
        (("users",), Scope()),
        (("users", "*"), Scope()),
    ],
)
async def test_leading_scope_pairs_pick_the_scope(
    store: HivegraphStore, memory: Memory, namespace: tuple[str, ...], scope: Scope
) -> None:
    await store.aput(namespace, "k", {"a": 1})
    assert (await only_record(memory, scope)).scope == scope
    assert await store.alist_namespaces() == [namespace]


async def test_hivegraph_readers_of_the_scope_see_the_item(store: HivegraphStore, memory: Memory) -> None:
    await store.aput(("users", "u1", "prefs"), "food", {"likes": "green tea and pizza"})
    hits = await memory.search("green tea", scope=U1)
    assert [h.loaded.scope for h in hits] == [U1]
    assert "green tea" in hits[0].text
    assert await memory.search("green tea", scope=Scope(user_id="u2")) == []


async def test_other_memories_in_the_scope_are_not_items(store: HivegraphStore, memory: Memory) -> None:
    await memory.add("Ada drinks green tea", scope=U1)
    await store.aput(("users", "u1", "prefs"), "drink", {"tea": "green"})
    assert keys(await store.asearch(("users", "u1"))) == ["drink"]
    assert keys(await store.asearch(("users", "u1"), query="green tea")) == ["drink"]
    assert await store.alist_namespaces() == [("users", "u1", "prefs")]


async def test_a_store_bound_to_a_scope_keeps_to_it(memory: Memory) -> None:
    team = HivegraphStore(memory, scope=Scope(team_id="t1"))
    everyone = HivegraphStore(memory)
    await team.aput(("users", "u1"), "k", {"from": "team"})
    await everyone.aput(("users", "u1"), "k", {"from": "global"})
    assert (await only_record(memory, Scope(team_id="t1", user_id="u1"))).metadata
    item, other = await team.aget(("users", "u1"), "k"), await everyone.aget(("users", "u1"), "k")
    assert item is not None and item.value == {"from": "team"}
    assert other is not None and other.value == {"from": "global"}
    assert [i.value for i in await everyone.asearch(("users",))] == [{"from": "global"}]
    with pytest.raises(StoreNamespaceError, match="bound to team_id=t1"):
        await team.aput(("teams", "t2", "notes"), "k", {})
    await team.aput(("teams", "t1", "notes"), "k", {"same": "team"})
    assert (await only_record(memory, Scope(team_id="t1"))).scope == Scope(team_id="t1")


async def test_scope_labels_are_configurable(memory: Memory) -> None:
    store = HivegraphStore(memory, scope_labels={"memories": "user_id"})
    await store.aput(("memories", "u1"), "k", {"a": 1})
    await store.aput(("users", "u2"), "k", {"a": 2})
    assert (await only_record(memory, U1)).scope == U1
    assert (await only_record(memory, Scope())).scope == Scope()
    with pytest.raises(InvalidInputError, match="scope field"):
        HivegraphStore(memory, scope_labels={"orgs": "org_id"})


BAD_NAMESPACES: list[tuple[Any, str]] = [
    ((), "empty"),
    (("a.b",), "'.'"),
    (("docs", ""), "empty label"),
    (("docs", 1), "not a string"),
    (("a\x00b",), "NUL"),
    (["docs"], "tuple"),
]


@pytest.mark.parametrize(("namespace", "says"), BAD_NAMESPACES, ids=lambda v: repr(v))
async def test_bad_namespaces_raise_one_error_of_both_trees(
    store: HivegraphStore, memory: Memory, namespace: Any, says: str
) -> None:
    calls: list[Coroutine[Any, Any, object]] = [
        store.aput(namespace, "k", {"a": 1}),
        store.aget(namespace, "k"),
        store.adelete(namespace, "k"),
        store.abatch([PutOp(("good",), "k", {"a": 1}), PutOp(namespace, "k", {"a": 1})]),
        store.abatch([GetOp(namespace, "k")]),
    ]
    for call in calls:
        with pytest.raises(StoreNamespaceError, match=says) as caught:
            await call
        assert isinstance(caught.value, InvalidInputError) and isinstance(caught.value, InvalidNamespaceError)
    assert await records_of(memory) == []  # the good put of the refused batch did not run either


async def test_bad_prefixes_are_refused_but_an_empty_prefix_lists_everything(store: HivegraphStore) -> None:
    for call in (
        store.asearch(("a.b",)),
        store.alist_namespaces(prefix=("a.b",)),
        store.alist_namespaces(suffix=("",)),
    ):
        with pytest.raises(StoreNamespaceError):
            await call
    await store.aput(("a",), "k", {})
    assert keys(await store.asearch(())) == ["k"]


async def test_the_langgraph_root_is_reserved_for_put_but_not_for_raw_ops(store: HivegraphStore) -> None:
    with pytest.raises(StoreNamespaceError, match="reserved"):
        await store.aput(("langgraph", "foo"), "bar", {"a": 1})
    await store.aput(("foo", "langgraph", "foo"), "bar", {"a": 1})
    await store.abatch([PutOp(("langgraph", "foo"), "bar", {"b": 2})])  # as LangGraph's stores allow
    item = await store.aget(("langgraph", "foo"), "bar")
    assert item is not None and item.value == {"b": 2}


@pytest.mark.parametrize(
    "value",
    [{"t": (1, 2)}, {1: "a"}, {"n": float("nan")}, {"i": float("inf")}, {"s": {1, 2}}, {"o": object()}, ["a"]],
    ids=["tuple", "int-key", "nan", "inf", "set", "object", "list"],
)
async def test_values_json_would_change_are_refused(store: HivegraphStore, memory: Memory, value: Any) -> None:
    with pytest.raises(InvalidInputError):
        await store.aput(("docs",), "k", value)
    assert await records_of(memory) == []


async def test_ttl_and_oversized_values_are_refused(store: HivegraphStore) -> None:
    with pytest.raises(InvalidInputError, match="ttl"):
        await store.abatch([PutOp(("docs",), "k", {"a": 1}, ttl=5.0)])
    with pytest.raises(NotImplementedError):  # BaseStore's own check: `supports_ttl` is False
        await store.aput(("docs",), "k", {"a": 1}, ttl=5.0)
    with pytest.raises(InvalidInputError, match="over the limit"):
        await store.aput(("docs",), "k", {"a": "x" * 300_000})
    with pytest.raises(InvalidInputError, match="limit and offset"):
        await store.asearch(("docs",), limit=-1)


# --- search --------------------------------------------------------------------------------------


COLOURS: list[tuple[str, dict[str, Any]]] = [
    ("doc1", {"text": "red apple", "color": "red", "score": 4.5, "tags": ["fruit"], "meta": {"shop": "a"}}),
    ("doc2", {"text": "red car", "color": "red", "score": 3.0, "tags": ["vehicle"], "meta": {"shop": "b"}}),
    ("doc3", {"text": "green apple", "color": "green", "score": 4.0, "tags": ["fruit"], "meta": {"shop": "a"}}),
    ("doc4", {"text": "blue car", "color": "blue", "score": 3.5, "tags": ["vehicle"], "flag": True}),
]


@pytest.fixture
async def colours(store: HivegraphStore) -> HivegraphStore:
    for key, value in COLOURS:
        await store.aput(("test",), key, value)
    return store


FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({"color": "red"}, {"doc1", "doc2"}),
    ({"score": {"$gt": 3.2}}, {"doc1", "doc3", "doc4"}),
    ({"score": {"$gte": 4.0}, "color": "green"}, {"doc3"}),
    ({"score": {"$lt": 3.5}}, {"doc2"}),
    ({"score": {"$lte": 3.5}}, {"doc2", "doc4"}),
    ({"score": {"$gt": 3.0, "$lt": 4.5}}, {"doc3", "doc4"}),
    ({"color": {"$ne": "red"}}, {"doc3", "doc4"}),
    ({"color": {"$eq": "blue"}}, {"doc4"}),
    ({"color": {"$gt": "g"}}, {"doc1", "doc2", "doc3"}),  # strings compare with strings
    ({"tags": ["fruit"]}, {"doc1", "doc3"}),
    ({"meta": {"shop": "a"}}, {"doc1", "doc3"}),
    ({"meta.shop": "b"}, {"doc2"}),
    ({"flag": True}, {"doc4"}),
    ({"flag": 1}, set()),  # JSON equality: true is not 1
    ({"missing": {"$gt": 1}}, set()),  # no field, no match, no error
    ({"color": {"$gt": 1}}, set()),  # a string never compares with a number
    ({"color": "purple"}, set()),
]


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=[str(f) for f, _ in FILTERS])
async def test_filters_select_items_with_or_without_a_query(
    colours: HivegraphStore, where: dict[str, Any], expected: set[str]
) -> None:
    assert set(keys(await colours.asearch(("test",), filter=where))) == expected
    assert set(keys(await colours.asearch(("test",), query="apple car", filter=where, limit=10))) == expected


async def test_an_unknown_filter_operator_is_refused(colours: HivegraphStore) -> None:
    with pytest.raises(InvalidInputError, match=r"\$in"):
        await colours.asearch(("test",), filter={"color": {"$in": ["red"]}})


async def test_a_query_ranks_the_filtered_items(colours: HivegraphStore) -> None:
    apple = await colours.asearch(("test",), query="apple", filter={"color": "red"})
    assert keys(apple) == ["doc1", "doc2"]
    car = await colours.asearch(("test",), query="car", filter={"color": "red"})
    assert keys(car) == ["doc2", "doc1"]
    assert all(i.score is not None for i in apple + car)
    assert apple[0].score is not None and apple[1].score is not None and apple[0].score > apple[1].score
    blue = await colours.asearch(("test",), query="bbbbluuu", filter={"score": {"$gt": 3.2}})
    assert set(keys(blue)) == {"doc1", "doc3", "doc4"}


async def test_an_update_changes_how_a_query_ranks_the_item(store: HivegraphStore) -> None:
    await store.aput(("test",), "doc1", {"text": "zany zebra Xerxes"})
    await store.aput(("test",), "doc2", {"text": "something about dogs"})
    await store.aput(("test",), "doc3", {"text": "text about birds"})
    before = await store.asearch(("test",), query="Zany Xerxes")
    assert keys(before)[0] == "doc1"
    await store.aput(("test",), "doc1", {"text": "new text about dogs"})
    after = {i.key: i.score for i in await store.asearch(("test",), query="Zany Xerxes")}
    assert before[0].score is not None and (after["doc1"] or 0.0) < before[0].score
    assert keys(await store.asearch(("test",), query="new text about dogs"))[0] == "doc1"


async def test_an_item_put_with_index_false_is_found_but_never_ranked(store: HivegraphStore) -> None:
    for n, text in enumerate(["new text about dogs", "something about dogs", "text about birds"]):
        await store.aput(("test",), f"doc{n}", {"text": text})
    await store.aput(("test",), "hidden", {"text": "new text about dogs"}, index=False)
    top = await store.asearch(("test",), query="new text about dogs", limit=3)
    assert "hidden" not in keys(top)
    every = await store.asearch(("test",), query="new text about dogs", limit=10)
    assert every[-1].key == "hidden" and every[-1].score is None
    assert all(i.score is not None for i in every[:-1])
    item = await store.aget(("test",), "hidden")
    assert item is not None and item.value == {"text": "new text about dogs"}


async def test_index_fields_choose_the_text_search_ranks(store: HivegraphStore, memory: Memory) -> None:
    await store.aput(("test",), "a", {"title": "zebra crossing", "body": "giraffe"}, index=["title"])
    await store.aput(("test",), "b", {"title": "giraffe facts", "body": "zebra"}, index=["title"])
    assert keys(await store.asearch(("test",), query="giraffe"))[0] == "b"
    assert sorted(r.text for r in await records_of(memory)) == ["giraffe facts", "zebra crossing"]
    fields = HivegraphStore(memory, index_fields=["body"])
    await fields.aput(("other",), "c", {"title": "lion", "body": "hippo"})
    assert "hippo" in (await memory.search("hippo", scope=Scope(), k=1))[0].text


@pytest.mark.parametrize("query", ["", None, "   ", "test " * 100, "test!@#$%^&*()"])
async def test_any_query_finds_the_only_item(store: HivegraphStore, query: str | None) -> None:
    await store.aput(("test",), "doc1", {"text": "test document"})
    assert keys(await store.asearch(("test",), query=query)) == ["doc1"]


async def test_search_pages_without_a_query_newest_first(store: HivegraphStore) -> None:
    for n in range(5):
        await store.aput(("test",), f"doc{n}", {"n": n})
    await store.aput(("test",), "doc1", {"n": "updated"})
    pages = [keys(await store.asearch(("test",), limit=2, offset=o)) for o in (0, 2, 4, 6)]
    assert pages == [["doc1", "doc4"], ["doc3", "doc2"], ["doc0"], []]


async def test_search_pages_with_a_query_do_not_overlap(store: HivegraphStore) -> None:
    for n in range(5):
        await store.aput(("test",), f"doc{n}", {"text": f"test document number {n}"})
    first = await store.asearch(("test",), query="test", limit=2)
    second = await store.asearch(("test",), query="test", limit=2, offset=2)
    every = await store.asearch(("test",), query="test", limit=10)
    assert len(first) == 2 and len(second) == 2 and not set(keys(first)) & set(keys(second))
    assert keys(every) == keys(first + second) + keys(every)[4:] and len(every) == 5
    scores = [i.score for i in every]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)  # type: ignore[type-var]


async def test_search_matches_whole_labels_of_the_prefix(store: HivegraphStore) -> None:
    await store.aput(("a",), "top", {})
    await store.aput(("a", "b"), "below", {})
    await store.aput(("ab",), "other", {})
    assert sorted(keys(await store.asearch(("a",)))) == ["below", "top"]
    assert keys(await store.asearch(("a", "b"))) == ["below"]
    assert len(await store.asearch(())) == 3


async def test_items_beyond_the_retrievers_candidates_still_come_unscored(memory: Memory) -> None:
    store = HivegraphStore(memory)
    candidates = memory.retriever.settings.candidates
    for n in range(candidates + 10):
        await store.aput(("bulk",), f"k{n:03d}", {"text": f"filler item {n}"})
    found = await store.asearch(("bulk",), query="zzz unrelated", limit=candidates + 20)
    assert len(found) == candidates + 10 and len({i.key for i in found}) == candidates + 10
    assert found[-1].score is None and found[0].score is not None


# --- list_namespaces -----------------------------------------------------------------------------


TREE = [
    ("a", "b", "c"),
    ("a", "b", "d", "e"),
    ("a", "b", "d", "i"),
    ("a", "b", "f"),
    ("a", "c", "f"),
    ("b", "a", "f"),
    ("users", "123"),
    ("users", "456", "settings"),
    ("admin", "users", "789"),
]


@pytest.fixture
async def tree(store: HivegraphStore) -> HivegraphStore:
    for n, ns in enumerate(TREE):
        await store.aput(ns, f"id_{n}", {"data": f"value_{n:02d}"})
    return store


LISTINGS: list[tuple[dict[str, Any], list[tuple[str, ...]]]] = [
    ({"prefix": ("a", "b")}, [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]),
    ({"suffix": ("f",)}, [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]),
    ({"prefix": ("a",), "suffix": ("f",)}, [("a", "b", "f"), ("a", "c", "f")]),
    ({"prefix": ("a", "b"), "max_depth": 3}, [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]),
    ({"prefix": ("a", "b"), "limit": 2}, [("a", "b", "c"), ("a", "b", "d", "e")]),
    ({"prefix": ("a", "b"), "offset": 2}, [("a", "b", "d", "i"), ("a", "b", "f")]),
    ({"prefix": ("a", "*", "f")}, [("a", "b", "f"), ("a", "c", "f")]),
    ({"suffix": ("*", "f")}, [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]),
    ({"prefix": ("nonexistent",)}, []),
    ({"prefix": ("users", "123")}, [("users", "123")]),
    ({"prefix": ("users", "*")}, [("users", "123"), ("users", "456", "settings")]),
    ({"suffix": ("*", "settings")}, [("users", "456", "settings")]),
    ({"prefix": ("*", "users"), "suffix": ("*", "settings")}, []),
    ({"max_depth": 1}, [("a",), ("admin",), ("b",), ("users",)]),
    ({}, sorted(TREE)),
]


@pytest.mark.parametrize(("asked", "expected"), LISTINGS, ids=[str(a) for a, _ in LISTINGS])
async def test_list_namespaces(tree: HivegraphStore, asked: dict[str, Any], expected: list[tuple[str, ...]]) -> None:
    assert await tree.alist_namespaces(**asked) == expected


async def test_list_namespaces_pages_in_order(store: HivegraphStore) -> None:
    for n in range(20):
        await store.aput(("namespace", f"sub_{n:02d}"), f"id_{n:02d}", {"n": n})
    await store.aput(("namespace", "sub_03"), "second", {"n": 99})  # one namespace, listed once
    for offset in (0, 5, 15):
        page = await store.alist_namespaces(prefix=("namespace",), limit=5, offset=offset)
        assert page == [("namespace", f"sub_{n:02d}") for n in range(offset, offset + 5)]
    assert await store.alist_namespaces(prefix=("namespace",), offset=20) == []


async def test_list_namespaces_of_an_empty_store(store: HivegraphStore) -> None:
    assert await store.alist_namespaces() == []
    assert await store.alist_namespaces(prefix=("users", "u1")) == []


# --- concurrency ---------------------------------------------------------------------------------


async def assert_one_consistent_item(store: HivegraphStore, memory: Memory, key: str, values: list[Any]) -> None:
    item = await store.aget(("race",), key)
    assert item is not None and item.value in values
    current = [r for r in await records_of(memory) if key in r.text]
    assert len(current) == 1
    history = await memory.history(current[0].id, scope=Scope())
    assert [v.version for v in history.versions] == list(range(1, len(history.versions) + 1))
    assert history.entries[-1].after is not None and history.entries[-1].after.text == current[0].text
    assert (await memory.verify()).clean


async def test_concurrent_puts_to_one_key_leave_one_consistent_value(store: HivegraphStore, memory: Memory) -> None:
    values = [{"writer": n, "text": f"race {n}"} for n in range(6)]
    for key in ("fresh", "again"):
        await asyncio.gather(*(store.aput(("race",), key, {**v, "key": key}) for v in values))
        await assert_one_consistent_item(store, memory, key, [{**v, "key": key} for v in values])
    await store.adelete(("race",), "again")
    await asyncio.gather(*(store.aput(("race",), "again", {**v, "key": "again"}) for v in values))
    await assert_one_consistent_item(store, memory, "again", [{**v, "key": "again"} for v in values])


async def test_two_memories_on_one_journal_racing_for_a_new_key(tmp_path: Path) -> None:
    first, second = [await open_memory("sqlite", tmp_path).open() for _ in range(2)]
    try:
        stores = [HivegraphStore(first), HivegraphStore(second)]
        for round_ in range(5):
            key = f"k{round_}"
            await asyncio.gather(*(s.aput(("race",), key, {"by": n, "k": key}) for n, s in enumerate(stores)))
            seen = [await s.aget(("race",), key) for s in stores]
            assert seen[0] is not None and seen[0].value in [{"by": 0, "k": key}, {"by": 1, "k": key}]
            assert seen[0] == seen[1]
            assert len([r for r in await records_of(first) if key in r.text]) == 1
    finally:
        await first.aclose()
        await second.aclose()


# --- the sync wrapper ----------------------------------------------------------------------------


@contextmanager
def loop_in_thread() -> Generator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def exercise_sync(store: HivegraphStore) -> None:
    store.put(("users", "u1", "prefs"), "food", {"likes": "pizza"})
    store.put(("users", "u1", "prefs"), "food", {"likes": "sushi"})
    item = store.get(("users", "u1", "prefs"), "food")
    assert item is not None and item.value == {"likes": "sushi"}
    assert keys(store.search(("users",), query="sushi")) == ["food"]
    assert store.list_namespaces() == [("users", "u1", "prefs")]
    store.delete(("users", "u1", "prefs"), "food")
    assert store.get(("users", "u1", "prefs"), "food") is None


@pytest.mark.parametrize("kind", KINDS)
def test_sync_methods_from_a_thread_with_no_loop(tmp_path: Path, kind: str) -> None:
    with loop_in_thread() as loop:
        memory = on(loop, open_memory(kind, tmp_path).open())
        try:
            exercise_sync(HivegraphStore(memory, loop=loop))
        finally:
            on(loop, memory.aclose())


@pytest.mark.parametrize("kind", KINDS)
def test_sync_methods_on_a_memory_opened_through_run_sync(tmp_path: Path, kind: str) -> None:
    memory = run_sync(open_memory(kind, tmp_path).open())
    try:
        exercise_sync(HivegraphStore(memory))  # no loop given: hivegraph's own background loop
    finally:
        run_sync(memory.aclose())


@pytest.mark.parametrize("kind", KINDS)
def test_sync_methods_run_the_memorys_loop_when_it_is_idle(tmp_path: Path, kind: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        memory = loop.run_until_complete(open_memory(kind, tmp_path).open())
        exercise_sync(HivegraphStore(memory, loop=loop))
        loop.run_until_complete(memory.aclose())
    finally:
        loop.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_sync_methods_from_a_thread_running_another_loop(tmp_path: Path, kind: str) -> None:
    with loop_in_thread() as loop:
        memory = on(loop, open_memory(kind, tmp_path).open())
        try:
            store = HivegraphStore(memory, loop=loop)
            exercise_sync(store)  # this thread runs the test's loop; the memory's runs in the other
            await store.aput(("docs",), "k", {"async": True})  # awaited here, run on the memory's loop
            assert on(loop, store.aget(("docs",), "k")) is not None
        finally:
            on(loop, memory.aclose())


async def test_sync_methods_on_the_memorys_own_loop_refuse_instead_of_deadlocking(store: HivegraphStore) -> None:
    with pytest.raises(RuntimeError, match="await abatch"):
        store.put(("docs",), "k", {"a": 1})
    await asyncio.to_thread(exercise_sync, store)  # from a worker thread the same store works
    assert await store.aget(("docs",), "k") is None


# --- in a compiled graph, and from configuration -------------------------------------------------


class Chat(TypedDict):
    user: str
    likes: str
    remembered: NotRequired[str]


async def remember(state: Chat, runtime: Runtime[None]) -> dict[str, Any]:
    assert runtime.store is not None
    await runtime.store.aput(("users", state["user"], "prefs"), "food", {"likes": state["likes"]})
    return {}


def remember_sync(state: Chat) -> dict[str, Any]:
    get_store().put(("users", state["user"], "prefs"), "food", {"likes": state["likes"]})
    return {}


def recollect(state: Chat) -> dict[str, Any]:
    item = get_store().get(("users", state["user"], "prefs"), "food")  # a sync node runs in a worker thread
    return {"remembered": item.value["likes"] if item is not None else "nothing"}


def chat_graph(*, sync: bool = False) -> StateGraph[Chat, None, Chat, Chat]:
    graph = StateGraph(Chat)
    graph.add_node("remember", remember_sync if sync else remember)  # pyright: ignore[reportUnknownMemberType]
    graph.add_node("recollect", recollect)  # pyright: ignore[reportUnknownMemberType]
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "recollect")
    graph.add_edge("recollect", END)
    return graph


async def test_a_compiled_graph_writes_hivegraph_memory_through_runtime_store(memory: Memory) -> None:
    app = chat_graph().compile(store=HivegraphStore(memory))  # pyright: ignore[reportUnknownMemberType]
    out = await app.ainvoke({"user": "u1", "likes": "ramen"})  # pyright: ignore[reportUnknownMemberType]
    assert out["remembered"] == "ramen"
    out = await app.ainvoke({"user": "u1", "likes": "curry"})  # pyright: ignore[reportUnknownMemberType]
    assert out["remembered"] == "curry"

    hits = await memory.search("curry", scope=U1)
    assert [h.loaded.scope for h in hits] == [U1] and "curry" in hits[0].text
    history = await memory.history(hits[0].record_id, scope=U1)
    assert [e.op.event for e in history.entries] == ["ADD", "UPDATE"]
    assert all(e.actor == "langgraph" for e in history.entries)
    assert "ramen" in history.versions[0].text


def test_a_graph_invoked_synchronously_uses_the_store(tmp_path: Path) -> None:
    with loop_in_thread() as loop:
        memory = on(loop, open_memory("sqlite", tmp_path).open())
        try:
            app = chat_graph(sync=True).compile(store=HivegraphStore(memory, loop=loop))  # pyright: ignore[reportUnknownMemberType]
            out = app.invoke({"user": "u2", "likes": "pho"})  # pyright: ignore[reportUnknownMemberType]
            assert out["remembered"] == "pho"
            assert [r.text for r in on(loop, records_of(memory, Scope(user_id="u2")))] == ['{"likes": "pho"}']
        finally:
            on(loop, memory.aclose())


async def test_the_factory_opens_configured_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = embedded_hash_settings(tmp_path, monkeypatch)
    async with hivegraph_store(settings) as store:
        await store.aput(("users", "u1", "prefs"), "food", {"likes": "pizza"})
    async with hivegraph_store() as store:  # LangGraph's server calls it bare: settings from the environment
        item: Item | None = await store.aget(("users", "u1", "prefs"), "food")
        assert item is not None and item.value == {"likes": "pizza"}
        assert [r.scope for r in await records_of(store.memory, U1)] == [U1]
