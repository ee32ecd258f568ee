"""`Agent`: a named role with instructions, a model, tools and a memory policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from langchain_core.tools import BaseTool

from hivegraph.agents.acting import ACTION_RULES, ActLimits, ToolUse, act, describe_tools
from hivegraph.errors import ConfigError
from hivegraph.memory.types import MemoryKind, Scope
from hivegraph.models.base import ChatModel, Message, RequestSettings, system, user

ScopeLevel = Literal["agent", "team", "user"]
"""Where an agent reads or writes: its own private scope, the team's, or the user's across teams."""


@dataclass(frozen=True)
class MemoryPolicy:
    """What an agent may read from and write to memory, where, and how much of it it sees.

    Reads never show another agent's private records, whatever the level.
    Writes go through the memory tools (`tools=True`); one of a kind the
    policy does not write, or outside its write scope, is refused and reported.
    """

    read_kinds: tuple[MemoryKind, ...] = ("semantic", "episodic", "procedural")
    write_kinds: tuple[MemoryKind, ...] = ("semantic",)
    read_scope: ScopeLevel = "team"
    """`team`: the team's records and the agent's own; `agent`: its own only; `user`: the user's, all teams."""
    write_scope: ScopeLevel = "agent"
    """Where its memory tools write: private to the agent by default."""
    tools: bool = False
    """Whether the agent gets memory tools (search, remember, forget) bound to this policy."""
    k: int = 5
    token_budget: int = 600
    gmemory: bool = True
    """Whether the agent sees the team's G-Memory (insights for its role, trajectories of similar tasks)."""

    def scope_for(self, level: ScopeLevel, team: Scope, agent: str) -> Scope:
        """The scope `level` means for `agent` of a team working in `team`.

        Raises:
            ConfigError: `user` level in a team scope without a user.

        """
        if level == "agent":
            return team.model_copy(update={"agent_id": agent})
        if level == "team":
            return team
        if team.user_id is None:
            raise ConfigError(f"agent {agent!r}: memory scope 'user' needs a team scope with a user_id, not {team}")
        return Scope(user_id=team.user_id)

    def may_see(self, record_scope: Scope, agent: str) -> bool:
        """Whether a record in `record_scope` is one `agent` may read (not another agent's private one)."""
        return record_scope.agent_id in (None, agent)


@dataclass(frozen=True)
class ContextBlock:
    """One recalled memory as an agent sees it; `id` lets answers cite it."""

    id: str
    kind: str
    text: str
    score: float


@dataclass(frozen=True)
class Turn:
    """One agent's contribution to a run: what it said and the tools it used on the way."""

    agent: str
    content: str
    tool_uses: tuple[ToolUse, ...] = ()


@dataclass
class Agent:
    """A team member. Without its own model it uses the team's."""

    name: str
    instructions: str
    model: ChatModel | None = None
    memory: MemoryPolicy = field(default_factory=MemoryPolicy)
    max_tokens: int = 160
    tools: Sequence[BaseTool] = ()
    """Tools the agent may call (any langchain-core tool); without any it only talks."""
    limits: ActLimits = field(default_factory=ActLimits)
    """How many tool calls and rejected actions a turn allows."""

    def prompt(
        self,
        *,
        task: str,
        context: Sequence[ContextBlock],
        transcript: Sequence[Turn],
        native: bool = False,
        tools: Sequence[BaseTool] | None = None,
    ) -> list[Message]:
        """The messages this agent sends for one step (with the action rules when it has tools to call)."""
        instructions = self.instructions
        tools = self.tools if tools is None else tools
        if tools and not native:
            instructions += "\n\n" + ACTION_RULES.format(tools=describe_tools(tools))
        parts = [f"Task: {task}"]
        if context:
            parts.append("Relevant memories:\n" + "\n".join(f"[{c.id[:8]}] {c.text}" for c in context))
        if transcript:
            parts.append("Team so far:\n" + "\n".join(f"{t.agent}: {t.content}" for t in transcript))
        return [system(instructions), user("\n\n".join(parts))]

    async def respond(
        self,
        *,
        task: str,
        context: Sequence[ContextBlock],
        transcript: Sequence[Turn],
        default_model: ChatModel,
        extra_tools: Sequence[BaseTool] = (),
    ) -> Turn:
        """Take one step of the task and return what the agent said (and the tools it used).

        Raises:
            UnexpectedModelOutput: with tools, the model's actions were rejected
                more times in a row than `limits.max_invalid` allows.

        """
        model = self.model or default_model
        tools = [*self.tools, *extra_tools]
        messages = self.prompt(
            task=task, context=context, transcript=transcript, native=model.native_tools, tools=tools
        )
        if tools:
            acted = await act(model, messages, tools, limits=self.limits)
            return Turn(agent=self.name, content=acted.answer, tool_uses=tuple(acted.tool_uses))
        settings: RequestSettings = {"max_tokens": self.max_tokens}
        response = await model.request(messages, settings=settings)
        return Turn(agent=self.name, content=response.text.strip())
