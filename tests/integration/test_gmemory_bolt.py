"""G-Memory over a real Bolt server (ArcadeDB started by the session; the user's Neo4j when `NEO4J_URI` is set).

The tests of tests/unit/test_gmemory.py and tests/unit/test_gmemory_team.py run here
unchanged: only the `memory` and `graph_settings` fixtures differ, putting the
memory graph in `Neo4jGraph`. Injection through task text, steps and the
reflector's output, scope isolation, scoring and the two-task team all run on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hivegraph.memory.facade import Memory
from hivegraph.memory.graph.projection import GraphProjection
from hivegraph.memory.journal_memory import InMemoryJournal
from hivegraph.memory.stores.inmemory import InMemorySpace
from hivegraph.models.testing import HashEmbedder
from tests.fixtures.bolt_server import BoltDatabase
from tests.unit.test_gmemory import (
    OPTIONS,
    test_a_neighbour_in_the_query_graph_joins_the_similar_tasks,
    test_a_read_never_crosses_scopes,
    test_a_reflection_that_never_validates_changes_nothing,
    test_a_task_becomes_a_task_node_with_its_interaction_graph,
    test_explicit_replies_become_answer_edges_and_bad_ones_are_refused,
    test_insight_ops_score_as_the_reference_code_does,
    test_insights_are_projected_for_each_role,
    test_model_output_with_query_syntax_is_stored_as_plain_data,
    test_recording_the_same_run_again_writes_nothing,
    test_retrieval_climbs_to_insights_by_support_then_score_and_descends_to_successful_trajectories,
    test_rewards_move_shown_insights_and_an_insight_at_zero_is_retired_not_erased,
    test_similar_tasks_are_linked_above_the_threshold_only,
    test_the_reflector_maps_aliases_to_insights_and_retries_an_invented_one,
    test_trajectories_are_condensed_within_the_token_budget,
)
from tests.unit.test_gmemory_team import (
    test_a_failed_task_lowers_the_score_of_the_insights_it_was_shown,
    test_the_second_task_recalls_the_first_tasks_insight_and_trajectory,
)

pytestmark = pytest.mark.integration

__all__ = [
    "test_a_failed_task_lowers_the_score_of_the_insights_it_was_shown",
    "test_a_neighbour_in_the_query_graph_joins_the_similar_tasks",
    "test_a_read_never_crosses_scopes",
    "test_a_reflection_that_never_validates_changes_nothing",
    "test_a_task_becomes_a_task_node_with_its_interaction_graph",
    "test_explicit_replies_become_answer_edges_and_bad_ones_are_refused",
    "test_insight_ops_score_as_the_reference_code_does",
    "test_insights_are_projected_for_each_role",
    "test_model_output_with_query_syntax_is_stored_as_plain_data",
    "test_recording_the_same_run_again_writes_nothing",
    "test_retrieval_climbs_to_insights_by_support_then_score_and_descends_to_successful_trajectories",
    "test_rewards_move_shown_insights_and_an_insight_at_zero_is_retired_not_erased",
    "test_similar_tasks_are_linked_above_the_threshold_only",
    "test_the_reflector_maps_aliases_to_insights_and_retries_an_invented_one",
    "test_the_second_task_recalls_the_first_tasks_insight_and_trajectory",
    "test_trajectories_are_condensed_within_the_token_budget",
]


@pytest.fixture
async def memory(bolt_database: BoltDatabase) -> AsyncIterator[Memory]:
    """A memory whose graph is on the Bolt server (journal and vectors in this process)."""
    projection = GraphProjection(bolt_database.open())
    opened = await Memory.of(
        InMemorySpace(HashEmbedder()), journal=InMemoryJournal(), projections=[projection], options=OPTIONS
    ).open()
    yield opened
    await opened.aclose()


@pytest.fixture
def graph_settings(bolt_database: BoltDatabase) -> dict[str, Any]:
    """`graph_store` settings that put a team's graph on the Bolt server."""
    neo4j: dict[str, Any] = {"uri": bolt_database.uri, "user": bolt_database.user, "password": bolt_database.password}
    if bolt_database.database is not None:
        neo4j["database"] = bolt_database.database
    return {"backend": "neo4j", "neo4j": neo4j}
