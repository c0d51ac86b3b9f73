"""The raw annotation format <-> canonical trajectories (pure; no Django).

The format our users keep their data in, in three shapes (all JSON array or JSONL):

1. **turns**: ``{"system", "tools", "turns": [{"user", "assistant_think", "assistant_tool",
   "tool_result", "assistant_answer"}]}``. ``assistant_tool`` / ``tool_result`` are one object or a
   list (parallel calls), or absent (no tool). A call is ``{"name", "arguments", "call_id"}``
   (``args`` / ``parameters`` and ``id`` accepted; arguments an object or a JSON string); a result is
   ``{"content", "call_id", "name", "ok"}`` or a bare string (``result`` / ``output`` / ``text`` /
   ``observation`` accepted for the content; a non-string content is kept as its JSON text).
2. **steps**: a turn with several think -> call -> result rounds lists them in ``"steps"``, each round
   an object with the same keys as a turn (``{"assistant_think", "assistant_tool", "tool_result",
   "assistant_answer"}``), in that order within the round; canonical ``{"kind": ...}`` steps are
   accepted there too.
3. **role-tagged messages**: ``{"messages": [{"role": "system"}, {"role": "user"}, {"role":
   "assistant_think"}, {"role": "assistant_tool"}, {"role": "tool"}, {"role": "assistant_answer"}]}``;
   the result role may also be spelled ``tool_result`` or ``observation``. An ``assistant_tool``
   message is itself a call (``name`` + ``arguments``) or holds one or a list in ``content``.

``assistant_think`` / ``assistant_answer`` may be a string or ``{"text", "labels", "note",
"train"}``; calls and results carry ``labels`` / ``note`` / ``train`` as keys. An optional ``meta``
object holds the canonical metadata. Export (:func:`from_trajectory`) writes the turns shape (the
steps shape for turns that need it) and is lossless: ``to_trajectory(from_trajectory(t)) == t``.

>>> t = to_trajectory({"system": "Be brief.", "turns": [{"user": "Weather in Paris and Rome?",
...     "assistant_think": "Two cities: two parallel calls.",
...     "assistant_tool": [{"name": "get_weather", "arguments": {"city": "Paris"}},
...                        {"name": "get_weather", "arguments": {"city": "Rome"}}],
...     "tool_result": ["18 C", "24 C"], "assistant_answer": "Paris 18 C, Rome 24 C."}]})
>>> [(s.kind, s.call_id) for s in t.turns[0].steps]  # doctest: +NORMALIZE_WHITESPACE
[('think', ''), ('tool_call', 'call_0_0'), ('tool_call', 'call_0_1'),
 ('tool_result', 'call_0_0'), ('tool_result', 'call_0_1'), ('answer', '')]
>>> t.meta.case_types
['tool_required']
>>> to_trajectory(from_trajectory(t)) == t
True
"""

from __future__ import annotations

import json
from typing import Any

from annotate.case_types import infer_case_types, looks_like_failure
from annotate.formats import Format, register
from annotate.formats.common import (
    RAW_ROLES, TrajectoryBuilder, is_raw_messages, messages_kind, annotations, annotations_of, dump_arguments, make_meta, meta_field, require_dict,
    require_list, string_field, text_of, tools_field, type_name,
)
from annotate.trajectory import STEP_KINDS, SchemaError, Step, Trajectory

ROUND_KEYS = ("assistant_think", "assistant_tool", "tool_result", "assistant_answer")
TURN_KEYS = ("user", "steps") + ROUND_KEYS
RESULT_ROLES = ("tool", "tool_result", "observation")
_CONTENT_KEYS = ("content", "result", "output", "text", "observation")
_ARGUMENT_KEYS = ("arguments", "args", "parameters")
_ID_KEYS = ("call_id", "id", "tool_call_id")


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    """Convert one raw record (any of the three shapes); ``tools`` is used when it has none."""
    record = require_dict(record, "record")
    b = TrajectoryBuilder()
    if "turns" in record:
        system = string_field(record.get("system"), "system")
        for i, turn in enumerate(require_list(record["turns"], "turns")):
            _turn(b, turn, f"turns[{i}]")
    elif "messages" in record:
        system = _flat_messages(b, require_list(record["messages"], "messages"))
    else:
        raise SchemaError("a raw record needs 'turns' (or role-tagged 'messages')", "turns")
    traj = b.finish(system, tools_field(record["tools"], "tools") if record.get("tools") not in (None, "", [])
                    else tools_field(tools, "tools"))
    given = meta_field(record.get("meta"), "meta")
    traj.meta = make_meta(given, "meta", source=source, external_id=record.get("id"))
    if "case_types" not in given:
        traj.meta.case_types = infer_case_types(traj)
    return traj


# The turns and steps shapes ---------------------------------------------------------------------

def _turn(b: TrajectoryBuilder, turn: Any, w: str) -> None:
    if type(turn) is not dict:
        raise SchemaError(f"a turn must be an object, got {type_name(turn)}", w)
    b.user(text_of(turn.get("user"), f"{w}.user"))
    _check_keys(turn, w, TURN_KEYS)
    if "steps" in turn:
        both = [k for k in ROUND_KEYS if k in turn]
        if both:
            raise SchemaError("a turn has either 'steps' or assistant_* keys, not both", f"{w}.{both[0]}")
        for i, r in enumerate(require_list(turn["steps"], f"{w}.steps")):
            rw = f"{w}.steps[{i}]"
            if type(r) is not dict:
                raise SchemaError(f"a step must be an object, got {type_name(r)}", rw)
            if "kind" in r:
                _canonical_step(b, r, rw)
            else:
                _check_keys(r, rw, ROUND_KEYS)
                _round(b, r, rw)
    else:
        _round(b, turn, w)


def _check_keys(d: dict, w: str, allowed: tuple) -> None:
    # Unknown keys are ignored, except near-misses of ours, which would silently drop data.
    for k in d:
        if k not in allowed and isinstance(k, str) and k.startswith(("assistant", "tool", "step")):
            raise SchemaError(f"unknown key {k!r}; expected one of {', '.join(allowed)}", f"{w}.{k}")


def _round(b: TrajectoryBuilder, r: dict, w: str) -> None:
    if "assistant_think" in r and r["assistant_think"] is not None:
        text, ann = _text_step(r["assistant_think"], f"{w}.assistant_think")
        b.think(text, ann)
    if r.get("assistant_tool") is not None:
        calls = r["assistant_tool"]
        if type(calls) is list:
            for i, c in enumerate(calls):
                _call(b, c, f"{w}.assistant_tool[{i}]")
        else:
            _call(b, calls, f"{w}.assistant_tool")
    if r.get("tool_result") is not None:
        results = r["tool_result"]
        if type(results) is list:
            for i, res in enumerate(results):
                _result(b, res, f"{w}.tool_result[{i}]")
        else:
            _result(b, results, f"{w}.tool_result")
    if "assistant_answer" in r and r["assistant_answer"] is not None:
        text, ann = _text_step(r["assistant_answer"], f"{w}.assistant_answer")
        b.answer(text, ann)


def _text_step(v: Any, w: str) -> tuple[str, tuple]:
    if isinstance(v, str):
        return v, ()
    if type(v) is dict:
        return string_field(v.get("text"), f"{w}.text"), annotations(v, w)
    raise SchemaError(f"must be a string or an object with 'text', got {type_name(v)}", w)


def _first(d: dict, keys: tuple) -> tuple[str, Any]:
    for k in keys:
        if k in d:
            return k, d[k]
    return keys[0], None


def _call(b: TrajectoryBuilder, c: Any, w: str) -> None:
    if type(c) is str:  # a JSON string holding the call
        try:
            c = json.loads(c)
        except (json.JSONDecodeError, RecursionError):
            raise SchemaError("a tool call must be an object (or its JSON text)", w) from None
    if type(c) is not dict:
        raise SchemaError(f"a tool call must be an object, got {type_name(c)}", w)
    fn = c
    if type(c.get("function")) is dict:  # OpenAI-shaped {"function": {"name", "arguments"}}
        fn = c["function"]
    akey = "arguments" if "arguments" in fn else "args" if "args" in fn else "parameters"
    call_id = c["call_id"] if "call_id" in c else c.get("id", c.get("tool_call_id"))
    ann = annotations(c, w) if "labels" in c or "note" in c or "train" in c else ()
    b.call(fn.get("name"), fn.get(akey), call_id, w, ann, arguments_field=akey)


def _result(b: TrajectoryBuilder, res: Any, w: str) -> None:
    if type(res) is not dict:
        text = res if type(res) is str else text_of(res, w, json_ok=True)
        b.result(text, None, None, not looks_like_failure(text), w)
        return
    ckey, content = _first(res, _CONTENT_KEYS)
    text = content if type(content) is str else text_of(content, f"{w}.{ckey}", json_ok=True)
    ikey, call_id = _first(res, _ID_KEYS)
    ann = annotations(res, w) if "labels" in res or "note" in res or "train" in res else ()
    b.result(text, call_id, res.get("name"), _ok(res, text, w), w, ann, id_field=ikey)


def _ok(d: dict, text: str, w: str) -> bool:
    """A result's success: ``ok`` or ``is_error`` (booleans), an ``error`` value, else the text."""
    for key, failed_when in (("ok", False), ("is_error", True)):
        if key in d:
            if not isinstance(d[key], bool):
                raise SchemaError("must be true or false", f"{w}.{key}")
            return d[key] != failed_when
    if "error" in d:
        return d["error"] in (None, False, "", {}, [])
    return not looks_like_failure(text)


def _canonical_step(b: TrajectoryBuilder, s: dict, w: str) -> None:
    kind = s.get("kind")
    if kind not in STEP_KINDS:
        raise SchemaError(f"kind must be one of {', '.join(STEP_KINDS)}, got {kind!r}", f"{w}.kind")
    ann = annotations(s, w)
    if kind == "think":
        b.think(string_field(s.get("text"), f"{w}.text"), ann)
    elif kind == "answer":
        b.answer(string_field(s.get("text"), f"{w}.text"), ann)
    elif kind == "tool_call":
        b.call(s.get("name"), s.get("arguments"), s.get("call_id"), w, ann)
    else:
        text = text_of(s.get("text"), f"{w}.text", json_ok=True)
        b.result(text, s.get("call_id"), s.get("name"), _ok(s, text, w), w, ann, id_field="call_id")


# The role-tagged messages shape ------------------------------------------------------------------

def _flat_messages(b: TrajectoryBuilder, messages: list) -> str:
    system_parts: list[str] = []
    started = False
    for i, m in enumerate(messages):
        w = f"messages[{i}]"
        if type(m) is not dict:
            raise SchemaError(f"a message must be an object, got {type_name(m)}", w)
        role = m.get("role")
        if role == "system":
            if started:
                raise SchemaError("a system message is only allowed before the conversation starts", f"{w}.role")
            system_parts.append(text_of(m.get("content"), f"{w}.content"))
            continue
        started = True
        if role == "user":
            b.user(text_of(m.get("content"), f"{w}.content"))
        elif role in ("assistant_think", "assistant_answer"):
            text = text_of(m.get("content"), f"{w}.content")
            (b.think if role == "assistant_think" else b.answer)(text, annotations(m, w))
        elif role == "assistant_tool":
            if "name" in m or "function" in m:
                _call(b, {k: v for k, v in m.items() if k != "role"}, w)
            else:
                content = m.get("content")
                if type(content) is str and content.lstrip()[:1] == "[":  # a JSON list of calls
                    try:
                        content = json.loads(content)
                    except (json.JSONDecodeError, RecursionError):
                        raise SchemaError("the calls are not valid JSON", f"{w}.content") from None
                if type(content) is list:
                    for j, c in enumerate(content):
                        _call(b, c, f"{w}.content[{j}]")
                else:
                    _call(b, content, f"{w}.content")
        elif role in RESULT_ROLES:
            ckey, content = _first(m, _CONTENT_KEYS)
            text = text_of(content, f"{w}.{ckey}", json_ok=True)
            ikey, call_id = _first(m, _ID_KEYS)
            b.result(text, call_id, m.get("name"), _ok(m, text, w), w, annotations(m, w), id_field=ikey)
        else:
            raise SchemaError(f"unknown role {role!r}; expected system, user, assistant_think, assistant_tool, "
                              "tool (or tool_result / observation) or assistant_answer", f"{w}.role")
    return "\n\n".join(system_parts)


# Export -----------------------------------------------------------------------------------------

_ORDER = {"think": 0, "tool_call": 1, "tool_result": 2, "answer": 3}


def from_trajectory(traj: Trajectory) -> dict:
    """The turns shape (steps shape where a turn has several rounds), with ``meta``; lossless."""
    turns = []
    for turn in traj.turns:
        rounds = _rounds(turn.steps)
        out: dict[str, Any] = {"user": turn.user}
        if len(rounds) == 1:
            out.update(rounds[0])
        elif rounds:
            out["steps"] = rounds
        turns.append(out)
    return {"system": traj.system, "tools": [dict(t) for t in traj.tools], "turns": turns,
            "meta": traj.meta.to_dict()}


def _rounds(steps: list[Step]) -> list[dict]:
    """Split steps into think -> calls -> results -> answer rounds (a new round where order breaks)."""
    rounds: list[dict] = []
    cur: dict[str, Any] | None = None
    last = -1
    for s in steps:
        order = _ORDER[s.kind]
        if cur is None or order < last or (order == last and s.kind in ("think", "answer")):
            cur = {}
            rounds.append(cur)
        last = order
        ann = annotations_of(s)
        if s.kind == "think":
            cur["assistant_think"] = {"text": s.text, **ann} if ann else s.text
        elif s.kind == "answer":
            cur["assistant_answer"] = {"text": s.text, **ann} if ann else s.text
        elif s.kind == "tool_call":
            cur.setdefault("assistant_tool", []).append(
                {"call_id": s.call_id, "name": s.name, "arguments": dump_arguments(s.arguments), **ann})
        else:
            res: dict[str, Any] = {"call_id": s.call_id, "name": s.name, "content": s.text}
            if s.ok == looks_like_failure(s.text):
                res["ok"] = s.ok
            cur.setdefault("tool_result", []).append({**res, **ann})
    for r in rounds:  # one call / one result as a bare object, the way people write it by hand
        for key in ("assistant_tool", "tool_result"):
            if key in r and len(r[key]) == 1:
                r[key] = r[key][0]
    return rounds


register(Format(
    "raw", title="Raw annotation (turns / steps / role-tagged messages)",
    detect=lambda r: "turns" in r or messages_kind(r) == "raw",
    read=lambda r, *, source="", tools=None, answer=None: to_trajectory(r, source=source, tools=tools),
    write=from_trajectory,
    rule="a 'turns' list, or 'messages' with raw role tags (assistant_think …)",
    example={"turns": [{"user": "Weather in Paris?", "assistant_tool": {"name": "get_weather", "arguments": {"city": "Paris"}},
                        "tool_result": "18 C", "assistant_answer": "18 C in Paris."}]}))
