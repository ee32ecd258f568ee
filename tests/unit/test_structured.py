"""`strict_schema` and the bounded retry loop of `ChatModel.structured`."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
from pydantic import BaseModel, Field, ValidationError

from hivegraph.errors import ConfigError, RetryRequested, UnexpectedModelOutput
from hivegraph.models.base import OutputSchema, user
from hivegraph.models.schema import integer_choice, strict_schema
from hivegraph.models.testing import ScriptedModel

ASK = [user("Rate this.")]


class Fact(BaseModel):
    text: str = Field(max_length=80)
    tags: list[Literal["home", "food"]] = Field(default=[], max_length=2)


class Extracted(BaseModel):
    facts: list[Fact] = Field(max_length=5)
    note: str | None = Field(default=None, max_length=20)
    day: UUID | None = None
    pair: tuple[int, int] = (0, 0)


class Verdict(BaseModel):
    label: Literal["good", "bad"]
    score: int = Field(ge=0, le=10)


# --- strict_schema -------------------------------------------------------------------------------


def _objects(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":  # pyright: ignore[reportUnknownMemberType]
            found.append(node)  # pyright: ignore[reportUnknownArgumentType]
        for value in node.values():  # pyright: ignore[reportUnknownVariableType]
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:  # pyright: ignore[reportUnknownVariableType]
            found += _objects(value)
    return found


def test_every_object_is_closed_and_lists_all_properties_as_required() -> None:
    schema = strict_schema(Extracted)
    objects = _objects(schema)
    assert len(objects) == 2  # Extracted and Fact
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    assert schema["required"] == ["facts", "note", "day", "pair"]


def test_strict_schema_leaves_the_model_schema_untouched() -> None:
    before = Extracted.model_json_schema()
    strict_schema(Extracted)
    assert Extracted.model_json_schema() == before and "additionalProperties" not in before


def test_defaults_still_apply_when_validating_a_strict_reply() -> None:
    assert Fact.model_validate_json('{"text": "x"}').tags == []


@pytest.mark.parametrize(
    ("field", "annotation", "path", "problem"),
    [
        ("text", str, "Bad.text", "string without max_length"),
        ("maybe", str | None, "Bad.maybe", "string without max_length"),
        ("items", list[int], "Bad.items", "list without max_length"),
        ("names", list[str], "Bad.names", "list without max_length"),
        ("meta", dict[str, int], "Bad.meta", "free-form keys"),
        ("anything", Any, "Bad.anything", "accepts any value"),
    ],
)
def test_unbounded_fields_are_refused_by_name(field: str, annotation: Any, path: str, problem: str) -> None:
    bad = type("Bad", (BaseModel,), {"__annotations__": {field: annotation}})
    with pytest.raises(ConfigError, match=problem) as info:
        strict_schema(bad)
    assert f"field {path} " in str(info.value) and info.value.field == path


def test_unbounded_strings_inside_bounded_lists_are_found() -> None:
    class Item(BaseModel):
        body: str

    class Wrapper(BaseModel):
        items: list[Item] = Field(max_length=3)
        words: list[str] = Field(max_length=3)

    with pytest.raises(ConfigError, match=r"field Item\.body "):
        strict_schema(Wrapper)

    class Words(BaseModel):
        words: list[str] = Field(max_length=3)

    with pytest.raises(ConfigError, match=r"field Words\.words\[\] "):
        strict_schema(Words)


def test_output_schema_of_uses_the_strict_schema() -> None:
    schema = OutputSchema.of(Verdict)
    assert schema.name == "Verdict" and schema.strict is True
    assert schema.json_schema == strict_schema(Verdict)
    assert schema.json_schema["additionalProperties"] is False


def test_output_schema_of_refuses_unbounded_models() -> None:
    class Free(BaseModel):
        answer: str

    with pytest.raises(ConfigError, match=r"Free\.answer"):
        OutputSchema.of(Free)


class Pick(BaseModel):
    """Lax by default: the integer choice is strict by itself."""

    choice: Annotated[Rated | Skipped, Field(discriminator="kind")]


class Rated(BaseModel):
    kind: Literal["rated"]
    item: integer_choice([2, 5], "items")  # pyright: ignore[reportInvalidTypeForm]


class Skipped(BaseModel):
    kind: Literal["skipped"]


Pick.model_rebuild()


def test_a_tagged_union_is_sent_as_a_plain_any_of() -> None:
    schema = strict_schema(Pick)
    assert "discriminator" not in json.dumps(schema) and "oneOf" not in json.dumps(schema)
    assert [b["$ref"] for b in schema["properties"]["choice"]["anyOf"]] == ["#/$defs/Rated", "#/$defs/Skipped"]


def test_an_integer_choice_is_an_enum_in_the_schema() -> None:
    item = strict_schema(Pick)["$defs"]["Rated"]["properties"]["item"]
    assert (item["type"], item["enum"]) == ("integer", [2, 5])
    assert Pick.model_validate_json('{"choice": {"kind": "rated", "item": 5}}').choice == Rated(kind="rated", item=5)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [("true", "valid integer"), ("5.0", "valid integer"), ('"5"', "valid integer"),
     ("3", "3 is not one of the listed items (valid: 2, 5)")],
)  # fmt: skip
def test_an_integer_choice_refuses_what_a_literal_would_coerce(raw: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        Pick.model_validate_json(f'{{"choice": {{"kind": "rated", "item": {raw}}}}}')


# --- ChatModel.structured ------------------------------------------------------------------------


async def test_valid_first_reply_takes_one_attempt() -> None:
    model = ScriptedModel(['{"label":"good","score":9}'])
    result = await model.structured(ASK, Verdict)
    assert (result.output, result.attempts, result.errors) == (Verdict(label="good", score=9), 1, [])
    assert model.requests[0].output_schema == OutputSchema.of(Verdict)


async def test_invalid_json_is_retried_with_feedback() -> None:
    model = ScriptedModel(['{"label": "good", "sco', '{"label":"bad","score":2}'])
    result = await model.structured(ASK, Verdict)
    assert result.output == Verdict(label="bad", score=2)
    assert result.attempts == 2 and len(result.errors) == 1 and "Invalid JSON" in result.errors[0]
    retry = model.requests[1].messages
    assert retry[:-2] == ASK
    assert (retry[-2].role, retry[-2].content) == ("assistant", '{"label": "good", "sco')
    assert retry[-1].role == "user" and result.errors[0] in retry[-1].content


async def test_schema_violations_name_the_field() -> None:
    model = ScriptedModel(['{"label":"meh","score":11}', '{"label":"good","score":1}'])
    result = await model.structured(ASK, Verdict)
    assert result.attempts == 2
    assert "label:" in result.errors[0] and "score:" in result.errors[0]


async def test_empty_reply_is_retried() -> None:
    model = ScriptedModel(["", '{"label":"good","score":3}'])
    result = await model.structured(ASK, Verdict)
    assert result.attempts == 2 and result.output.score == 3 and len(result.errors) == 1


async def test_validator_feedback_reaches_the_model() -> None:
    def must_be_high(verdict: Verdict) -> Verdict:
        if verdict.score < 5:
            raise RetryRequested(f"score {verdict.score} is too low for a good label")
        return verdict

    model = ScriptedModel(['{"label":"good","score":1}', '{"label":"good","score":8}'])
    result = await model.structured(ASK, Verdict, validate=must_be_high)
    assert result.output.score == 8 and result.errors == ["score 1 is too low for a good label"]
    assert "score 1 is too low for a good label" in model.requests[1].messages[-1].content


async def test_exhaustion_raises_with_the_last_raw_reply() -> None:
    replies = ["nope", '{"label":"good"}', "still not json"]
    model = ScriptedModel(replies, max_retries=2)
    with pytest.raises(UnexpectedModelOutput) as info:
        await model.structured(ASK, Verdict)
    assert info.value.body == "still not json"
    assert len(info.value.errors) == 3 and len(model.requests) == 3
    assert "after 3 attempts" in str(info.value)
    last = model.requests[2].messages
    assert [m.content for m in last if m.role == "assistant"] == replies[:2]


async def test_max_retries_argument_overrides_the_model_default() -> None:
    model = ScriptedModel(["bad", '{"label":"good","score":1}'], max_retries=5)
    with pytest.raises(UnexpectedModelOutput):
        await model.structured(ASK, Verdict, max_retries=0)
    assert len(model.requests) == 1 and model.remaining == 1
