"""`Agent`: a named role with instructions, a model, tools and a memory policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.tools import BaseTool

from hivegraph.agents.acting import ACTION_RULES, ActLimits, ToolUse, act, describe_tools
from hivegraph.memory.types import MemoryKind
from hivegraph.models.base import ChatModel, Message, RequestSettings, system, user


@dataclass(frozen=True)
class MemoryPolicy:
    """What an agent may read from memory, and how much of it."""

    read_kinds: tuple[MemoryKind, ...] = ("semantic", "episodic", "procedural")
    k: int = 5
    token_budget: int = 600
    gmemory: bool = True
    """Whether the agent sees the team's G-Memory (insights for its role, trajectories of similar tasks)."""


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
        self, *, task: str, context: Sequence[ContextBlock], transcript: Sequence[Turn], native: bool = False
    ) -> list[Message]:
        """The messages this agent sends for one step (with the action rules when it has tools to call)."""
        instructions = self.instructions
        if self.tools and not native:
            instructions += "\n\n" + ACTION_RULES.format(tools=describe_tools(self.tools))
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
    ) -> Turn:
        """Take one step of the task and return what the agent said (and the tools it used).

        Raises:
            UnexpectedModelOutput: with tools, the model's actions were rejected
                more times in a row than `limits.max_invalid` allows.

        """
        model = self.model or default_model
        messages = self.prompt(task=task, context=context, transcript=transcript, native=model.native_tools)
        if self.tools:
            acted = await act(model, messages, self.tools, limits=self.limits)
            return Turn(agent=self.name, content=acted.answer, tool_uses=tuple(acted.tool_uses))
        settings: RequestSettings = {"max_tokens": self.max_tokens}
        response = await model.request(messages, settings=settings)
        return Turn(agent=self.name, content=response.text.strip())
