"""A form for a tool call's arguments, generated from the tool's JSON schema (pure; no Django).

``argument_fields(schema, arguments)`` describes one input per schema property: strings, numbers,
integers, booleans and enums get their own widget; objects, arrays and anything else get a JSON
textarea. Arguments the schema does not define are kept in an "other arguments" JSON field, so
nothing the model produced is dropped by opening the form. ``read_value`` reads one submitted
input back (``annotate.workbench.step_forms`` reads a whole form).

>>> schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
...           "required": ["city"]}
>>> [(f.name, f.widget, f.value) for f in argument_fields(schema, {"city": "Paris", "days": 3})]
[('city', 'text', 'Paris'), ('days', 'integer', '3')]
>>> [(f.name, f.widget, f.value) for f in argument_fields(schema, {"city": "Paris", "days": "3"})]
[('city', 'text', 'Paris'), ('days', 'json', '"3"')]
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from annotate.findings import bfcl_types_to_json_schema
from core import strict_json

EXTRA = "__other__"  # the field holding arguments the schema does not define
_INT = re.compile(r"^[+-]?\d+$")


@dataclass
class ArgField:
    name: str
    widget: str  # text | number | integer | boolean | enum | json
    value: str
    required: bool = False
    description: str = ""
    type_name: str = ""
    choices: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Textarea height that shows a JSON value without scrolling (within reason)."""
        return max(2, min(10, self.value.count("\n") + 1))


def _properties(schema: Any) -> tuple[dict, list[str]]:
    schema = bfcl_types_to_json_schema(schema) if isinstance(schema, dict) else {}
    props = schema.get("properties")
    req = schema.get("required")
    return (props if isinstance(props, dict) else {}), [r for r in (req if isinstance(req, list) else []) if isinstance(r, str)]


def _widget(spec: Any) -> tuple[str, str, list[str]]:
    """(widget, type name, choices) for one property schema."""
    if not isinstance(spec, dict):
        return "json", "any", []
    enum = spec.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        return "enum", "one of", list(enum)
    t = spec.get("type")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        t = non_null[0] if len(non_null) == 1 else None
    return {"string": ("text", "string", []), "number": ("number", "number", []),
            "integer": ("integer", "integer", []), "boolean": ("boolean", "true / false", [])}.get(
        t, ("json", t if isinstance(t, str) else "JSON", []))


def _fits(widget: str, value: Any, choices: list[str]) -> bool:
    """Whether ``value`` can show in ``widget`` and read back unchanged."""
    if value is None:
        return widget != "json"
    if widget == "text":
        return isinstance(value, str)
    if widget == "enum":
        return isinstance(value, str) and value in choices
    if widget == "boolean":
        return isinstance(value, bool)
    if widget == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if widget == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return True


def _as_text(widget: str, value: Any) -> str:
    if value is None:
        return ""
    if widget in ("text", "enum"):
        return value
    if widget == "boolean":
        return "true" if value else "false"
    if widget in ("integer", "number"):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, indent=2)


def argument_fields(schema: Any, arguments: Any) -> list[ArgField]:
    """One field per schema property (in schema order), then "other arguments" when needed.

    A value whose type does not fit its widget (a model that sent ``"3"`` for an integer) is
    shown as JSON, so opening and saving the form never changes it silently.
    """
    props, required = _properties(schema)
    args = arguments if isinstance(arguments, dict) else {}
    fields = []
    for name, spec in props.items():
        widget, type_name, choices = _widget(spec)
        value = args.get(name)
        if name in args and not _fits(widget, value, choices):
            widget, type_name, choices = "json", f"{type_name} (holds a {type(value).__name__})", []
        fields.append(ArgField(
            name=name, widget=widget, value=_as_text(widget, value) if name in args else "",
            required=name in required, description=str((spec or {}).get("description", "") if isinstance(spec, dict) else ""),
            type_name=type_name, choices=choices))
    extra = {k: v for k, v in args.items() if k not in props}
    if extra or not props:
        fields.append(ArgField(name=EXTRA, widget="json", value=json.dumps(extra, ensure_ascii=False, indent=2) if extra else "",
                               description="Arguments the tool's schema does not define (a JSON object).",
                               type_name="object"))
    return fields


WIDGETS = ("text", "number", "integer", "boolean", "enum", "json")


def read_value(widget: str, raw: str) -> Any:
    """One input's text as the value its widget stands for; ValueError with a message for the user.

    >>> read_value("integer", "3"), read_value("number", "2.5"), read_value("json", "[1]")
    (3, 2.5, [1])
    """
    s = raw.strip()
    if widget == "text":
        return raw
    if widget == "enum":
        return raw
    if widget == "boolean":
        if s.lower() in ("true", "yes", "on", "1"):
            return True
        if s.lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError("Choose true or false.")
    if widget == "integer":
        if not _INT.match(s):
            raise ValueError("Enter a whole number.")
        return int(s)
    if widget == "number":
        if _INT.match(s):
            return int(s)
        try:
            v = float(s)
        except ValueError:
            raise ValueError("Enter a number.") from None
        if not math.isfinite(v):
            raise ValueError("Enter a finite number.")
        return v
    try:
        return strict_json.loads(s)
    except json.JSONDecodeError as e:
        raise ValueError(f"Not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}).") from None


def parse_raw_arguments(text: str) -> tuple[Any, str]:
    """Arguments from the raw-JSON mode: ``(value, "")`` or ``(None, error)``.

    >>> parse_raw_arguments('{"city": "Paris"}')
    ({'city': 'Paris'}, '')
    >>> parse_raw_arguments('{"city": ')[1]
    'Not valid JSON: Expecting value (line 1, column 10).'
    """
    if not text.strip():
        return {}, ""
    try:
        return strict_json.loads(text), ""
    except json.JSONDecodeError as e:
        return None, f"Not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})."


def errors_by_field(errors: list[tuple[str, str]], field_names: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Schema errors (``argument_errors`` output: ``(path, message)``) placed on the form's fields.

    A nested path (``items.0.name``) lands on its top-level field; an error no field owns (an
    unexpected argument, a broken schema) is returned in the second list.

    >>> errors_by_field([("city", "'city' is a required property"), ("", "bad")], ["city"])
    ({'city': ["'city' is a required property"]}, ['bad'])
    """
    placed: dict[str, list[str]] = {}
    rest: list[str] = []
    names = set(field_names)
    for path, message in errors:
        top = path.split(".", 1)[0] if path else ""
        if top in names:
            placed.setdefault(top, []).append(message)
        else:
            rest.append(f"{path}: {message}" if path else message)
    return placed, rest


def raw_text(arguments: Any) -> str:
    return json.dumps(arguments if arguments is not None else {}, ensure_ascii=False, indent=2)
