"""Validation of canonical trajectories (pure; no Django).

``validate`` never raises on user data: it returns findings, each naming the turn and step
it concerns, so the editor can show them next to the step and the audit can count them.

>>> from annotate.trajectory import Trajectory
>>> t = Trajectory.from_dict({"tools": [{"name": "get_weather", "parameters": {"type": "object",
...     "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
...     "turns": [{"user": "weather?", "steps": [{"kind": "tool_call", "name": "get_weather",
...     "arguments": {}, "call_id": "c1"}]}]})
>>> [f.code for f in validate(t)]
['schema_violation', 'call_without_result']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
import json

import jsonschema
from jsonschema import Draft7Validator

from annotate.trajectory import Trajectory

# code -> severity. Errors block an export unless overridden; warnings are shown.
FINDING_CODES = {
    "unknown_tool": "error",
    "arguments_not_object": "error",
    "schema_violation": "error",
    "result_without_call": "error",
    "call_without_result": "warning",
    "empty_answer": "warning",
    "empty_think": "warning",
    "invalid_tool_schema": "error",
}


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    turn: int | None = None
    step: int | None = None
    field: str = ""

    @property
    def severity(self) -> str:
        return FINDING_CODES.get(self.code, "error")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["severity"] = self.severity
        return d


@lru_cache(maxsize=8)
def _meta_validator(cls):
    # ``cls.check_schema`` builds a fresh meta-schema validator on every call (~4 ms);
    # one per draft, reused, does the same check.
    return cls(cls.META_SCHEMA)


@lru_cache(maxsize=4096)
def _validator(schema_json: str):
    schema = json.loads(schema_json)
    schema = bfcl_types_to_json_schema(schema)
    cls = jsonschema.validators.validator_for(schema, default=Draft7Validator)  # tool schemas are draft-7 in practice; its meta-check is ~20x cheaper
    error = jsonschema.exceptions.best_match(_meta_validator(cls).iter_errors(schema))
    if error is not None:
        raise jsonschema.SchemaError.create_from(error)
    return cls(schema)


# Keywords the fast check understands completely; anything else goes to jsonschema.
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment"})
_SIMPLE_KEYS = _ANNOTATIONS | {"type", "enum"}
_OBJECT_KEYS = _ANNOTATIONS | {"type", "properties", "required"}
_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
# The exact types that always pass each check of _TYPES (JSON values read from a file are of these
# types): one set look-up per argument instead of a call of the check (-0.2 us an argument, measured).
_PASSING = {
    "string": frozenset((str,)),
    "integer": frozenset((int,)),
    "number": frozenset((int, float)),
    "boolean": frozenset((bool,)),
    "null": frozenset((type(None),)),
    "array": frozenset((list,)),
    "object": frozenset((dict,)),
}
_FAST_CACHE: dict[int, tuple[dict, object]] = {}


def _fast_check(schema: dict):
    """A checker ``value -> bool`` for the common shape of tool schemas, or None.

    Handles an object with ``properties`` of plain types / enums and ``required``: where it
    says True the value is valid by JSON Schema; where it says False, jsonschema is asked for
    the messages. Unknown keywords (patterns, nested objects, combinators...) → None.
    """
    if set(schema) - _OBJECT_KEYS or schema.get("type", "object") != "object":
        return None
    props = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(props, dict) or not isinstance(required, list):
        return None
    checks = {}
    for name, sub in props.items():
        if not isinstance(sub, dict) or set(sub) - _SIMPLE_KEYS:
            return None
        t = sub.get("type")
        if t is not None and t not in _TYPES:
            return None
        enum = sub.get("enum")
        if enum is not None and (not isinstance(enum, list) or any(isinstance(e, (dict, list, float)) for e in enum)):
            return None
        checks[name] = (_TYPES.get(t), _PASSING.get(t), tuple(enum) if enum is not None else None)

    def check(value) -> bool:
        if not isinstance(value, dict):
            return False
        for r in required:
            if r not in value:
                return False
        for k, v in value.items():
            c = checks.get(k)
            if c is None:
                continue
            type_ok, passing, enum = c
            if type_ok is not None and type(v) not in passing and not type_ok(v):
                return False
            if enum is not None and not any(v == e and type(v) is type(e) for e in enum):
                return False
        return True

    return check


def argument_errors(schema: dict, arguments) -> list[tuple[str, str]]:
    """``[(field_path, message)]`` for arguments that violate a tool's parameter schema.

    An invalid schema is reported as one error on the empty path.
    """
    cached = _FAST_CACHE.get(id(schema))
    if cached is None or cached[0] is not schema:
        # Keyed by identity (the same tool dict is shared across a file's trajectories); the
        # schema is kept alive in the entry so the id cannot be reused while cached.
        if len(_FAST_CACHE) > 4096:
            _FAST_CACHE.clear()
        try:
            _validator(json.dumps(schema, sort_keys=True))  # reject invalid schemas the same way
            fast = _fast_check(bfcl_types_to_json_schema(schema))
        except (jsonschema.SchemaError, TypeError, ValueError):
            fast = None
        cached = _FAST_CACHE[id(schema)] = (schema, fast)
    fast = cached[1]
    if fast is not None and fast(arguments):
        return []
    try:
        v = _validator(json.dumps(schema, sort_keys=True))
    except jsonschema.SchemaError as e:
        return [("", f"the tool's parameter schema is invalid: {e.message}")]
    out = []
    for err in sorted(v.iter_errors(arguments), key=lambda e: list(map(str, e.path))):
        path = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "required" and not path:
            # Name the missing field itself, so a form can show it next to that field.
            missing = err.message.split("'")[1] if "'" in err.message else ""
            path = missing
        out.append((path, err.message))
    return out


def validate(traj: Trajectory) -> list[Finding]:
    findings: list[Finding] = []
    tools = {t["name"]: t for t in traj.tools}
    open_calls: dict[str, tuple[int, int]] = {}
    for ti, turn in enumerate(traj.turns):
        for si, step in enumerate(turn.steps):
            kind = step.kind
            if kind == "tool_call":
                if step.call_id:
                    open_calls[step.call_id] = (ti, si)
                tool = tools.get(step.name)
                if tool is None:
                    findings.append(Finding("unknown_tool", f"tool {step.name!r} is not in the tool list", ti, si, "name"))
                    continue
                if not isinstance(step.arguments, dict):
                    findings.append(Finding("arguments_not_object", "arguments must be a JSON object", ti, si, "arguments"))
                    continue
                for path, msg in argument_errors(tool.get("parameters") or {}, step.arguments):
                    findings.append(Finding("schema_violation", msg, ti, si, f"arguments.{path}" if path else "arguments"))
            elif kind == "tool_result":
                if step.call_id and step.call_id in open_calls:
                    del open_calls[step.call_id]
                elif not step.call_id and _match_by_name(open_calls, traj, step.name):
                    pass
                else:
                    findings.append(Finding("result_without_call", "tool result without a matching call", ti, si, "call_id"))
            elif kind == "answer" and not step.text.strip():
                findings.append(Finding("empty_answer", "the answer is empty", ti, si, "text"))
            elif kind == "think" and not step.text.strip():
                findings.append(Finding("empty_think", "the reasoning is empty", ti, si, "text"))
    for call_id, (ti, si) in open_calls.items():
        findings.append(Finding("call_without_result", "tool call without a result", ti, si, "call_id"))
    if len(findings) > 1:  # (most trajectories have none)
        findings.sort(key=lambda f: (f.turn if f.turn is not None else -1, f.step if f.step is not None else -1))
    return findings


def _match_by_name(open_calls: dict, traj: Trajectory, name: str) -> bool:
    """A result with no call id closes the oldest open call of the same tool (or any call)."""
    for cid, (ti, si) in list(open_calls.items()):
        if not name or traj.turns[ti].steps[si].name == name:
            del open_calls[cid]
            return True
    return False


# BFCL's parameter type names (README_bfcl_data.md) mapped to JSON Schema.
BFCL_TYPES = {
    "dict": "object",
    "float": "number",
    "double": "number",
    "int": "integer",
    "long": "integer",
    "short": "integer",
    "byte": "integer",
    "char": "string",
    "tuple": "array",
    "list": "array",
    "bool": "boolean",
    "str": "string",
    "String": "string",
    "any": None,  # no constraint
    "Any": None,
    "HashMap": "object",
    "ArrayList": "array",
    "Array": "array",
}


def bfcl_types_to_json_schema(schema):
    """Return a copy of ``schema`` with BFCL/Java/Python type names mapped to JSON Schema types."""
    if isinstance(schema, list):
        return [bfcl_types_to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k == "type" and isinstance(v, str) and v in BFCL_TYPES:
            mapped = BFCL_TYPES[v]
            if mapped is None:
                continue
            out[k] = mapped
        elif k in ("properties", "$defs", "definitions", "patternProperties") and isinstance(v, dict):
            out[k] = {pk: bfcl_types_to_json_schema(pv) for pk, pv in v.items()}
        elif k in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not"):
            out[k] = bfcl_types_to_json_schema(v)
        else:
            out[k] = v
    return out
