"""YAML team specs: every agent option they carry reaches the built team, and bad specs are refused by field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegraph.agents.acting import ActLimits
from hivegraph.app import open_hivegraph
from hivegraph.errors import ConfigError
from hivegraph.models.openai_compat import OpenAICompatModel
from hivegraph.models.testing import ScriptedModel
from hivegraph.teamspec import load_spec
from tests.unit.test_team_graph import unit_settings

SPEC = """\
pattern: supervisor
scope: {user_id: ada, team_id: research}
max_turns: 3
router: {name: lead, instructions: "You route."}
agents:
  - name: searcher
    instructions: "You search."
    tools: ["tests.unit.test_acting:lookup"]
    limits: {max_steps: 3, min_calls: 1, max_invalid: 1, max_tokens: 384}
    memory: {read_kinds: [semantic], write_scope: team, tools: true, k: 2}
  - name: writer
    instructions: "You write."
    max_tokens: 64
    model: {model: other-model, temperature: 0.3, max_tokens: 512}
  - name: editor
    instructions: "You edit."
    model: {model: other-model, temperature: 0.3, max_tokens: 512}
"""


def spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_every_agent_option_of_a_spec_reaches_the_team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []

    async def aclose(self: OpenAICompatModel) -> None:
        closed.append(self.model_name)

    monkeypatch.setattr(OpenAICompatModel, "aclose", aclose)
    team_model = ScriptedModel([])
    async with open_hivegraph(unit_settings(tmp_path), model=team_model) as hg:
        team = load_spec(spec_file(tmp_path, SPEC)).build(hg)
        agents = team.agents
        searcher, writer, editor, lead = agents["searcher"], agents["writer"], agents["editor"], agents["lead"]
        assert searcher.limits == ActLimits(max_steps=3, min_calls=1, max_invalid=1, max_tokens=384)
        assert [t.name for t in searcher.tools] == ["lookup"]
        assert searcher.memory.read_kinds == ("semantic",) and searcher.memory.write_scope == "team"
        assert searcher.memory.tools and searcher.memory.k == 2
        assert searcher.model is None and lead.model is None, "the team's model unless a spec names another"
        assert writer.max_tokens == 64
        assert isinstance(writer.model, OpenAICompatModel) and writer.model.model_name == "other-model"
        assert editor.model is writer.model, "equal model settings share one client"
        assert writer.model is not team_model
    assert closed == ["other-model"], "a model opened for agents closes once, with the app"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("model: {model: other-model, temprature: 0.3}", "model.temprature"),
        ("model: {temperature: .nan}", "model.temperature"),
        ("model: {base_url: 42}", "model.base_url"),
    ],
)
async def test_a_bad_agent_model_is_refused_by_field(tmp_path: Path, change: str, field: str) -> None:
    text = f"scope: {{team_id: t}}\nagents:\n  - name: a\n    instructions: x\n    {change}\n"
    async with open_hivegraph(unit_settings(tmp_path), model=ScriptedModel([])) as hg:
        with pytest.raises(ConfigError, match="agent model") as caught:
            load_spec(spec_file(tmp_path, text)).build(hg)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("agent", "where"),
    [
        ("{name: 'bad name', instructions: x}", r"agents\.0\.name"),
        ('{name: a, instructions: "broken \\ud800 text"}', r"agents\.0\.instructions: .*unicode string"),
        ("{name: a, instructions: x, limits: {max_steps: .nan}}", r"agents\.0\.limits\.max_steps"),
        ("{name: a, instructions: x, limits: {max_stpes: 2}}", r"agents\.0\.limits\.max_stpes"),
        ("{name: a, instructions: x, max_tokens: 0}", r"agents\.0\.max_tokens"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(tmp_path: Path, agent: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        load_spec(spec_file(tmp_path, f"scope: {{team_id: t}}\nagents: [{agent}]\n"))


async def test_limits_that_contradict_each_other_and_tools_that_are_not_tools_are_refused(tmp_path: Path) -> None:
    async with open_hivegraph(unit_settings(tmp_path), model=ScriptedModel([])) as hg:
        contradicting = (
            "scope: {team_id: t}\nagents: [{name: a, instructions: x, limits: {max_steps: 1, min_calls: 2}}]\n"
        )
        with pytest.raises(ConfigError, match="min_calls <= max_steps"):
            load_spec(spec_file(tmp_path, contradicting)).build(hg)
        not_a_tool = "scope: {team_id: t}\nagents: [{name: a, instructions: x, tools: ['json:dumps']}]\n"
        with pytest.raises(ConfigError, match="not a langchain-core tool"):
            load_spec(spec_file(tmp_path, not_a_tool)).build(hg)
