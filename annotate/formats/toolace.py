"""ToolACE rows (Team-ACE/ToolACE) -> canonical trajectories (pure; no Django).

A row is ``{"system", "conversations": [{"from": "user" | "assistant" | "tool", "value"}]}``. The
tool specs sit inside the system prose (``"... Here is a list of functions in JSON format that you
can invoke:\\n[{...}, ...]. \\nShould you decide ..."``): the JSON list becomes the tools (BFCL-style
``"dict"`` / ``"float"`` types mapped to JSON Schema; the list as written is kept in
``meta.extra["original_tools"]``) and the prose around it the system prompt. An assistant value
written as Python calls, ``[Get Weather(city="Paris", days=3), other(x=1)]``, is read with ``ast``
(never evaluated) into parallel ``tool_call`` steps: names may hold spaces, arguments must be
keyword literals (``true`` / ``false`` / ``null`` are taken as JSON's); anything else is refused
with the field named. Other assistant values are answers. A ``tool`` value is the result of the
open call; when several calls are open and it is a JSON list with one ``{"name", "results"}``
entry per call, each entry answers the call of its name. A row's ``id`` / ``uuid`` is its
external id; other keys go to ``meta.extra``, other keys of a conversation entry to its step's
``extra``.

>>> t = to_trajectory({"system": 'Use these:\\n[{"name": "Get Weather", "parameters": {"type": "dict", '
...     '"properties": {"city": {"type": "string"}}}}]. \\nReply with calls.', "conversations": [
...     {"from": "user", "value": "Weather in Paris?"},
...     {"from": "assistant", "value": '[Get Weather(city="Paris")]'},
...     {"from": "tool", "value": '[{"name": "Get Weather", "results": {"temp": 18}}]'},
...     {"from": "assistant", "value": "18 C."}]})
>>> t.system, t.tools[0]["parameters"]["type"]
('Use these:\\n. \\nReply with calls.', 'object')
>>> [(s.kind, s.name, s.arguments) for s in t.turns[0].steps][:2]
[('tool_call', 'Get Weather', {'city': 'Paris'}), ('tool_result', 'Get Weather', None)]
"""

from __future__ import annotations

import ast
import json
from typing import Any

from annotate.case_types import looks_like_failure
from annotate.formats.common import (
    loads, STRICT_JSON, TrajectoryBuilder, meta_field, require_dict, require_list, set_meta, string_field, tools_field, type_name,
)
from annotate.findings import bfcl_types_to_json_schema
from annotate.formats import Format, register
from annotate.trajectory import MAX_NESTING, SchemaError, Trajectory, check_nesting

KNOWN_KEYS = ("system", "conversations", "meta")
MARKER = "Here is a list of functions in JSON format that you can invoke:"
_DECODER = STRICT_JSON  # (NaN, Infinity and 1e999 refused: the database's JSON columns refuse them)
_JSON_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def find_tool_list(system: str) -> tuple[int, int, list] | None:
    """``(start, end, tools)`` of the JSON list of function specs in a system text, or None."""
    at = system.find(MARKER)
    pos = at + len(MARKER) if at >= 0 else 0
    while True:
        start = system.find("[", pos)
        if start < 0:
            return None
        try:
            value, end = _DECODER.raw_decode(system, start)
        except (json.JSONDecodeError, RecursionError):
            pos = start + 1
            continue
        if type(value) is list and value and all(type(t) is dict and "name" in t for t in value):
            return start, end, value
        pos = start + 1


def detect(record: dict) -> bool:
    convs = record.get("conversations")
    system = record.get("system")
    if type(convs) is not list or not isinstance(system, str) or "tools" in record:
        return False
    first = next((m for m in convs if type(m) is dict), None)
    return first is not None and "from" in first and '[{"name"' in system and find_tool_list(system) is not None


def parse_calls(text: str, where: str) -> list[tuple[str, dict]] | None:
    """The calls of a ``[f(a=1), g name(b="x")]`` value, or None when the value is not written so.

    >>> parse_calls('[Get Weather(city="Paris", days=3), now()]', "value")
    [('Get Weather', {'city': 'Paris', 'days': 3}), ('now', {})]
    >>> parse_calls("[See the docs](http://x)", "value") is None
    True
    """
    s = text.strip()
    if not (s.startswith("[") and s.endswith("]")):
        return None
    spans = _call_spans(s)
    if spans is None:
        return None
    return [(name, _arguments(name, args, where)) for name, args in spans]


def _call_spans(s: str) -> list[tuple[str, str]] | None:
    """``[(name, argument source)]`` of a bracketed call list; None when it is not one."""
    out = []
    i, n = 1, len(s) - 1
    while True:
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i >= n:
            return out or None
        open_at = s.find("(", i)
        if open_at < 0:
            return None
        name = s[i:open_at].strip()
        if not name or any(c in name for c in "[]{}()\"',=:\n"):
            return None
        j, depth, quote = open_at, 0, ""
        while j < n:
            c = s[j]
            if quote:
                if c == "\\":
                    j += 1
                elif c == quote:
                    quote = ""
            elif c in "\"'":
                quote = c
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= n or s[j] != ")":
            return None
        out.append((name, s[open_at + 1:j]))
        i = j + 1
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i < n:
            if s[i] != ",":
                return None
            i += 1


def _arguments(name: str, source: str, where: str) -> dict:
    try:
        tree = ast.parse(f"_({source})", mode="eval")
    except SyntaxError as e:
        raise SchemaError(f"the arguments of {name!r} cannot be read ({e.msg})", where) from None
    except RecursionError:
        raise SchemaError(f"nested deeper than {MAX_NESTING} levels", where) from None
    call = tree.body
    if not isinstance(call, ast.Call) or call.args:
        raise SchemaError(f"the call to {name!r} has positional arguments; expected name=value", where)
    out: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise SchemaError(f"the call to {name!r} unpacks **arguments; expected name=value", where)
        out[kw.arg] = _literal(kw.value, name, kw.arg, where)
    return out


def _literal(node: ast.AST, name: str, arg: str, where: str) -> Any:
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, name, arg, where) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            key = _literal(k, name, arg, where) if k is not None else None
            if not isinstance(key, str):
                raise SchemaError(f"argument {arg!r} of {name!r}: object keys must be strings", where)
            out[key] = _literal(v, name, arg, where)
        return out
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, RecursionError):
        raise SchemaError(f"argument {arg!r} of {name!r} is not a literal ({ast.unparse(node)[:60]!r})", where) from None
    if isinstance(value, (str, int, float, bool)) or value is None:
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            raise SchemaError(f"argument {arg!r} of {name!r} is not a JSON number", where)
        return value
    raise SchemaError(f"argument {arg!r} of {name!r} is a {type(value).__name__}, not a JSON value", where)


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    record = require_dict(record, "record")
    system = string_field(record.get("system"), "system")
    found = find_tool_list(system)
    original: list = []
    if found is not None:
        start, end, original = found
        check_nesting(original, "system")
        system = system[:start] + system[end:]
    specs = [{**t, "parameters": bfcl_types_to_json_schema(t["parameters"])} if isinstance(t.get("parameters"), dict)
             else t for t in original]
    b = TrajectoryBuilder()
    for i, m in enumerate(require_list(record.get("conversations"), "conversations")):
        w = f"conversations[{i}]"
        if type(m) is not dict:
            raise SchemaError(f"an entry must be an object, got {type_name(m)}", w)
        role = m.get("from")
        value = string_field(m.get("value"), f"{w}.value")
        extra = {k: v for k, v in m.items() if k not in ("from", "value")} or None
        if role in ("user", "human"):
            b.user(value, extra)
        elif role in ("assistant", "gpt"):
            calls = parse_calls(value, f"{w}.value")
            if calls is None:
                b.answer(value, extra=extra)
            else:
                for name, arguments in calls:
                    b.call(name, arguments, None, w, extra=dict(extra) if extra else None)
        elif role in ("tool", "observation"):
            _results(b, value, w, extra)
        else:
            raise SchemaError(f"unknown speaker {role!r}; expected user, assistant or tool", f"{w}.from")
    traj = b.finish(system.strip(), tools_field(specs, "system") if specs else tools_field(tools, "tools"))
    meta_extra: dict[str, Any] = {"original_tools": original} if original else {}
    meta_extra.update({k: v for k, v in record.items() if k not in KNOWN_KEYS})
    given = meta_field(record.get("meta"), "meta")
    set_meta(traj, given, source=source, external_id=record.get("id", record.get("uuid")),
                          extra=meta_extra)
    return traj


def _results(b: TrajectoryBuilder, value: str, w: str, extra: dict | None) -> None:
    open_calls = b.open_calls()
    if not open_calls:
        raise SchemaError("orphan tool result: no earlier unanswered tool call", w)
    if len(open_calls) > 1:
        try:
            entries = loads(value)
        except (json.JSONDecodeError, RecursionError):
            entries = None
        if (type(entries) is list and len(entries) == len(open_calls)
                and all(type(e) is dict and isinstance(e.get("name"), str) for e in entries)):
            for e in entries:
                text = json.dumps(e, ensure_ascii=False)
                b.result(text, None, e["name"], not looks_like_failure(text), w, extra=extra)
            return
    b.result(value, None, None, not looks_like_failure(value), w, extra=extra)


register(Format(
    "toolace", title="ToolACE (tools in the system prose, Python-style calls)",
    detect=detect, read=lambda r, *, source="", tools=None, answer=None: to_trajectory(r, source=source, tools=tools),
    rule="'conversations' with 'from' and a JSON function list inside 'system' (no 'tools' key)",
    example={"system": "Here is a list of functions in JSON format that you can invoke:\n[{\"name\": \"GetCompetitions\", "
                       "\"description\": \"Football competitions televised in Peru.\", \"parameters\": {\"type\": "
                       "\"dict\", \"properties\": {}, \"required\": []}}]. \nPut it in the format of [func1(...)]",
             "conversations": [{"from": "user", "value": "Which competitions are televised in Peru?"},
                               {"from": "assistant", "value": "[GetCompetitions()]"},
                               {"from": "tool", "value": "[{\"name\": \"GetCompetitions\", \"results\": "
                                                         "{\"competitions\": [\"Liga 1 Peru\"]}}]"},
                               {"from": "assistant", "value": "Liga 1 Peru."}]}))
