"""G-Memory: a team's hierarchical memory of tasks, their interactions, and the lessons drawn from them.

Three tiers, all journal records joined by journaled links, so the memory graph
projects them (`hivegraph.memory.graph.projection`) and they have history and undo:

- **interaction graph**, one per task: each step a record of kind `interaction`
  (a `Message` node with its `step` and `agent`), `HAS_STEP` from the task,
  `NEXT` from each step to the one after, `ANSWERS` from a step to the step it
  replies to (by default the last earlier step of another agent);
- **query graph**: the task a record of kind `query` (a `Task` node with its
  `outcome`), `SIMILAR` to the earlier tasks whose vector similarity is at least
  `similarity_threshold` (the nearest `similar_links`, weight = the cosine);
- **insight graph**: lessons of kind `insight` (an `Insight` node with its
  `score` and the `roles` it is for), `SUPPORTS` or `CONTRADICTS` from the tasks
  that bore them out or did not.

A new task retrieves (`retrieve`) the most similar earlier tasks (vector and
keyword, fused) and their neighbours one `SIMILAR` hop away; climbs to the
insights those tasks support, most supported first, then best scored; and
descends to the condensed trajectories of the best of them that succeeded,
within a token budget. Insights are projected per role: an agent sees those
for its role and those for every role.

After the task, `record_task` writes the interaction graph and the query node
in one batch under one idempotency key (a replayed step writes nothing twice),
`reward` scores the insights the team was shown (up on success, down on
failure), and `revise` applies the insight ops a `Reflector` decided (in
`hivegraph.agents.reflector`: this module never calls a model). Scores start
from the G-Memory reference code: ADD 2, AGREE and EDIT +1, REMOVE -1, +1 to the
insights shown on success and -2 on failure; an insight whose score falls to 0
or below is retired (deleted: closed, kept in its history, undo brings it back).
Score changes expect the version they read and retry when another writer got
there first, so concurrent teams lose no change.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Literal
from uuid import UUID, uuid5

from hivegraph.errors import ConfigError, HivegraphError, InvalidInputError, MemoryStoreError, RecordNotFoundError
from hivegraph.memory.condense import StepText, condense, shorten
from hivegraph.memory.gmemory_types import (
    AgreeInsight,
    EditInsight,
    FoundInsight,
    FoundTask,
    FoundTrajectory,
    GMemoryContext,
    GMemorySettings,
    InsightChange,
    InsightOp,
    NewInsight,
    RecordedTask,
    RemoveInsight,
    Step,
    Summarize,
)
from hivegraph.memory.graph.store import GraphStore
from hivegraph.memory.journal import JournalEntry
from hivegraph.memory.planner import derived_op_id
from hivegraph.memory.retrieval import Retriever
from hivegraph.memory.sources import VECTOR
from hivegraph.memory.store import MemoryStore
from hivegraph.memory.types import (
    AddOp,
    DeleteOp,
    LinkOp,
    MemoryOp,
    MemoryRecord,
    Scalar,
    Scope,
    Source,
    UpdateOp,
    text_hash,
)
from hivegraph.memory.vocabulary import OUTCOME, OUTCOMES, SCORE, STEP, Outcome
from hivegraph.models.tokens import TokenCounter

__all__ = [
    "AGENT",
    "INSIGHT",
    "MESSAGE",
    "ROLES",
    "RUN",
    "TASK",
    "AgreeInsight",
    "EditInsight",
    "FoundInsight",
    "FoundTask",
    "FoundTrajectory",
    "GMemory",
    "GMemoryContext",
    "GMemorySettings",
    "InsightChange",
    "InsightOp",
    "NewInsight",
    "RecordedTask",
    "RemoveInsight",
    "Step",
    "Summarize",
    "score_of",
]

TASK, MESSAGE, INSIGHT = "query", "interaction", "insight"
AGENT, ROLES, RUN = "agent", "roles", "run_id"
"""Metadata keys: a step's agent, the roles an insight is for (comma-separated; empty: every role), a task's run."""
_NAMESPACE = UUID("5b8f0c1e-2f57-4c44-9a3e-6f0d1c2b7a90")
MAX_ATTEMPTS = 16
"""How many times a score change re-reads and retries when other writers keep changing the insight."""


class GMemory:
    """Writes and reads the G-Memory tiers of a `MemoryStore` whose journal is projected into a graph."""

    def __init__(
        self,
        store: MemoryStore,
        retriever: Retriever,
        graph: Callable[[], GraphStore | None],
        *,
        counter: TokenCounter,
        settings: GMemorySettings | None = None,
    ) -> None:
        """Write through `store`, find tasks through `retriever`, walk the graph `graph()` returns."""
        self.store = store
        self.retriever = retriever
        self._graph = graph
        self.counter = counter
        self.settings = settings or GMemorySettings()

    @property
    def graph(self) -> GraphStore:
        """The memory graph.

        Raises:
            ConfigError: no graph is projected (`memory.projections` lacks `graph`).

        """
        graph = self._graph()
        if graph is None:
            raise ConfigError("G-Memory needs the graph projection: add 'graph' to memory.projections",
                              field="memory.projections")  # fmt: skip
        return graph

    # ---- writing ----------------------------------------------------------------------------------------------

    async def record_task(
        self,
        task: str,
        steps: Sequence[Step],
        *,
        scope: Scope,
        run_id: str,
        outcome: Outcome | None,
        actor: str = "gmemory",
        source: Source | None = None,
    ) -> RecordedTask:
        """Write the task's query node, its interaction graph and its `SIMILAR` links in one batch.

        Ids derive from the scope and `run_id`, and the batch is keyed by them,
        so recording the same run again returns what was written.

        Raises:
            InvalidInputError: an outcome other than success or failure, an empty task, or a bad `reply_to`.
            MemoryStoreError: the store refused part of the batch (the reason is named).

        """
        if outcome is not None and outcome not in OUTCOMES:
            raise InvalidInputError("outcome", f"must be one of {sorted(OUTCOMES)} or None, not {outcome!r}")
        if not task.strip():
            raise InvalidInputError("task", "is empty")
        limit = self.store.max_text_chars
        task_id = self.task_id(scope, run_id)
        similar = await self._similar(task, scope=scope, exclude=task_id)
        meta: dict[str, Scalar] = {RUN: run_id, "steps": len(steps)}
        if outcome is not None:
            meta[OUTCOME] = outcome
        ops: list[MemoryOp] = [
            AddOp(text=shorten(task, limit), kind=TASK, metadata=meta, dedupe=False, record_id=task_id)
        ]
        ids = [uuid5(task_id, f"step {n}") for n in range(len(steps))]
        for n, (step, step_id) in enumerate(zip(steps, ids, strict=True)):
            text = step.content.strip() or "(no content)"
            ops.append(AddOp(
                text=text if len(text) <= limit else shorten(text, limit), kind=MESSAGE, record_id=step_id,
                metadata={STEP: n, AGENT: step.agent, "task": str(task_id)}, dedupe=False,
            ))  # fmt: skip
        for n, step_id in enumerate(ids):
            ops.append(LinkOp(source=task_id, target=step_id, relation="HAS_STEP"))
            if n + 1 < len(ids):
                ops.append(LinkOp(source=step_id, target=ids[n + 1], relation="NEXT"))
            answered = _answered(steps, n)
            if answered is not None:
                ops.append(LinkOp(source=step_id, target=ids[answered], relation="ANSWERS"))
        ops += [LinkOp(source=task_id, target=other, relation="SIMILAR", weight=sim) for other, sim in similar]
        result = await self.store.apply(
            ops, scope=scope, actor=actor, source=source or Source(run_id=run_id), idempotency_key=f"gmemory:{task_id}"
        )
        if result.refused:
            refused = result.refused[0]
            raise MemoryStoreError(f"task {task_id} not fully recorded: {refused.op.event} refused: {refused.reason}")
        records = {str(e.after.id): e.after for e in result.applied if e.after is not None}
        return RecordedTask(
            task=records[str(task_id)], steps=[records[str(i)] for i in ids], similar=similar, entries=result.applied
        )

    async def set_outcome(
        self, task_id: UUID, outcome: Outcome, *, scope: Scope, actor: str = "gmemory"
    ) -> MemoryRecord:
        """Record how a task ended, once its outcome is known (a task that has this outcome already is left as it is).

        Raises:
            InvalidInputError: an outcome other than success or failure.
            RecordNotFoundError: no current task with this id in `scope`.
            MemoryStoreError: the store refused the update.

        """
        if outcome not in OUTCOMES:
            raise InvalidInputError("outcome", f"must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        for attempt in range(MAX_ATTEMPTS):
            task = await self.store.get(task_id, scope=scope)
            if task is None or task.kind != TASK:
                raise RecordNotFoundError(str(task_id), f"no current task with id {task_id} in {scope}")
            if task.metadata.get(OUTCOME) == outcome:
                return task
            op = UpdateOp(record_id=task_id, text=task.text, metadata={OUTCOME: outcome}, expected_version=task.version)
            result = await self.store.apply([op], scope=scope, actor=actor)
            if not result.refused:
                after = result.applied[0].after
                assert after is not None
                return after
            if result.refused[0].code != "conflict":
                raise MemoryStoreError(f"outcome of task {task_id} refused: {result.refused[0].reason}")
            await asyncio.sleep(random.uniform(0.0, min(0.05, 0.001 * 2**attempt)))
        raise MemoryStoreError(f"outcome of task {task_id} not set: other writers kept changing it")

    @staticmethod
    def task_id(scope: Scope, run_id: str) -> UUID:
        """The record id of a run's task (the same for every attempt of the run)."""
        return uuid5(_NAMESPACE, f"{scope}|{run_id}")

    async def _similar(self, task: str, *, scope: Scope, exclude: UUID) -> list[tuple[UUID, float]]:
        """The nearest earlier tasks at or above the threshold, nearest first."""
        n = self.settings.similar_links
        if n == 0:
            return []
        hits = await self.store.search(task, scope=scope, k=n + 1, kinds=(TASK,))
        found = [(hit.record_id, hit.score) for hit in hits if hit.record_id != exclude]
        return [(i, s) for i, s in found if s >= self.settings.similarity_threshold][:n]

    async def reward(
        self, insight_ids: Sequence[UUID], *, task_id: UUID, success: bool, scope: Scope, actor: str = "gmemory"
    ) -> list[InsightChange]:
        """Score the insights a task was shown: up on success (`SUPPORTS`), down on failure (`CONTRADICTS`).

        Each insight's change is keyed by the task, so a replayed step changes no score twice.
        Insights no longer current (retired meanwhile) are passed over.
        """
        gain = self.settings.success_reward if success else -self.settings.failure_penalty
        relation = "SUPPORTS" if success else "CONTRADICTS"
        changes = await asyncio.gather(*(
            self._rescore(i, gain, "REWARD", task_id=task_id, relation=relation, scope=scope, actor=actor,
                          missing_ok=True)
            for i in dict.fromkeys(insight_ids)
        ))  # fmt: skip
        return [c for c in changes if c is not None]

    async def revise(
        self, ops: Sequence[InsightOp], *, task_id: UUID, scope: Scope, actor: str = "reflector"
    ) -> list[InsightChange]:
        """Apply a reflection's insight ops, each linked to the task that prompted it.

        The same op for the same task (an AGREE with one insight, an ADD of one text)
        is applied once, however often it is asked for: a replayed step changes nothing twice.

        Raises:
            RecordNotFoundError: an op names an insight that is not current in `scope`.
            MemoryStoreError: the store refused an op (the reason is named).

        """
        changes: list[InsightChange] = []
        for op in ops:
            key = _revise_key(task_id, op)
            match op:
                case NewInsight(text=text, roles=roles):
                    changes.append(await self._add(text, roles, task_id=task_id, scope=scope, actor=actor, key=key))
                case AgreeInsight(insight_id=insight_id):
                    change = await self._rescore(insight_id, self.settings.agree_gain, "AGREE", task_id=task_id,
                                                 relation="SUPPORTS", scope=scope, actor=actor, key=key)  # fmt: skip
                    changes.append(_found(change, insight_id))
                case EditInsight(insight_id=insight_id, text=text, roles=roles):
                    change = await self._rescore(insight_id, self.settings.edit_gain, "EDIT", task_id=task_id,
                                                 relation="SUPPORTS", scope=scope, actor=actor, key=key,
                                                 text=text, roles=roles)  # fmt: skip
                    changes.append(_found(change, insight_id))
                case RemoveInsight(insight_id=insight_id):
                    change = await self._rescore(insight_id, -self.settings.remove_loss, "REMOVE", task_id=task_id,
                                                 relation="CONTRADICTS", scope=scope, actor=actor, key=key)  # fmt: skip
                    changes.append(_found(change, insight_id))
        return changes

    async def _add(
        self, text: str, roles: Sequence[str], *, task_id: UUID, scope: Scope, actor: str, key: str
    ) -> InsightChange:
        insight_id = uuid5(task_id, key)
        meta: dict[str, Scalar] = {SCORE: self.settings.add_score, ROLES: _roles(roles)}
        ops: list[MemoryOp] = [
            AddOp(text=text, kind=INSIGHT, metadata=meta, dedupe=False, record_id=insight_id),
            LinkOp(source=task_id, target=insight_id, relation="SUPPORTS"),
        ]
        result = await self.store.apply(ops, scope=scope, actor=actor, idempotency_key=key)
        if result.refused:
            raise MemoryStoreError(f"insight not added: {result.refused[0].reason}")
        return InsightChange(insight_id, "ADD", self.settings.add_score, entries=result.applied)

    async def _rescore(
        self,
        insight_id: UUID,
        gain: float,
        event: Literal["AGREE", "EDIT", "REMOVE", "REWARD"],
        *,
        task_id: UUID,
        relation: Literal["SUPPORTS", "CONTRADICTS"],
        scope: Scope,
        actor: str,
        key: str | None = None,
        text: str | None = None,
        roles: Sequence[str] | None = None,
        missing_ok: bool = False,
    ) -> InsightChange | None:
        """Link the task to the insight and move its score by `gain` (retiring it at 0 or below), retrying conflicts."""
        key = key or f"gmemory:{task_id}:{event.lower()}:{insight_id}"
        for attempt in range(MAX_ATTEMPTS):
            done = await self.store.journal.entry(derived_op_id(key, 1))
            if done is not None and done.after is not None:  # an earlier attempt of this step changed the score
                return await self._settle(event, done, scope=scope, actor=actor, key=key)
            insight = await self.store.get(insight_id, scope=scope)
            if insight is None or insight.kind != INSIGHT:
                if missing_ok:
                    return None
                raise RecordNotFoundError(str(insight_id), f"no current insight with id {insight_id} in {scope}")
            meta: dict[str, Scalar] = {SCORE: score_of(insight) + gain} | (
                {ROLES: _roles(roles)} if roles is not None else {}
            )
            ops: list[MemoryOp] = [
                LinkOp(source=task_id, target=insight_id, relation=relation),
                UpdateOp(record_id=insight_id, text=text or insight.text, metadata=meta,
                         expected_version=insight.version),
            ]  # fmt: skip
            result = await self.store.apply(ops, scope=scope, actor=actor, idempotency_key=key)
            others = [r for r in result.refused if r.code != "conflict"]
            if others:
                raise MemoryStoreError(f"{event} of insight {insight_id} refused: {others[0].reason}")
            if not result.refused:
                update = next(e for e in result.applied if e.op.event == "UPDATE")
                return await self._settle(event, update, scope=scope, actor=actor, key=key)
            await asyncio.sleep(random.uniform(0.0, min(0.05, 0.001 * 2**attempt)))
        raise MemoryStoreError(
            f"{event} of insight {insight_id} not applied: other writers kept changing it ({MAX_ATTEMPTS} attempts)"
        )

    async def _settle(
        self,
        event: Literal["AGREE", "EDIT", "REMOVE", "REWARD"],
        update: JournalEntry,
        *,
        scope: Scope,
        actor: str,
        key: str,
    ) -> InsightChange:
        """The change `update` made, after retiring the insight if its score fell to 0 or below.

        The retirement is its own batch (a batch changes a record once), keyed so a
        replay that finds the score already changed still retires it, and
        expecting the version the update made: a writer that changed the insight
        since has judged a newer score.
        """
        after = update.after
        assert after is not None
        score = score_of(after)
        if score > 0:
            return InsightChange(after.id, event, score, entries=[update])
        delete = DeleteOp(record_id=after.id, expected_version=after.version)
        result = await self.store.apply([delete], scope=scope, actor=actor, idempotency_key=f"{key}:retire")
        retired = [e for e in result.applied if e.op.event == "DELETE"]
        return InsightChange(after.id, event, score, retired=bool(retired), entries=[update, *retired])

    # ---- reading ----------------------------------------------------------------------------------------------

    async def retrieve(
        self,
        task: str,
        *,
        scope: Scope,
        token_budget: int | None = None,
        summarize: Summarize | None = None,
    ) -> GMemoryContext:
        """Similar tasks and their neighbours, the insights they support, and condensed trajectories of the best.

        `summarize`, when given, writes each trajectory instead of the rules (if it fails, the rules do).
        """
        s = self.settings
        budget = s.token_budget if token_budget is None else token_budget
        found = await self.retriever.retrieve(task, scope=scope, k=s.similar_tasks, kinds=(TASK,))
        graph = self.graph
        tasks = [
            FoundTask(
                hit.record_id,
                hit.text,
                _outcome(hit.loaded),
                hit.scores.get(VECTOR, 0.0),
                0,
                _run(hit.loaded.metadata.get(RUN)),
            )
            for hit in found.hits
        ]
        if tasks:
            near = await graph.neighbours(
                [str(t.id) for t in tasks], scope=scope, hops=1, edge_types=["SIMILAR"], labels=["Task"]
            )
            known = {str(t.id) for t in tasks}
            tasks += [
                FoundTask(UUID(n.node.id), n.node.text, _node_outcome(n.node.properties.get(OUTCOME)), 0.0, 1,
                          _run(n.node.properties.get(RUN)))
                for n in near if n.node.id not in known
            ]  # fmt: skip
        ranked = await graph.insights_for([str(t.id) for t in tasks], scope=scope, limit=s.insights) if tasks else []
        insights = [
            FoundInsight(
                UUID(r.insight.id), r.insight.text, float(_number(r.insight.properties.get(SCORE))), r.support,
                _split(r.insight.properties.get(ROLES)), int(_number(r.insight.properties.get("record_version"))),
            )
            for r in ranked
            if _number(r.insight.properties.get(SCORE)) > 0  # one at 0 whose retirement a crash cut short
        ]  # fmt: skip
        spent = sum(self.counter.count(f"- {i.text}") + 1 for i in insights)
        best = [t for t in tasks if t.outcome == "success"][: s.trajectories]
        room = max(budget - spent, 0)
        trajectories: list[FoundTrajectory] = []
        for n, done in enumerate(best):
            share = room // (len(best) - n)
            shown = await self._trajectory(done, share, summarize, scope=scope)
            room -= shown.condensed.tokens if shown.summary is None else self.counter.count(shown.summary)
            trajectories.append(shown)
        used = budget - room if best else spent
        return GMemoryContext(tasks=tasks, insights=insights, trajectories=trajectories, tokens=used)

    async def _trajectory(
        self, done: FoundTask, budget: int, summarize: Summarize | None, *, scope: Scope
    ) -> FoundTrajectory:
        header = self.counter.count(f"Task: {done.text}") + 1
        messages = await self.graph.trajectory(str(done.id), scope=scope)
        steps = [
            StepText(str(m.properties.get(AGENT, "agent")), m.text, int(_number(m.properties.get(STEP))))
            for m in messages
        ]
        condensed = condense(steps, budget=max(budget - header, 0), count=self.counter.count)
        if summarize is not None and condensed.steps:
            try:
                summary = self.counter.truncate(await summarize(done.text, condensed.steps, budget - header),
                                                max(budget - header, 0))  # fmt: skip
                return FoundTrajectory(done.id, done.text, condensed, summary=summary)
            except HivegraphError:  # the model failed: the rules, which always work, write it instead
                pass
        return FoundTrajectory(done.id, done.text, condensed)


def score_of(record: MemoryRecord) -> float:
    """An insight record's score (0 when it has none)."""
    return float(_number(record.metadata.get(SCORE)))


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _run(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _roles(roles: Sequence[str]) -> str:
    return ",".join(sorted({r.strip() for r in roles if r.strip()}))


def _split(value: object) -> tuple[str, ...]:
    return tuple(r for r in str(value).split(",") if r) if isinstance(value, str) else ()


def _outcome(record: MemoryRecord) -> Outcome | None:
    return _node_outcome(record.metadata.get(OUTCOME))


def _node_outcome(value: object) -> Outcome | None:
    return "success" if value == "success" else "failure" if value == "failure" else None


def _answered(steps: Sequence[Step], n: int) -> int | None:
    """The index of the step that step `n` answers, or None (the first step, or no other agent spoke before)."""
    reply_to = steps[n].reply_to
    if reply_to is not None:
        if not 0 <= reply_to < n:
            raise InvalidInputError(f"steps[{n}].reply_to", f"must name an earlier step (0..{n - 1}), not {reply_to}")
        return reply_to
    return next((i for i in range(n - 1, -1, -1) if steps[i].agent != steps[n].agent), None)


def _revise_key(task_id: UUID, op: InsightOp) -> str:
    """The idempotency key of an insight op for a task: the same op for the same task is applied once."""
    match op:
        case NewInsight(text=text):
            return f"gmemory:{task_id}:add:{text_hash(text)}"
        case EditInsight(insight_id=insight_id, text=text):
            return f"gmemory:{task_id}:edit:{insight_id}:{text_hash(text)}"
        case AgreeInsight(insight_id=insight_id):
            return f"gmemory:{task_id}:agree:{insight_id}"
        case RemoveInsight(insight_id=insight_id):
            return f"gmemory:{task_id}:remove:{insight_id}"


def _found(change: InsightChange | None, insight_id: UUID) -> InsightChange:
    if change is None:
        raise RecordNotFoundError(str(insight_id))
    return change
