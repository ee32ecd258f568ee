"""Agents that act: a bounded loop of tool calls that ends in an answer.

Two ways to ask a model for its next action, chosen per model:

- **Constrained actions** (every vLLM-served model): each step the reply must
  follow a JSON schema built for this agent's tools, either
  `{"action": "call", "tool": <one of the tools>, "arguments": {...}}` or
  `{"action": "answer", "answer": "..."}`. A reply that does not parse or names
  no known tool is shown back with the reason and asked again, a bounded number
  of times in a row.
- **Native tool calls** (`ChatModel.native_tools`, for servers started with a
  tool-call parser): the tools go out as OpenAI function tools and the model's
  `tool_calls` are run; a reply without calls is the answer.

Either way a tool's error is fed back to the model as the call's result (it
may try something else), at most `max_steps` tools run before the model must
answer, and every call with its arguments and result is returned, for the
run's state and its episodic record.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from hivegraph.errors import ConfigError, UnexpectedModelOutput
from hivegraph.models.base import (
    ChatModel,
    Message,
    ModelResponse,
    OutputSchema,
    RequestSettings,
    ToolDefinition,
    assistant,
    user,
)

MAX_ANSWER_CHARS = 4000
CHARS_PER_TOKEN = 3
"""A low guess of characters per token: an answer bounded by it ends before the reply's token limit."""
ACTION_TOKENS = 16
"""Tokens an answer action spends around the answer text (`{"action": "answer", "answer": "…"}`)."""
MAX_ARGUMENT_CHARS = 1000
"""Bound given to a tool's string arguments that have none (a small model can loop inside an open string)."""
MAX_ARGUMENT_ITEMS = 20
MAX_RESULT_CHARS = 2000
"""A tool result longer than this is cut before the model sees it (the full result is kept in the `ToolUse`)."""

_CUT = " (the reply reached the token limit: say it in fewer words)"
_REJECTED = "Your action was rejected: {reason}\nReply again with one JSON action that follows the schema."


@dataclass(frozen=True)
class ToolUse:
    """One tool call an agent made and what came back."""

    tool: str
    arguments: dict[str, Any]
    result: str
    ok: bool
    """False when the tool raised (`result` then says why)."""
    step: int
    """Which action of the agent's turn this was (0 first)."""


@dataclass(frozen=True)
class Acted:
    """How an agent's turn ended: its answer, the tools it used and the actions that were rejected."""

    answer: str
    tool_uses: list[ToolUse] = field(default_factory=list[ToolUse])
    rejected: list[str] = field(default_factory=list[str])
    """Why each rejected action was rejected, in order."""
    forced: bool = False
    """Whether the step budget ran out and the model was made to answer."""


@dataclass(frozen=True)
class ActLimits:
    """The bounds of one turn."""

    max_steps: int = 4
    """Tool calls allowed before the model must answer."""
    min_calls: int = 0
    """Tool calls the model must make before it may answer (OpenAI's `tool_choice="required"` for the first)."""
    max_invalid: int = 2
    """Rejected actions in a row allowed before the turn fails."""
    max_tokens: int = 256
    """Tokens per model reply."""

    def __post_init__(self) -> None:
        if (
            self.max_steps < 0
            or self.max_invalid < 0
            or self.max_tokens < 1
            or not 0 <= self.min_calls <= self.max_steps
        ):
            raise ConfigError(f"act limits must be non-negative, max_tokens positive, min_calls <= max_steps: {self}")


def tool_parameters(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, as OpenAI function tools send it."""
    function = cast(dict[str, Any], convert_to_openai_tool(tool)["function"])
    return cast(dict[str, Any], function.get("parameters") or {"type": "object", "properties": {}})


def answer_chars(max_tokens: int) -> int:
    """The longest answer text a reply of `max_tokens` tokens should hold, so a grammar closes it in time."""
    return max(16, min(MAX_ANSWER_CHARS, (max_tokens - ACTION_TOKENS) * CHARS_PER_TOKEN))


def action_schema(
    tools: Sequence[BaseTool],
    *,
    answer_only: bool = False,
    call_only: bool = False,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> OutputSchema:
    """The schema of one action: a call of one of `tools` with its arguments, or the answer (or only one kind)."""
    answer: dict[str, Any] = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["answer"]},
            "answer": {"type": "string", "maxLength": max_answer_chars},
        },
        "required": ["action", "answer"],
        "additionalProperties": False,
    }
    offered: Sequence[BaseTool] = () if answer_only else tools
    calls: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["call"]},
                "tool": {"type": "string", "enum": [tool.name]},
                "arguments": _bounded(tool_parameters(tool)),
            },
            "required": ["action", "tool", "arguments"],
            "additionalProperties": False,
        }
        for tool in offered
    ]
    branches = calls if call_only and calls else [*calls, answer]
    return OutputSchema(name="AgentAction", json_schema={"anyOf": branches}, strict=False)


def _bounded(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with a length bound on every string and array that has none."""
    bounded = copy.deepcopy(schema)

    def visit(node: object) -> None:
        if isinstance(node, dict):
            typed = cast(dict[str, Any], node)
            declared: object = typed.get("type")
            kinds = cast(list[object], declared) if isinstance(declared, list) else [declared]
            if "string" in kinds and "enum" not in typed:
                typed.setdefault("maxLength", MAX_ARGUMENT_CHARS)
            if "array" in kinds:
                typed.setdefault("maxItems", MAX_ARGUMENT_ITEMS)
            for value in typed.values():
                visit(value)
        elif isinstance(node, list):
            for item in cast(list[object], node):
                visit(item)

    visit(bounded)
    return bounded


def describe_tools(tools: Sequence[BaseTool]) -> str:
    """The tools as the model reads them in its instructions: name, what it does, its arguments."""
    lines: list[str] = []
    for tool in tools:
        properties = cast(dict[str, Any], tool_parameters(tool).get("properties", {}))
        args = ", ".join(f"{name}: {spec.get('description') or spec.get('type', 'value')}"
                         for name, spec in properties.items())  # fmt: skip
        lines.append(f"- {tool.name}({args}): {tool.description}")
    return "\n".join(lines)


ACTION_RULES = (
    "You can use these tools:\n{tools}\n\n"
    'Each reply is one JSON action: {{"action": "call", "tool": <name>, "arguments": {{...}}}} to use a tool '
    '(you will see its result), or {{"action": "answer", "answer": <your reply to the team>}} when you are done.'
)


async def act(
    model: ChatModel,
    messages: Sequence[Message],
    tools: Sequence[BaseTool],
    *,
    limits: ActLimits | None = None,
    native: bool | None = None,
) -> Acted:
    """Let `model` call `tools` until it answers, within `limits`.

    `messages` are the agent's prompt; with constrained actions (the default
    unless the model says it calls tools natively) their system message should
    carry `ACTION_RULES`.

    Raises:
        UnexpectedModelOutput: more than `max_invalid` actions in a row were rejected.

    """
    limits = limits or ActLimits()
    if native if native is not None else model.native_tools:
        return await _act_natively(model, messages, tools, limits)
    return await _act_constrained(model, messages, tools, limits)


async def _act_constrained(
    model: ChatModel, messages: Sequence[Message], tools: Sequence[BaseTool], limits: ActLimits
) -> Acted:
    by_name = {tool.name: tool for tool in tools}
    settings: RequestSettings = {"max_tokens": limits.max_tokens}
    history = list(messages)
    uses: list[ToolUse] = []
    rejections = _Rejections(model.model_name, "actions", limits.max_invalid)
    while True:
        forced = len(uses) >= limits.max_steps
        required = len(uses) < limits.min_calls
        schema = action_schema(
            tools, answer_only=forced, call_only=required, max_answer_chars=answer_chars(limits.max_tokens)
        )
        response = await model.request(history, settings=settings, output_schema=schema)
        try:
            action = _parse_action(response.text, by_name, forced=forced, required=required)
        except _Rejected as exc:
            reason = exc.reason + (_CUT if response.finish_reason == "length" else "")
            rejections.count(reason, body=response.text)
            history += [assistant(response.text), user(_REJECTED.format(reason=reason))]
            continue
        rejections.in_a_row = 0
        if isinstance(action, str):
            return Acted(answer=action, tool_uses=uses, rejected=rejections.reasons, forced=forced)
        name, arguments = action
        use = await run_tool(by_name[name], arguments, step=len(uses))
        uses.append(use)
        history += [assistant(response.text), user(observation(use, last=len(uses) >= limits.max_steps))]


async def _act_natively(
    model: ChatModel, messages: Sequence[Message], tools: Sequence[BaseTool], limits: ActLimits
) -> Acted:
    by_name = {tool.name: tool for tool in tools}
    definitions = [ToolDefinition(t.name, t.description, tool_parameters(t)) for t in tools]
    settings: RequestSettings = {"max_tokens": limits.max_tokens}
    history = list(messages)
    uses: list[ToolUse] = []
    rejections = _Rejections(model.model_name, "tool calls", limits.max_invalid)
    while True:
        forced = len(uses) >= limits.max_steps
        response: ModelResponse = await model.request(history, settings=settings, tools=None if forced else definitions)
        if not response.tool_calls:
            return Acted(answer=response.text.strip(), tool_uses=uses, rejected=rejections.reasons, forced=forced)
        history.append(assistant(response.text).model_copy(update={"tool_calls": tuple(response.tool_calls)}))
        for call in response.tool_calls:
            try:
                arguments = _arguments(call.arguments)
                if call.name not in by_name:
                    raise _Rejected(f"there is no tool {call.name!r}; the tools are {sorted(by_name)}")
            except _Rejected as exc:
                rejections.count(exc.reason, body=call.arguments)
                history.append(Message(role="tool", content=f"rejected: {exc.reason}", tool_call_id=call.id))
                continue
            rejections.in_a_row = 0
            use = await run_tool(by_name[call.name], arguments, step=len(uses))
            uses.append(use)
            history.append(Message(role="tool", content=_shown(use.result), tool_call_id=call.id))


async def run_tool(tool: BaseTool, arguments: dict[str, Any], *, step: int) -> ToolUse:
    """Run `tool`; what it raises becomes an unsuccessful result the model can read."""
    try:
        result = await tool.ainvoke(arguments)
    except ValidationError as exc:  # the arguments do not fit the tool's schema: say which and why, briefly
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return ToolUse(tool.name, arguments, f"invalid arguments: {problems}", ok=False, step=step)
    except Exception as exc:  # any tool failure is reported to the model, not raised
        return ToolUse(tool.name, arguments, f"{type(exc).__name__}: {exc}", ok=False, step=step)
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return ToolUse(tool.name, arguments, text, ok=True, step=step)


def observation(use: ToolUse, *, last: bool = False) -> str:
    """What the model reads after a call: the result, or the error and a nudge to try otherwise."""
    head = f"Result of {use.tool}: " if use.ok else f"{use.tool} failed: "
    tail = "" if use.ok else "\nFix the arguments, use another tool, or answer."
    if last:
        tail += "\nNo more tool calls are allowed: answer now."
    return head + _shown(use.result) + tail


def _shown(result: str) -> str:
    return result if len(result) <= MAX_RESULT_CHARS else result[:MAX_RESULT_CHARS] + " …(cut)"


@dataclass
class _Rejections:
    """The rejected actions of one turn, and the bound on how many may come in a row."""

    model_name: str
    what: str
    max_in_a_row: int
    reasons: list[str] = field(default_factory=list[str])
    in_a_row: int = 0

    def count(self, reason: str, *, body: str) -> None:
        """Note one rejection; raise `UnexpectedModelOutput` once more than `max_in_a_row` came in a row."""
        self.reasons.append(reason)
        self.in_a_row += 1
        if self.in_a_row > self.max_in_a_row:
            raise UnexpectedModelOutput(
                f"{self.model_name}: {self.in_a_row} {self.what} in a row were rejected; last: {reason}",
                body=body, errors=self.reasons,
            )  # fmt: skip


class _Rejected(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse_action(
    text: str, tools: dict[str, BaseTool], *, forced: bool, required: bool = False
) -> str | tuple[str, dict[str, Any]]:
    """The answer, or the tool name and arguments, of a reply; `_Rejected` says what is wrong with it."""
    try:
        reply = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Rejected(f"the reply is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(reply, dict):
        raise _Rejected("the reply must be a JSON object")
    action = cast(dict[str, Any], reply)
    kind = action.get("action")
    if kind == "answer" and required:
        raise _Rejected("call a tool first; an answer is not accepted yet")
    if kind == "answer":
        answer = action.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            raise _Rejected('"answer" must be a non-empty string')
        return answer.strip()
    if kind != "call":
        raise _Rejected('"action" must be "call" or "answer"')
    if forced:
        raise _Rejected("no more tool calls are allowed; answer now")
    name = action.get("tool")
    if not isinstance(name, str) or name not in tools:
        raise _Rejected(f"there is no tool {name!r}; the tools are {sorted(tools)}")
    arguments = action.get("arguments", {})
    if not isinstance(arguments, dict):
        raise _Rejected('"arguments" must be a JSON object')
    return name, cast(dict[str, Any], arguments)


def _arguments(raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise _Rejected(f"the arguments are not JSON ({exc.msg})") from None
    if not isinstance(parsed, dict):
        raise _Rejected("the arguments must be a JSON object")
    return cast(dict[str, Any], parsed)
