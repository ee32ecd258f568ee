"""Run ids and checkpoints belong to the scope that started the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegraph.app import open_hivegraph
from hivegraph.errors import GraphError, KeyScopeError
from hivegraph.memory.types import Scope
from tests.unit.test_team_graph import agents, team_model, unit_settings

ALICE = Scope(user_id="alice", team_id="t")
BOB = Scope(user_id="bob", team_id="t")


async def test_another_scopes_run_id_is_refused_and_its_turns_stay_private(tmp_path: Path) -> None:
    settings = unit_settings(tmp_path, checkpointer={"backend": "sqlite"})
    async with open_hivegraph(settings, model=team_model()) as hg:
        await hg.team(agents(), scope=ALICE).run("My bank PIN is 4321. Plan a dinner.", run_id="shared-id")
        bob = hg.team(agents(), scope=BOB)
        with pytest.raises(KeyScopeError) as started:
            await bob.run("Plan a lunch.", run_id="shared-id")
        with pytest.raises(KeyScopeError) as resumed:
            await bob.resume("shared-id")
        for error in (started.value, resumed.value):
            assert "alice" not in str(error) and "4321" not in str(error)
        assert await hg.memory.store.list(scope=Scope(user_id="bob")) == []  # nothing of Alice's was copied to Bob


async def test_resuming_a_run_this_scope_never_started_is_an_error(tmp_path: Path) -> None:
    async with open_hivegraph(unit_settings(tmp_path), model=team_model()) as hg:
        with pytest.raises(GraphError, match="no run 'nope'"):
            await hg.team(agents(), scope=ALICE).resume("nope")
