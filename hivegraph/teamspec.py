"""Teams named from the command line: a YAML team spec, or a Python factory `module:function`.

A spec says the pattern, the scope and the agents; tools are named by
`module:attribute` (a langchain-core tool object):

    pattern: supervisor            # pipeline (default), supervisor or debate
    scope: {user_id: ada, team_id: research}
    max_turns: 6                   # supervisor
    rounds: 1                      # debate
    router: {name: lead, instructions: "You route."}         # supervisor
    judge: {name: judge, instructions: "You decide."}        # debate
    agents:
      - name: searcher
        instructions: "You search."
        tools: ["my_tools:search"]
        limits: {max_steps: 3, min_calls: 1, max_tokens: 384}
        memory: {read_kinds: [semantic, episodic], tools: true}
      - name: writer
        instructions: "You write the answer."
        model: {model: qwen2.5-7b-instruct, temperature: 0.3}   # over the `model` section

A factory is called with the opened `Hivegraph` and returns a `Team`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hivegraph.agents.acting import ActLimits
from hivegraph.agents.base import Agent, MemoryPolicy, ScopeLevel
from hivegraph.app import Hivegraph, Team
from hivegraph.config import config_error
from hivegraph.errors import ConfigError
from hivegraph.memory.types import MemoryKind, Scope

MAX_INSTRUCTION_CHARS = 20_000


class PolicySpec(BaseModel):
    """`MemoryPolicy` fields, as YAML gives them."""

    model_config = ConfigDict(extra="forbid")
    read_kinds: tuple[MemoryKind, ...] = MemoryPolicy.read_kinds
    write_kinds: tuple[MemoryKind, ...] = MemoryPolicy.write_kinds
    read_scope: ScopeLevel = MemoryPolicy.read_scope
    write_scope: ScopeLevel = MemoryPolicy.write_scope
    tools: bool = MemoryPolicy.tools
    k: int = Field(default=MemoryPolicy.k, ge=0)
    token_budget: int = Field(default=MemoryPolicy.token_budget, ge=0)
    gmemory: bool = MemoryPolicy.gmemory


class LimitsSpec(BaseModel):
    """`ActLimits` fields, as YAML gives them."""

    model_config = ConfigDict(extra="forbid")
    max_steps: int = Field(default=ActLimits.max_steps, ge=0)
    min_calls: int = Field(default=ActLimits.min_calls, ge=0)
    max_invalid: int = Field(default=ActLimits.max_invalid, ge=0)
    max_tokens: int = Field(default=ActLimits.max_tokens, ge=1)


class AgentSpec(BaseModel):
    """One agent of a spec."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    instructions: str = Field(min_length=1, max_length=MAX_INSTRUCTION_CHARS)
    max_tokens: int = Field(default=Agent.max_tokens, ge=1)
    """Tokens of a reply when the agent has no tools (`limits.max_tokens` bounds each action when it has)."""
    tools: list[str] = Field(default_factory=list[str])
    """`module:attribute` of each langchain-core tool."""
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    model: dict[str, Any] = Field(default_factory=dict[str, Any])
    """Settings of the `model` section this agent changes (empty: the team's model)."""
    memory: PolicySpec = Field(default_factory=PolicySpec)

    def build(self, app: Hivegraph) -> Agent:
        """The `Agent` this spec describes (its tools imported, its model opened by `app`).

        Raises:
            ConfigError: a tool cannot be imported or is not a langchain-core tool, a limit or a model
                setting is invalid.

        """
        tools = [_tool(path, self.name) for path in self.tools]
        policy = MemoryPolicy(**self.memory.model_dump())
        model = app.chat_model(self.model) if self.model else None
        return Agent(name=self.name, instructions=self.instructions, max_tokens=self.max_tokens, tools=tools,
                     limits=ActLimits(**self.limits.model_dump()), memory=policy, model=model)  # fmt: skip


class TeamSpec(BaseModel):
    """A whole team."""

    model_config = ConfigDict(extra="forbid")
    pattern: Literal["pipeline", "supervisor", "debate"] = "pipeline"
    scope: Scope
    agents: list[AgentSpec] = Field(min_length=1)
    router: AgentSpec | None = None
    judge: AgentSpec | None = None
    max_turns: int = Field(default=6, ge=1)
    rounds: int = Field(default=1, ge=1)

    def build(self, app: Hivegraph) -> Team:
        """The team, compiled with `app`'s backends.

        Raises:
            ConfigError: the pattern needs a router or judge the spec lacks, or a tool cannot be imported.

        """
        agents = [a.build(app) for a in self.agents]
        if self.pattern == "supervisor":
            if self.router is None:
                raise ConfigError("team spec: pattern 'supervisor' needs a 'router' agent", field="router")
            return app.supervisor_team(self.router.build(app), agents, scope=self.scope, max_turns=self.max_turns)
        if self.pattern == "debate":
            if self.judge is None:
                raise ConfigError("team spec: pattern 'debate' needs a 'judge' agent", field="judge")
            return app.debate_team(agents, self.judge.build(app), scope=self.scope, rounds=self.rounds)
        return app.team(agents, scope=self.scope)


def load_spec(path: Path) -> TeamSpec:
    """Read and check a YAML team spec.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or does not describe a team (the field is named).

    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"team spec {path}: {exc}") from None
    try:
        return TeamSpec.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, f"team spec {path}: ") from None


def team_from(target: str, app: Hivegraph) -> Team:
    """The team `target` names: a YAML spec file (`.yaml`/`.yml`) or a factory `module:function`.

    Raises:
        ConfigError: the file or factory cannot be loaded, or the factory returns no `Team`.

    """
    if target.endswith((".yaml", ".yml")):
        return load_spec(Path(target)).build(app)
    factory = _import(target, "team factory")
    if not callable(factory):
        raise ConfigError(f"team factory {target!r} is not callable")
    team = cast(Callable[[Hivegraph], object], factory)(app)
    if not isinstance(team, Team):
        raise ConfigError(f"team factory {target!r} returned {type(team).__name__}, not a hivegraph Team")
    return team


def _tool(path: str, agent: str) -> BaseTool:
    tool = _import(path, f"tool of agent {agent!r}")
    if not isinstance(tool, BaseTool):
        raise ConfigError(f"tool {path!r} of agent {agent!r} is a {type(tool).__name__}, not a langchain-core tool")
    return tool


def _import(path: str, what: str) -> Any:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{what} {path!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} {path!r}: cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{what} {path!r}: {module_name!r} has no {attribute!r}") from None
