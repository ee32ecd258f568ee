"""JSON schemas for constrained decoding, checked for the limits a small model needs.

OpenAI's strict mode wants `additionalProperties: false` and every property
required on every object. A small model decoding under a grammar can also loop
inside an open string or array until the token limit, so every string needs a
`maxLength` and every array a `maxItems`; `strict_schema` refuses a schema that
lacks one and names the field. A tagged union (pydantic's `discriminator`) is
sent as a plain `anyOf`: its branches exclude each other by their tag, and not
every grammar backend reads OpenAPI's `discriminator` keyword.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Strict, WithJsonSchema

from hivegraph.errors import ConfigError

BOUNDED_STRING_FORMATS = frozenset({"date", "uuid", "ipv4"})
"""String formats whose grammar has a fixed maximum length (`date-time` does not: its fraction is open)."""

_BRANCH_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
_CONSTRAINED_KEYS = ("type", "$ref", "enum", "const", *_BRANCH_KEYS)


def strict_schema(output_type: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of `output_type`, made strict and checked for bounds.

    Every object gets `additionalProperties: false` and lists all its
    properties as required (defaults still apply when validating).

    Raises:
        ConfigError: a string lacks `maxLength` (and is not an enum, a const or
            a bounded format), an array lacks `maxItems`, an object allows
            arbitrary keys, or a field accepts any value. The message names the
            field, e.g. `Fact.text`.

    """
    schema = copy.deepcopy(output_type.model_json_schema())
    defs: dict[str, Any] = schema.get("$defs", {})
    for def_name, definition in defs.items():
        _tighten(definition, def_name, output_type)
    _tighten(schema, output_type.__name__, output_type)
    return schema


def _tighten(node: dict[str, Any], path: str, output_type: type[BaseModel]) -> None:
    if node.pop("discriminator", None) is not None and "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    types = _types(node)
    if not any(key in node for key in _CONSTRAINED_KEYS):
        _refuse(output_type, path, "accepts any value; give it a concrete type")
    if "string" in types and not _bounded_string(node):
        _refuse(output_type, path, "is a string without max_length; add Field(max_length=...)")
    if "array" in types:
        _tighten_array(node, path, output_type)
    if "object" in types:
        _tighten_object(node, path, output_type)
    for key in _BRANCH_KEYS:
        for branch in node.get(key, []):
            _tighten(branch, path, output_type)


def _tighten_array(node: dict[str, Any], path: str, output_type: type[BaseModel]) -> None:
    closed_tuple = "prefixItems" in node and node.get("items") is False
    if "maxItems" not in node and not closed_tuple:
        _refuse(output_type, path, "is a list without max_length; add Field(max_length=...)")
    items: dict[str, Any] | bool = node.get("items", False)
    if isinstance(items, dict):
        _tighten(items, f"{path}[]", output_type)


def _tighten_object(node: dict[str, Any], path: str, output_type: type[BaseModel]) -> None:
    free_form = node.get("additionalProperties", "properties" not in node)
    if free_form is not False:
        _refuse(output_type, path, "is a mapping with free-form keys; use a model with named fields")
    properties: dict[str, Any] = node.get("properties", {})
    node["additionalProperties"] = False
    node["required"] = list(properties)
    for name, prop in properties.items():
        _tighten(prop, f"{path}.{name}", output_type)


def _types(node: dict[str, Any]) -> set[str]:
    declared = node.get("type")
    if declared is None:
        return set()
    if isinstance(declared, str):
        return {declared}
    return {str(item) for item in declared}  # pyright: ignore[reportUnknownVariableType]


def _bounded_string(node: dict[str, Any]) -> bool:
    return "maxLength" in node or "enum" in node or "const" in node or node.get("format") in BOUNDED_STRING_FORMATS


def _refuse(output_type: type[BaseModel], path: str, problem: str) -> None:
    raise ConfigError(
        f"output schema {output_type.__name__}: field {path} {problem} "
        "(unbounded fields let a small model loop until the token limit)",
        field=path,
    )


def integer_choice(values: Sequence[int], noun: str) -> Any:
    """A strict JSON integer among `values`, sent to the grammar as an `enum`.

    `Literal[0, 1]` would accept `true` and `1.0` for 1; this type refuses any
    value that is not a JSON integer, and names the valid values when an
    integer is not among them, e.g. `id 7 is not one of the listed memories
    (valid: 0, 1)`.
    """
    allowed = frozenset(values)
    listed = ", ".join(str(v) for v in sorted(allowed))

    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"{value} is not one of the listed {noun} (valid: {listed})")
        return value

    schema = {"type": "integer", "enum": sorted(allowed)}
    return Annotated[int, Strict(), AfterValidator(check), WithJsonSchema(schema)]
