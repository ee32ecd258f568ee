"""Procedural memory (Memp): distil, store, retrieve by task, count outcomes, deprecate, undo."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hivegraph.agents.distiller import ProcedureDistiller, render_request
from hivegraph.errors import ConfigError, MemoryStoreError, RecordNotFoundError, UnexpectedModelOutput
from hivegraph.memory import procedural
from hivegraph.memory.facade import Memory
from hivegraph.memory.journal import Batch, BatchResult
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.journal_sqlite import SqliteJournal
from hivegraph.memory.procedural import MAX_OUTCOME_ATTEMPTS, ProceduralMemory, Procedure, render, render_all
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.memory.types import DeleteOp, MemoryRecord, Scope, UpdateOp
from hivegraph.models.base import Message, system, user
from hivegraph.models.testing import FunctionModel, HashEmbedder, RequestInfo, ScriptedModel

ADA = Scope(user_id="ada")
BOB = Scope(user_id="bob")
TASK = "Book a table for two at an Italian restaurant on Friday evening"
TRAJECTORY = [
    ("planner", "Search restaurants: cuisine=italian, date=Friday, party=2"),
    ("booker", "Trattoria Roma has a free table at 19:30; reserving it"),
    ("booker", "Reservation confirmed, code R-481"),
]
STEPS = ["Search restaurants by cuisine, date and party size", "Pick one with a free slot", "Reserve and confirm"]
SCRIPT = "hits = search(cuisine, date, size)\nslot = first_free(hits)\nreserve(slot); confirm()"


def procedures(store: MemoryStore, *, min_uses: int = 3, deprecate_below: float = 0.5) -> ProceduralMemory:
    """Procedural memory in `store`, retrieving through the store's default retriever (vector and keyword)."""
    return ProceduralMemory(store, Memory(store).retriever, min_uses=min_uses, deprecate_below=deprecate_below)


def reply(steps: list[str] = STEPS, script: str = SCRIPT) -> str:
    return json.dumps({"steps": steps, "script": script})


def procedure(task: str, *, steps: list[str] = STEPS, successes: int = 0, failures: int = 0) -> Procedure:
    return Procedure(task=task, steps=steps, script=SCRIPT, source_model="test", successes=successes, failures=failures)


async def test_a_successful_trajectory_is_distilled_and_stored(memory_store: MemoryStore) -> None:
    model = ScriptedModel([reply()], model_name="strong")
    result = await ProcedureDistiller(model).learn(procedures(memory_store), TASK, TRAJECTORY, success=True, scope=ADA)
    assert result.model_calls == 1 and result.record is not None and not result.known
    stored = await memory_store.get(result.record.id, scope=ADA)
    assert stored is not None and stored.kind == "procedural" and stored.text == TASK
    assert json.loads(str(stored.metadata["steps"])) == STEPS
    assert stored.metadata["script"] == SCRIPT
    meta = stored.metadata
    assert (meta["successes"], meta["failures"], meta["source_model"], meta["deprecated"]) == (0, 0, "strong", "")
    request = model.requests[0]
    assert request.output_schema is not None and request.output_schema.name == "DistilledProcedure"
    prompt = request.messages[-1].content
    assert TASK in prompt and "[3] booker: Reservation confirmed, code R-481" in prompt
    entries = await memory_store.journal.read()
    assert [(e.op.event, e.actor) for e in entries] == [("ADD", "procedure_distiller")]


async def test_a_failed_trajectory_is_not_distilled(memory_store: MemoryStore) -> None:
    model = ScriptedModel([])  # any request would fail the test
    distiller = ProcedureDistiller(model)
    assert await distiller.distill(TASK, TRAJECTORY, success=False) is None
    result = await distiller.learn(procedures(memory_store), TASK, TRAJECTORY, success=False, scope=ADA)
    assert result.record is None and result.model_calls == 0 and model.requests == []
    assert await memory_store.journal.read() == []


async def test_messages_are_accepted_as_a_trajectory() -> None:
    messages = [user("find a table"), Message(role="assistant", content="booked", name="booker")]
    text = render_request(TASK, messages, max_chars=1000)
    assert "[1] user: find a table\n[2] booker: booked" in text and "(2 steps)" in text


def test_long_trajectories_keep_their_beginning_and_end() -> None:
    steps = [("agent", f"step {n} " + "x" * 50) for n in range(200)]
    text = render_request(TASK, steps, max_chars=900)
    assert "[1] agent: step 0" in text and "step 199" in text and "characters omitted" in text
    assert len(text) < 900 + len(TASK) + 100


@pytest.mark.parametrize(
    "bad_reply",
    [
        "not json",
        json.dumps({"steps": [], "script": SCRIPT}),
        json.dumps({"steps": ["   "], "script": SCRIPT}),
        json.dumps({"steps": STEPS}),
        json.dumps({"steps": STEPS, "script": ""}),
        json.dumps({"steps": [f"step {n}" for n in range(9)], "script": SCRIPT}),
        json.dumps({"steps": ["x" * 161], "script": SCRIPT}),
    ],
)
async def test_invalid_distiller_output_is_retried_then_raises_and_stores_nothing(
    memory_store: MemoryStore, bad_reply: str
) -> None:
    model = ScriptedModel([bad_reply] * 3, max_retries=2)
    with pytest.raises(UnexpectedModelOutput) as info:
        await ProcedureDistiller(model).learn(procedures(memory_store), TASK, TRAJECTORY, success=True, scope=ADA)
    assert info.value.body == bad_reply and len(info.value.errors) == 3 and len(model.requests) == 3
    assert await memory_store.list(scope=ADA) == [] and await memory_store.journal.read() == []


async def test_a_rejected_reply_is_retried_with_feedback(memory_store: MemoryStore) -> None:
    model = ScriptedModel([json.dumps({"steps": [], "script": SCRIPT}), reply()])
    result = await ProcedureDistiller(model).learn(procedures(memory_store), TASK, TRAJECTORY, success=True, scope=ADA)
    assert result.procedure is not None and result.procedure.steps == STEPS
    assert "rejected" in model.requests[1].messages[-1].content and "steps" in model.requests[1].messages[-1].content


async def test_retrieval_ranks_by_task_similarity_and_stays_in_scope(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store)
    table = await memory.add(procedure(TASK), scope=ADA, actor="t")
    await memory.add(procedure("Plan a cycling route through the hills"), scope=ADA, actor="t")
    await memory.add(procedure("Send the monthly invoice to the client by email"), scope=ADA, actor="t")
    bobs = await memory.add(procedure("Book a table for two at an Italian restaurant on Friday"), scope=BOB, actor="t")
    await memory_store.add("Ada likes Italian restaurants on Friday", scope=ADA)  # semantic, not a procedure
    found = await memory.retrieve("Book a table at an Italian restaurant for Friday", scope=ADA, k=5)
    assert found[0].record_id == table.id
    assert len(found) == 3 and bobs.id not in {hit.record_id for hit in found}
    assert all(found[i].score >= found[i + 1].score for i in range(len(found) - 1))
    assert found[0].procedure == procedure(TASK)
    only_bob = await memory.retrieve(TASK, scope=BOB, k=5)
    assert [hit.record_id for hit in only_bob] == [bobs.id]
    assert len(await memory.retrieve("Book a table", scope=ADA, k=5, min_score=found[0].score + 0.01)) == 0


async def test_the_same_task_is_not_stored_twice_nor_distilled_again(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store)
    first = await memory.add(procedure(TASK), scope=ADA, actor="t")
    again = await memory.add(procedure(TASK.upper(), steps=["other"]), scope=ADA, actor="t")
    assert again == first
    result = await ProcedureDistiller(ScriptedModel([])).learn(memory, TASK, TRAJECTORY, success=True, scope=ADA)
    assert result.known and result.model_calls == 0 and result.record == first
    assert len(await memory_store.list(scope=ADA)) == 1


async def test_a_task_too_long_for_the_store_is_refused(memory_store: MemoryStore) -> None:
    with pytest.raises(MemoryStoreError, match="over the limit"):
        await procedures(memory_store).add(procedure("x" * 600), scope=ADA, actor="t")
    assert await memory_store.journal.read() == []


async def test_success_and_failure_counts_are_journaled(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store, min_uses=10)
    record = await memory.add(procedure(TASK), scope=ADA, actor="builder")
    first = await memory.record_outcome(record.id, success=True, scope=ADA, actor="runner")
    second = await memory.record_outcome(record.id, success=False, scope=ADA, actor="judge")
    assert not first.deprecated and (second.procedure.successes, second.procedure.failures) == (1, 1)
    history = await memory_store.history(record.id, scope=ADA)
    counts = [(v.metadata["successes"], v.metadata["failures"]) for v in history.versions]
    assert counts == [(0, 0), (1, 0), (1, 1)]
    assert [v.version for v in history.versions] == [1, 2, 3] and all(v.text == TASK for v in history.versions)
    ops = [(e.op.event, e.actor) for e in history.entries]
    assert ops == [("ADD", "builder"), ("UPDATE", "runner"), ("UPDATE", "judge")]
    assert history.entries[2].op_id == second.update.op_id
    current = await memory.get(record.id, scope=ADA)
    assert current is not None and current.uses == 2 and current.success_rate == 0.5


def sqlite_store(path: Path) -> MemoryStore:
    """A store over its own handle on the SQLite journal at `path` (its own index, as in another process)."""
    return MemoryStore(InMemorySpace(HashEmbedder()), journal=SqliteJournal(path))


@pytest.fixture
async def sqlite_stores(tmp_path: Path) -> AsyncIterator[list[MemoryStore]]:
    """Two stores over two handles on one SQLite journal file."""
    stores = [sqlite_store(tmp_path / "journal.sqlite") for _ in range(2)]
    yield stores
    for store in stores:
        await store.aclose()


async def count_outcomes(memory: ProceduralMemory, record_id: uuid.UUID, n: int, actor: str) -> None:
    """Record `n` outcomes one after another, alternating success and failure."""
    for i in range(n):
        await memory.record_outcome(record_id, success=i % 2 == 0, scope=ADA, actor=actor)


async def assert_every_outcome_counted(memory: ProceduralMemory, record_id: uuid.UUID, store: MemoryStore) -> None:
    """40 outcomes (20 by each writer): the counts and the history hold every one of them, once."""
    final = await memory.get(record_id, scope=ADA)
    assert final is not None and (final.successes, final.failures) == (20, 20)
    history = await store.history(record_id, scope=ADA)
    uses = [int(v.metadata["successes"]) + int(v.metadata["failures"]) for v in history.versions]
    assert uses == list(range(41))
    assert sorted(e.actor for e in history.entries[1:]) == ["a"] * 20 + ["b"] * 20


async def test_two_procedural_memories_on_one_store_lose_no_count(sqlite_stores: list[MemoryStore]) -> None:
    store = sqlite_stores[0]
    first, second = procedures(store, min_uses=100), procedures(store, min_uses=100)
    record = await first.add(procedure(TASK), scope=ADA, actor="t")
    await asyncio.gather(count_outcomes(first, record.id, 20, "a"), count_outcomes(second, record.id, 20, "b"))
    await assert_every_outcome_counted(first, record.id, store)


async def test_two_journal_handles_on_one_file_lose_no_count(sqlite_stores: list[MemoryStore]) -> None:
    first, second = (procedures(store, min_uses=100) for store in sqlite_stores)
    record = await first.add(procedure(TASK), scope=ADA, actor="t")
    await asyncio.gather(count_outcomes(first, record.id, 20, "a"), count_outcomes(second, record.id, 20, "b"))
    await assert_every_outcome_counted(second, record.id, sqlite_stores[1])


class InterferingJournal(InMemoryJournal):
    """A journal where another writer touches the record just before each batch holding an op of `kind`."""

    def __init__(self, kind: type[UpdateOp | DeleteOp]) -> None:
        super().__init__()
        self.kind = kind
        self.interruptions = 0

    async def submit(self, batch: Batch) -> BatchResult:
        """Apply the other writer's UPDATE of the op's record first, then `batch`."""
        target = next((op for op in batch.ops if isinstance(op, self.kind)), None)
        if target is not None:
            self.interruptions += 1
            touch = UpdateOp(record_id=target.record_id, text=TASK, metadata={"touched": self.interruptions})
            await super().submit(Batch(ops=[touch], scope=batch.scope, actor="other"))
        return await super().submit(batch)


async def test_an_outcome_that_keeps_conflicting_gives_up_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procedural, "BACKOFF_CAP_S", 0.0)  # no waiting between the doomed attempts
    journal = InterferingJournal(UpdateOp)
    store = MemoryStore(InMemorySpace(HashEmbedder()), journal=journal)
    memory = procedures(store)
    record = await memory.add(procedure(TASK), scope=ADA, actor="t")
    with pytest.raises(MemoryStoreError, match=f"kept changing it \\({MAX_OUTCOME_ATTEMPTS} attempts conflicted"):
        await memory.record_outcome(record.id, success=True, scope=ADA, actor="runner")
    assert journal.interruptions == MAX_OUTCOME_ATTEMPTS
    history = await store.history(record.id, scope=ADA)
    assert {e.actor for e in history.entries[1:]} == {"other"}  # not one count of the runner landed
    current = await memory.get(record.id, scope=ADA)
    assert current is not None and current.uses == 0


async def test_a_deprecation_is_not_applied_over_a_newer_version() -> None:
    store = MemoryStore(InMemorySpace(HashEmbedder()), journal=InterferingJournal(DeleteOp))
    memory = procedures(store, min_uses=1, deprecate_below=0.5)
    record = await memory.add(procedure(TASK), scope=ADA, actor="t")
    outcome = await memory.record_outcome(record.id, success=False, scope=ADA, actor="judge")
    assert outcome.update.after is not None and outcome.update.after.version == 2
    assert not outcome.deprecated  # version 3 (the other writer's) is not the one the decision saw
    current = await store.get(record.id, scope=ADA)
    assert current is not None and (current.version, current.metadata["touched"]) == (3, 1)
    history = await store.history(record.id, scope=ADA)
    assert [(e.op.event, e.actor) for e in history.entries] == [("ADD", "t"), ("UPDATE", "judge"), ("UPDATE", "other")]


async def test_outcomes_are_refused_outside_the_scope(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store)
    record = await memory.add(procedure(TASK), scope=BOB, actor="t")
    with pytest.raises(RecordNotFoundError):
        await memory.record_outcome(record.id, success=False, scope=ADA, actor="t")
    with pytest.raises(RecordNotFoundError):
        await memory.record_outcome(uuid.uuid4(), success=True, scope=BOB, actor="t")
    semantic = await memory_store.add("Bob likes pasta", scope=BOB)
    with pytest.raises(RecordNotFoundError):
        await memory.record_outcome(semantic.id, success=True, scope=BOB, actor="t")
    assert len(await memory_store.journal.read()) == 2


async def test_a_procedure_that_keeps_failing_is_deprecated_not_erased(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store, min_uses=3, deprecate_below=0.5)
    record = await memory.add(procedure(TASK), scope=ADA, actor="t")
    outcomes = [await memory.record_outcome(record.id, success=s, scope=ADA, actor="t") for s in (False, False)]
    assert not any(o.deprecated for o in outcomes)  # too few uses yet
    third = await memory.record_outcome(record.id, success=False, scope=ADA, actor="t")
    assert third.deprecated and third.deprecation is not None and third.deprecation.op.event == "DELETE"
    assert await memory.get(record.id, scope=ADA) is None
    assert await memory.retrieve(TASK, scope=ADA) == []
    history = await memory_store.history(record.id, scope=ADA)
    assert [e.op.event for e in history.entries] == ["ADD", "UPDATE", "UPDATE", "UPDATE", "DELETE"]
    final = history.versions[-1]
    assert final.valid_to is not None and final.metadata["failures"] == 3
    assert "success rate 0/3 = 0.00 is below 0.50" in str(final.metadata["deprecated"])
    with pytest.raises(RecordNotFoundError):
        await memory.record_outcome(record.id, success=True, scope=ADA, actor="t")


async def test_a_procedure_at_the_threshold_is_kept(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store, min_uses=4, deprecate_below=0.5)
    record = await memory.add(procedure(TASK), scope=ADA, actor="t")
    outcomes = (False, True, False, True, False)
    results = [await memory.record_outcome(record.id, success=s, scope=ADA, actor="t") for s in outcomes]
    assert [r.deprecated for r in results] == [False, False, False, False, True]  # 2/4 = 0.5 is not below 0.5
    assert results[-1].procedure.success_rate == 0.4
    kept = procedures(memory_store, min_uses=4, deprecate_below=0.5)
    assert kept.deprecation_reason(procedure(TASK, successes=2, failures=2)) == ""
    assert kept.deprecation_reason(procedure(TASK, successes=0, failures=3)) == ""  # too few uses
    assert kept.deprecation_reason(procedure(TASK, successes=1, failures=3)) != ""


async def test_undo_of_a_deprecation_brings_the_procedure_back(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store, min_uses=1, deprecate_below=0.5)
    record = await memory.add(procedure(TASK), scope=ADA, actor="t")
    outcome = await memory.record_outcome(record.id, success=False, scope=ADA, actor="t")
    assert outcome.deprecation is not None and await memory.retrieve(TASK, scope=ADA) == []
    undo = await memory_store.undo(outcome.deprecation.op_id, scope=ADA, actor="admin")
    assert undo.undo_of == outcome.deprecation.op_id
    back = await memory.retrieve(TASK, scope=ADA)
    assert [hit.record_id for hit in back] == [record.id]
    assert (back[0].procedure.steps, back[0].procedure.failures) == (STEPS, 1)
    history = await memory_store.history(record.id, scope=ADA)
    assert [e.op.event for e in history.entries] == ["ADD", "UPDATE", "DELETE", "UPDATE"]


async def test_learn_records_the_outcome_of_the_procedures_used(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store, min_uses=1, deprecate_below=0.5)
    old = await memory.add(procedure(TASK), scope=ADA, actor="t")
    distiller = ProcedureDistiller(ScriptedModel([reply(steps=["Call the restaurant", "Confirm by email"])]))
    failed = await distiller.learn(memory, TASK, TRAJECTORY, success=False, scope=ADA, used=[old.id])
    assert [o.deprecated for o in failed.outcomes] == [True] and failed.record is None
    # the old procedure is gone, so the next success distils a new one for the same task
    fresh = await distiller.learn(memory, TASK, TRAJECTORY, success=True, scope=ADA)
    assert fresh.record is not None and fresh.record.id != old.id and fresh.model_calls == 1
    found = await memory.retrieve(TASK, scope=ADA)
    assert [hit.procedure.steps for hit in found] == [["Call the restaurant", "Confirm by email"]]


async def test_procedures_are_portable_between_models(memory_store: MemoryStore) -> None:
    memory = procedures(memory_store)
    strong = FunctionModel(lambda messages, info: reply(), model_name="strong")
    await ProcedureDistiller(strong).learn(memory, TASK, TRAJECTORY, success=True, scope=ADA)

    def weak_reply(messages: list[Message], info: RequestInfo) -> str:
        return "Following step 1" if "1. Search restaurants" in messages[0].content else "I do not know how"

    weak = FunctionModel(weak_reply, model_name="weak")
    found = await memory.retrieve("Book a table for four at an Italian restaurant on Saturday", scope=ADA, k=1)
    assert found[0].procedure.source_model == "strong"
    answer = await weak.request([system("Use this procedure:\n" + render_all(found)), user("Book for four")])
    assert answer.text == "Following step 1" and answer.model_name == "weak"
    shown = weak.requests[0].messages[0].content
    assert all(step in shown for step in STEPS) and SCRIPT in shown and str(found[0].record_id) in shown


def test_render_shows_task_numbered_steps_script_and_record() -> None:
    text = render(procedure(TASK, successes=3, failures=1))
    assert text.splitlines()[:5] == [
        f"Procedure learned from the task: {TASK}",
        "Steps:",
        f"1. {STEPS[0]}",
        f"2. {STEPS[1]}",
        f"3. {STEPS[2]}",
    ]
    assert "Script:\n" + SCRIPT in text and text.endswith("Record: 3 of 4 uses succeeded.")
    assert "Record" not in render(procedure(TASK))


def test_malformed_procedure_records_are_reported() -> None:
    with pytest.raises(MemoryStoreError, match="not a procedure"):
        Procedure.from_record(MemoryRecord(text="x"))
    with pytest.raises(MemoryStoreError, match="valid procedure"):
        Procedure.from_record(MemoryRecord(kind="procedural", text="x", metadata={"steps": "not json"}))


@pytest.mark.parametrize(("min_uses", "below"), [(0, 0.5), (3, -0.1), (3, 1.5)])
def test_bad_thresholds_are_config_errors(memory_store: MemoryStore, min_uses: int, below: float) -> None:
    with pytest.raises(ConfigError):
        procedures(memory_store, min_uses=min_uses, deprecate_below=below)
