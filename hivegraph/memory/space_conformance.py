"""One conformance suite that every `VectorSpace` backend must pass.

Each check is a small async function that takes an `OpenSpace` (a callable
opening the backend under test at one location with the embedder it is
given) and raises `AssertionError` on a deviation from the reference
(`InMemorySpace`). A test module parametrises over backends::

    @pytest.mark.parametrize("name", space_checks_for(MySpace))
    async def test_my_space(name: str, tmp_path: Path) -> None:
        await SPACE_CHECKS[name](lambda embedder: MySpace.open(tmp_path, embedder))

The embedder passed is a `HashEmbedder` (a `CountingEmbedder`, a subclass,
in some checks): a backend that records its embedder by name should record it
as the registered `hash` backend. Calling `OpenSpace` twice in one check must
open the same location again; each check starts from an empty space. What a
collection does is checked by `hivegraph.memory.conformance`; these checks are
about the space: names, independence, drop, reopen, marks, and the shared query cache.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from hivegraph.memory.stores.base import IndexItem, VectorSpace
from hivegraph.models.embedder import Embedder
from hivegraph.models.testing import HashEmbedder

OpenSpace = Callable[[Embedder], Awaitable[VectorSpace]]
"""Opens the space under test with this embedder; every call opens the same location."""
SpaceCheck = Callable[[OpenSpace], Awaitable[None]]

SPACE_CHECKS: dict[str, SpaceCheck] = {}
"""Every check, by name."""
SPACE_PERSISTENCE_CHECKS: frozenset[str] = frozenset({"collections_survive_reopen", "marks_survive_reopen"})
"""Checks that only apply to spaces whose `persistent` flag is True."""


class CountingEmbedder(HashEmbedder):
    """A `HashEmbedder` that records every text it embeds."""

    __test__ = False

    def __init__(self, dim: int = 64) -> None:
        super().__init__(dim)
        self.texts: list[str] = []
        """Every text embedded, in order."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Record `texts`, then embed them as `HashEmbedder` does."""
        self.texts.extend(texts)
        return super().embed(texts)


def space_checks_for(space_type: type[VectorSpace]) -> list[str]:
    """Name the checks that apply to `space_type` (persistence checks need `persistent`)."""
    return [name for name in SPACE_CHECKS if space_type.persistent or name not in SPACE_PERSISTENCE_CHECKS]


def _check(fn: SpaceCheck) -> SpaceCheck:
    SPACE_CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


@asynccontextmanager
async def _opened(open_space: OpenSpace, embedder: Embedder | None = None) -> AsyncGenerator[VectorSpace]:
    space = await open_space(embedder if embedder is not None else HashEmbedder())
    try:
        yield space
    finally:
        await space.aclose()


def _expect(got: object, want: object, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, expected {want!r}")


APPLE = IndexItem("a", "apples grow in orchards", {"kind": "fact"})
BIKE = IndexItem("b", "bicycles have two wheels", {"kind": "fact"})


@_check
async def check_collections_are_independent(open_space: OpenSpace) -> None:
    """An item upserted in one collection is not found, fetched, counted or deleted through another."""
    async with _opened(open_space) as space:
        first, second = space.collection("first"), space.collection("second")
        await first.upsert([APPLE])
        await second.upsert([BIKE])
        _expect(await second.get(["a"]), [], "get of the other collection's id")
        _expect([hit.id for hit in await second.query(APPLE.text, k=5)], ["b"], "query")
        _expect([id_ for id_, _ in await second.nearest(space.embed_query(APPLE.text), k=5)], ["b"], "nearest")
        _expect(await second.count(where={"kind": "fact"}), 1, "count")
        await second.delete(["a"])
        _expect(await first.get(["a"]), [APPLE], "the first collection's item after a delete in the second")


@_check
async def check_collection_returns_one_handle_per_name(open_space: OpenSpace) -> None:
    """`collection(name)` gives the same handle each time, and one that sees what the last one wrote."""
    async with _opened(open_space) as space:
        handle = space.collection("users")
        _expect(space.collection("users") is handle, True, "the same handle")
        await handle.upsert([APPLE])
        _expect(await space.collection("users").get(["a"]), [APPLE], "get through the handle again")


@_check
async def check_names_follow_writes_and_drops(open_space: OpenSpace) -> None:
    """`names()` lists the collections written to, sorted; not a handle never used; not a dropped one."""
    async with _opened(open_space) as space:
        _expect(await space.names(), [], "names of an empty space")
        space.collection("unused")
        for name in ("zeta", "alpha", "mid-1_x"):
            await space.collection(name).upsert([APPLE])
        _expect(await space.names(), ["alpha", "mid-1_x", "zeta"], "names after writes")
        await space.drop("mid-1_x")
        _expect(await space.names(), ["alpha", "zeta"], "names after a drop")
        await space.collection("mid-1_x").upsert([BIKE])
        _expect(await space.names(), ["alpha", "mid-1_x", "zeta"], "names after writing a dropped collection")


@_check
async def check_drop_leaves_the_other_collections(open_space: OpenSpace) -> None:
    """A dropped collection is empty (its handle still works); the others keep their items."""
    async with _opened(open_space) as space:
        kept, dropped = space.collection("kept"), space.collection("dropped")
        await kept.upsert([APPLE, BIKE])
        await dropped.upsert([APPLE, BIKE])
        await space.drop("dropped")
        _expect(await dropped.count(), 0, "count of the dropped collection")
        _expect(await kept.count(), 2, "count of the kept one")
        _expect([hit.id for hit in await kept.query(APPLE.text, k=1)], ["a"], "query of the kept one")
        await dropped.upsert([BIKE])
        _expect(await dropped.get(), [BIKE], "the dropped collection written again")


@_check
async def check_drop_of_an_unknown_collection_is_a_noop(open_space: OpenSpace) -> None:
    """Dropping a collection that does not exist changes nothing."""
    async with _opened(open_space) as space:
        await space.collection("there").upsert([APPLE])
        await space.drop("never-made")
        await space.drop("never-made")
        _expect(await space.names(), ["there"], "names")


@_check
async def check_invalid_names_raise_value_error(open_space: OpenSpace) -> None:
    """Names outside 1-63 of `[a-z0-9_-]`, or with `_`/`-` at either end, are refused by every method."""
    bad = ["", "Upper", "with space", "dot.ted", "a" * 64, "-lead", "trail_", "ünï", "slash/x"]
    async with _opened(open_space) as space:
        for name in bad:
            for call in (space.collection, space.drop):
                try:
                    result = call(name)
                    if isinstance(result, Awaitable):
                        await result
                except ValueError:
                    continue
                raise AssertionError(f"{call.__name__}({name!r}) did not raise ValueError")
        for good in ("a", "0", "a" * 63, "user_42-x"):
            space.collection(good)


@_check
async def check_embed_query_is_cached_across_collections(open_space: OpenSpace) -> None:
    """A query text is embedded once for the space, whichever collection or the space asks for it."""
    embedder = CountingEmbedder()
    text = "where does Ada live"
    async with _opened(open_space, embedder) as space:
        first, second = space.collection("first"), space.collection("second")
        await first.upsert([APPLE])
        await second.upsert([BIKE])
        vector = space.embed_query(text)
        _expect(first.embed_query(text), vector, "the first collection's vector")
        _expect(second.embed_query(text), vector, "the second collection's vector")
        await first.query(text, k=1)
        await second.query(text, k=1)
        _expect(vector, HashEmbedder().embed([text])[0], "the vector")
        _expect(embedder.texts.count(text), 1, f"times {text!r} was embedded")


@_check
async def check_collections_survive_reopen(open_space: OpenSpace) -> None:
    """Collections and their items are there, apart as before, after reopening the space."""
    async with _opened(open_space) as space:
        await space.collection("first").upsert([APPLE])
        await space.collection("second").upsert([BIKE])
        await space.collection("gone").upsert([BIKE])
        await space.drop("gone")
    async with _opened(open_space) as space:
        _expect(await space.names(), ["first", "second"], "names after reopen")
        _expect(await space.collection("first").get(), [APPLE], "first")
        hits = await space.collection("second").query(BIKE.text, k=5)
        _expect([hit.id for hit in hits], ["b"], "query of second")


@_check
async def check_marks_are_kept_apart_from_collections(open_space: OpenSpace) -> None:
    """A mark reads back what was set last, per name; None forgets it; marks are not collections."""
    async with _opened(open_space) as space:
        _expect(await space.mark("vector"), None, "a mark never set")
        await space.set_mark("vector", 3)
        await space.set_mark("vector", 7)
        await space.set_mark("graph", 0)
        _expect((await space.mark("vector"), await space.mark("graph")), (7, 0), "marks after setting them")
        _expect(await space.names(), [], "names of a space holding marks only")
        await space.collection("vector").upsert([APPLE])
        _expect(await space.mark("vector"), 7, "a mark next to a collection of the same name")
        await space.drop("vector")
        _expect(await space.mark("vector"), 7, "a mark after its namesake collection is dropped")
        await space.set_mark("vector", None)
        _expect((await space.mark("vector"), await space.mark("graph")), (None, 0), "marks after forgetting one")
        await space.set_mark("vector", None)  # forgetting twice is a no-op
        for bad in ("", "Upper", "-dash", "x" * 64):
            try:
                await space.set_mark(bad, 1)
            except ValueError:
                continue
            raise AssertionError(f"set_mark({bad!r}) did not raise ValueError")


@_check
async def check_marks_survive_reopen(open_space: OpenSpace) -> None:
    """Marks are there after reopening the space, as last set."""
    async with _opened(open_space) as space:
        await space.set_mark("vector", 41)
        await space.set_mark("vector", 42)
        await space.set_mark("gone", 1)
        await space.set_mark("gone", None)
    async with _opened(open_space) as space:
        _expect((await space.mark("vector"), await space.mark("gone")), (42, None), "marks after reopen")
