"""xLAM / APIGen function-calling rows (Salesforce/xlam-function-calling-60k) -> trajectories (pure; no Django).

A row is ``{"id", "query", "tools", "answers"}`` where ``tools`` and ``answers`` are JSON *strings*
(a list of tools is also taken). A tool's ``parameters`` is a flat map ``{name: {"description",
"type", "default"}}`` whose types are Python-ish: ``"str"``, ``"int, optional"``, ``"List[int]"``,
``"Dict[str, Any]"``, ``"Tuple[float, float]"``. They become a JSON-schema object (``", optional"``
marks a parameter not required; a type we cannot read leaves the property untyped); the tools exactly
as the row gave them are kept in ``meta.extra["original_tools"]``. ``answers`` become parallel
``tool_call`` steps of the one turn (no results, no answer text: the row holds none). ``id`` is the
external id; any other key of the row goes to ``meta.extra``.

>>> t = to_trajectory({"id": 0, "query": "Giveaways for beta?", "tools": '[{"name": "live_giveaways_by_type", '
...     '"description": "Giveaways.", "parameters": {"type": {"description": "kind", "type": "str, optional", '
...     '"default": "game"}}}]', "answers": '[{"name": "live_giveaways_by_type", "arguments": {"type": "beta"}}]'})
>>> t.tools[0]["parameters"]
{'type': 'object', 'properties': {'type': {'type': 'string', 'description': 'kind', 'default': 'game'}}, 'required': []}
>>> [(s.kind, s.arguments) for s in t.turns[0].steps], t.meta.external_id
([('tool_call', {'type': 'beta'})], '0')
"""

from __future__ import annotations

import json
import re
from typing import Any

from annotate.formats.common import (
    loads, TrajectoryBuilder, meta_field, require_dict, set_meta, string_field, tools_field, type_name,
)
from annotate.findings import bfcl_types_to_json_schema
from annotate.formats import Format, register
from annotate.trajectory import MAX_NESTING, SchemaError, Trajectory, check_nesting

KNOWN_KEYS = ("id", "query", "tools", "answers", "meta")

_SCALARS = {
    "str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
    "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "array": "array",
    "tuple": "array", "set": "array", "dict": "object", "object": "object", "none": "null",
}
_OPTIONAL = re.compile(r"^(.*?)\s*,\s*optional\s*$", re.IGNORECASE)
_GENERIC = re.compile(r"^(\w+)\s*\[(.*)\]$", re.DOTALL)


def detect(record: dict) -> bool:
    return "query" in record and "answers" in record and "tools" in record


def python_type_schema(spec: str) -> tuple[dict, bool]:
    """``(schema, optional)`` for an xLAM type string; an unreadable type gives ``{}`` (any value).

    >>> python_type_schema("List[int]")
    ({'type': 'array', 'items': {'type': 'integer'}}, False)
    >>> python_type_schema("str, optional")
    ({'type': 'string'}, True)
    >>> python_type_schema("Dict[str, Any]"), python_type_schema("Optional[float]")
    (({'type': 'object'}, False), ({'type': 'number'}, True))
    >>> python_type_schema("List[Union[int, float]]")[0]
    {'type': 'array', 'items': {'type': ['integer', 'number']}}
    >>> python_type_schema("book")
    ({}, False)
    """
    text = spec.strip()
    optional = False
    m = _OPTIONAL.match(text)
    if m:
        text, optional = m.group(1), True
    schema, opt = _type_schema(text)
    return schema, optional or opt


def _type_schema(text: str) -> tuple[dict, bool]:
    text = text.strip()
    low = text.lower()
    if low in _SCALARS:
        return {"type": _SCALARS[low]}, False
    m = _GENERIC.match(text)
    if not m:
        return {}, False
    outer, inner = m.group(1).lower(), m.group(2)
    args = _split_top(inner)
    if outer == "optional" and len(args) == 1:
        return _type_schema(args[0])[0], True
    if outer == "union":
        parts = [_type_schema(a)[0] for a in args]
        if all(set(p) == {"type"} and isinstance(p["type"], str) for p in parts):
            types = list(dict.fromkeys(p["type"] for p in parts))
            optional = "null" in types
            types = [t for t in types if t != "null"] or ["null"]
            return {"type": types[0] if len(types) == 1 else types}, optional
        return {"anyOf": [p for p in parts if p]}, False
    if outer in ("list", "set", "sequence", "iterable"):
        items = _type_schema(args[0])[0] if len(args) == 1 else {}
        return ({"type": "array", "items": items} if items else {"type": "array"}), False
    if outer == "tuple":
        items = [_type_schema(a)[0] for a in args if a.strip() != "..."]
        if len(items) == 1 or (items and all(i == items[0] for i in items)):
            return {"type": "array", "items": items[0]} if items[0] else {"type": "array"}, False
        return {"type": "array"}, False
    if outer in ("dict", "mapping"):
        return {"type": "object"}, False
    return {}, False


def _split_top(text: str) -> list[str]:
    """Split ``a, B[c, d], e`` at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def flat_parameters_schema(params: Any, where: str) -> dict:
    """A JSON-schema object for xLAM's flat ``{name: {"description", "type", "default"}}`` map.

    A map that already is a JSON schema (``{"type": "object", "properties": ...}``) is taken as it is.
    """
    if params is None or params == {}:
        return {"type": "object", "properties": {}}
    if type(params) is not dict:
        raise SchemaError(f"must be an object of parameters, got {type_name(params)}", where)
    if isinstance(params.get("properties"), dict) and params.get("type") in ("object", "dict"):
        return {**bfcl_types_to_json_schema(params), "type": "object"}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in params.items():
        if type(spec) is not dict:
            raise SchemaError(f"a parameter must be an object with a type, got {type_name(spec)}", f"{where}.{name}")
        prop: dict[str, Any] = {}
        optional = False
        t = spec.get("type")
        if isinstance(t, str):
            schema, optional = python_type_schema(t)
            prop.update(schema)
        elif t is not None:
            raise SchemaError(f"a parameter type must be a string, got {type_name(t)}", f"{where}.{name}.type")
        for k, v in spec.items():
            if k == "type":
                continue
            if k == "default" and v == "":
                continue  # xLAM writes "" for "no default"; the original is kept
            prop[k] = v
        properties[name] = prop
        if not optional:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}


def _json_value(value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            return loads(value)
        except json.JSONDecodeError as e:
            raise SchemaError(f"not valid JSON ({e.msg} at character {e.pos})", where) from None
        except RecursionError:
            raise SchemaError(f"nested deeper than {MAX_NESTING} levels", where) from None
    return value


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    record = require_dict(record, "record")
    b = TrajectoryBuilder()
    b.user(string_field(record.get("query"), "query"))
    original = _json_value(record.get("tools"), "tools")
    if original is None or original == "":
        original = []
    if type(original) is not list:
        raise SchemaError(f"must be a list of tools, got {type_name(original)}", "tools")
    check_nesting(original, "tools")
    specs = []
    for i, t in enumerate(original):
        if type(t) is not dict:
            raise SchemaError(f"a tool must be an object, got {type_name(t)}", f"tools[{i}]")
        specs.append({**t, "parameters": flat_parameters_schema(t.get("parameters"), f"tools[{i}].parameters")})
    answers = _json_value(record.get("answers"), "answers")
    if answers is None:
        answers = []
    if type(answers) is not list:
        raise SchemaError(f"must be a list of calls, got {type_name(answers)}", "answers")
    for j, a in enumerate(answers):
        w = f"answers[{j}]"
        if type(a) is not dict:
            raise SchemaError(f"a call must be an object, got {type_name(a)}", w)
        extra = {k: v for k, v in a.items() if k not in ("name", "arguments")}
        b.call(a.get("name"), a.get("arguments"), None, w, extra=extra or None)
    traj = b.finish("", tools_field(specs, "tools") if specs else tools_field(tools, "tools"))
    extra: dict[str, Any] = {"original_tools": original} if original else {}
    extra.update({k: v for k, v in record.items() if k not in KNOWN_KEYS})
    given = meta_field(record.get("meta"), "meta")
    rid = record.get("id", record.get("uuid"))
    set_meta(traj, given, source=source, external_id=rid, extra=extra)
    return traj


register(Format(
    "xlam", title="xLAM / APIGen function-calling rows", aliases=("apigen",),
    detect=detect, read=lambda r, *, source="", tools=None, answer=None: to_trajectory(r, source=source, tools=tools),
    rule="'query', 'tools' and 'answers' (JSON strings)",
    example={"id": 0, "query": "Where can I find live giveaways for beta access and games?",
             "answers": '[{"name": "live_giveaways_by_type", "arguments": {"type": "beta"}}]',
             "tools": '[{"name": "live_giveaways_by_type", "description": "Retrieve live giveaways", '
                      '"parameters": {"type": {"description": "game, loot or beta", "type": "str", "default": "game"}}}]'}))
