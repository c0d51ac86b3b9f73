"""The raw annotation format <-> canonical trajectories (pure; no Django).

The format our users keep their data in, in three shapes (all JSON array or JSONL):

1. **turns**: ``{"system", "tools", "turns": [{"user", "assistant_think", "assistant_tool",
   "tool_result", "assistant_answer"}]}``. ``assistant_tool`` / ``tool_result`` are one object or a
   list (parallel calls), or absent (no tool). A call is ``{"name", "arguments", "call_id"}``
   (``args`` / ``parameters`` and ``id`` accepted; arguments an object or a JSON string); a result is
   ``{"content", "call_id", "name", "ok"}`` or a bare string (``result`` / ``output`` / ``text`` /
   ``observation`` accepted for the content; a non-string content is kept as its JSON text). Calls
   may also come as JSON text, results as any JSON value (``{"forecast": "rain"}`` is the result's
   JSON text; an ``error`` key marks it failed).
2. **steps**: a turn with several think -> call -> result rounds lists them in ``"steps"``, each round
   an object with the same keys as a turn (``{"assistant_think", "assistant_tool", "tool_result",
   "assistant_answer"}``), in that order within the round; canonical ``{"kind": ...}`` steps are
   accepted there too, also spelled ``{"type": ..., "content": ...}`` (OpenAI / Anthropic step lists:
   ``thinking``, ``tool_use`` with ``input``, ``tool_result`` with ``tool_use_id``, ``text``).
3. **role-tagged messages**: ``{"messages": [{"role": "system"}, {"role": "user"}, {"role":
   "assistant_think"}, {"role": "assistant_tool"}, {"role": "tool"}, {"role": "assistant_answer"}]}``;
   the result role may also be spelled ``tool_result`` or ``observation``. An ``assistant_tool``
   message is itself a call (``name`` + ``arguments``) or holds one or a list in ``content``.

``assistant_think`` / ``assistant_answer`` may be a string or ``{"text", "labels", "note",
"train"}``; calls and results carry ``labels`` / ``note`` / ``train`` as keys. An optional ``meta``
object holds the canonical metadata. Any other key is kept verbatim in ``extra`` (the record's in
``meta.extra``, a turn's in ``Turn.extra``, a step's in ``Step.extra``). Export
(:func:`from_trajectory`) writes the turns shape (the steps shape for turns that need it), with each
``extra``, and is lossless: ``to_trajectory(from_trajectory(t)) == t``.

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

from annotate.case_types import looks_like_failure
from annotate.formats import Format, plain_reader, register
from annotate.formats.common import (  # (RAW_ROLES and is_raw_messages were defined here; still importable)
    RAW_ROLES, TrajectoryBuilder, annotations, annotations_of, dump_arguments, is_raw_messages, leftovers, loads,  # noqa: F401
    messages_kind, meta_field, record_id, require_dict, require_list, set_meta, string_field, text_of, tools_field,
    type_name,
)
from annotate.trajectory import STEP_KINDS, SchemaError, Step, Trajectory

ROUND_KEYS = ("assistant_think", "assistant_tool", "tool_result", "assistant_answer")
TURN_KEYS = ("user", "steps") + ROUND_KEYS
RESULT_ROLES = ("tool", "tool_result", "observation")
_CONTENT_KEYS = ("content", "result", "output", "text", "observation")
_ARGUMENT_KEYS = ("arguments", "args", "parameters")
_ID_KEYS = ("call_id", "id", "tool_call_id")


_TURNS_RECORD_KEYS = frozenset(("turns", "system", "tools", "meta"))
_MESSAGES_RECORD_KEYS = frozenset(("messages", "tools", "meta"))
_TURN_KEYS = frozenset(TURN_KEYS)
_ROUND_KEYS = frozenset(ROUND_KEYS)
_CALL_KEYS = frozenset(("function", "name", "labels", "note", "train", *_ARGUMENT_KEYS, *_ID_KEYS))
_RESULT_KEYS = frozenset(("name", "ok", "is_error", "error", "labels", "note", "train", *_CONTENT_KEYS, *_ID_KEYS))
_TEXT_KEYS = frozenset(("text", "content", "labels", "note", "train"))
# Step kinds as other step lists spell them (OpenAI- and Anthropic-style ``type`` values).
KIND_ALIASES = {"think": "think", "thinking": "think", "reasoning": "think",
                "tool_call": "tool_call", "tool_use": "tool_call", "function_call": "tool_call",
                "tool_result": "tool_result", "function_result": "tool_result", "observation": "tool_result",
                "answer": "answer", "text": "answer", "final_answer": "answer"}


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    """Convert one raw record (any of the three shapes); ``tools`` is used when it has none."""
    record = require_dict(record, "record")
    b = TrajectoryBuilder()
    kept: dict = {}  # the role-tagged messages' own unmapped keys, by field path
    if "turns" in record:
        system = string_field(record.get("system"), "system")
        for i, turn in enumerate(require_list(record["turns"], "turns")):
            _turn(b, turn, f"turns[{i}]")
        known = _TURNS_RECORD_KEYS
    elif "messages" in record:
        system, kept = _flat_messages(b, require_list(record["messages"], "messages"))
        known = _MESSAGES_RECORD_KEYS
    else:
        raise SchemaError("a raw record needs 'turns' (or role-tagged 'messages')", "turns")
    traj = b.finish(system, tools_field(record["tools"], "tools") if record.get("tools") not in (None, "", [])
                    else tools_field(tools, "tools"))
    given = meta_field(record.get("meta"), "meta")
    extra = leftovers(record, known, "")
    rid = record_id(record, extra, given)
    if kept:
        extra.update(kept)
    set_meta(traj, given, source=source, external_id=rid, extra=extra)
    return traj


# The turns and steps shapes ---------------------------------------------------------------------

def _turn(b: TrajectoryBuilder, turn: Any, w: str) -> None:
    # (The hot path of an import, as in TrajectoryBuilder: the common case, a turn of known keys
    # with a string user text and a list of steps, is tested inline; field paths are only built
    # for the helpers that check the other cases: -2.5 us a 10-step trajectory, measured.)
    if type(turn) is not dict:
        raise SchemaError(f"a turn must be an object, got {type_name(turn)}", w)
    if turn.keys() <= _TURN_KEYS:  # (no unknown key to refuse, none to keep)
        extra = {}
    else:
        _check_keys(turn, w, TURN_KEYS)
        extra = leftovers(turn, _TURN_KEYS, w)
    user = turn.get("user")
    b.user(user if type(user) is str else text_of(user, f"{w}.user"), extra)
    if "steps" in turn:
        if not _ROUND_KEYS.isdisjoint(turn):
            both = [k for k in ROUND_KEYS if k in turn]
            raise SchemaError("a turn has either 'steps' or assistant_* keys, not both", f"{w}.{both[0]}")
        steps = turn["steps"]
        if type(steps) is not list:
            steps = require_list(steps, f"{w}.steps")
        for i, r in enumerate(steps):
            if type(r) is not dict:
                raise SchemaError(f"a step must be an object, got {type_name(r)}", f"{w}.steps[{i}]")
            kind = r.get("kind")
            keys = _CANONICAL.get(kind) if type(kind) is str else None  # (not one of ours: None)
            if keys is not None and r.keys() <= keys:
                # A canonical step as Step.to_dict writes it, the most common, is read here rather
                # than in a call of its own, and its field path is built only where it is used
                # (a plain think or answer step needs none): -1.5 us a 10-step trajectory, measured.
                kind = r["kind"]
                ann = annotations(r, f"{w}.steps[{i}]") if "labels" in r or "note" in r or "train" in r else ()
                if kind == "think" or kind == "answer":
                    text = r.get("text")
                    if type(text) is not str:
                        text = string_field(text, f"{w}.steps[{i}].text")
                    if kind == "think":
                        b.think(text, ann)
                    else:
                        b.answer(text, ann)
                elif kind == "tool_call":
                    b.call(r.get("name"), r.get("arguments"), r.get("call_id"), f"{w}.steps[{i}]", ann)
                else:
                    rw = f"{w}.steps[{i}]"
                    text = r.get("text")
                    if type(text) is not str:
                        text = text_of(text, f"{rw}.text", json_ok=True)
                    ok = _ok(r, text, rw) if "ok" in r else not looks_like_failure(text)
                    b.result(text, r.get("call_id"), r.get("name"), ok, rw, ann, id_field="call_id")
            elif "kind" in r or ("type" in r and _ROUND_KEYS.isdisjoint(r)):
                _canonical_step(b, r, f"{w}.steps[{i}]")
            else:
                rw = f"{w}.steps[{i}]"
                _check_keys(r, rw, ROUND_KEYS)
                left = leftovers(r, _ROUND_KEYS, rw)
                if left:  # a round's own unmapped keys: kept on the turn, by the round's place
                    extra[f"steps[{i}]"] = left
                _round(b, r, rw)
    else:
        _round(b, turn, w)


def _check_keys(d: dict, w: str, allowed: tuple) -> None:
    # A near-miss of our own keys is a typo, not a value to keep: refused, so the user fixes it.
    for k in d:
        if k not in allowed and isinstance(k, str) and k.startswith(("assistant", "tool", "step")):
            raise SchemaError(f"unknown key {k!r}; expected one of {', '.join(allowed)}", f"{w}.{k}")


def _round(b: TrajectoryBuilder, r: dict, w: str) -> None:
    if "assistant_think" in r and r["assistant_think"] is not None:
        text, ann, extra = _text_step(r["assistant_think"], f"{w}.assistant_think")
        b.think(text, ann, extra)
    calls = 0
    if r.get("assistant_tool") is not None:
        calls = _calls(b, r["assistant_tool"], f"{w}.assistant_tool")
    if r.get("tool_result") is not None:
        _results(b, r["tool_result"], f"{w}.tool_result", calls)
    if "assistant_answer" in r and r["assistant_answer"] is not None:
        text, ann, extra = _text_step(r["assistant_answer"], f"{w}.assistant_answer")
        b.answer(text, ann, extra)


def _calls(b: TrajectoryBuilder, calls: Any, w: str) -> int:
    """Add one call, a list of them, or their JSON text; returns how many."""
    if type(calls) is str and calls.lstrip()[:1] == "[":
        try:
            calls = loads(calls)
        except (json.JSONDecodeError, RecursionError):
            raise SchemaError("the calls are not valid JSON", w) from None
    if type(calls) is list:
        for i, c in enumerate(calls):
            _call(b, c, f"{w}[{i}]")
        return len(calls)
    _call(b, calls, w)
    return 1


def _results(b: TrajectoryBuilder, results: Any, w: str, calls: int) -> None:
    """One result per call: a list answers the round's calls one by one, unless the round made one
    call and the list is not one result per call (then the list is that call's JSON value)."""
    if type(results) is list and not (calls == 1 and len(results) != 1 and not _results_list(results)):
        for i, res in enumerate(results):
            _result(b, res, f"{w}[{i}]")
    else:
        _result(b, results, w)


def _results_list(results: list) -> bool:
    # A list whose items are all strings or result objects (with a content or call id key).
    return all(type(x) is str or (type(x) is dict and any(k in x for k in (*_CONTENT_KEYS, *_ID_KEYS)))
               for x in results)


def _text_step(v: Any, w: str) -> tuple[str, tuple, dict]:
    if isinstance(v, str):
        return v, (), {}
    if type(v) is dict:
        key = "text" if "text" in v or "content" not in v else "content"
        return string_field(v.get(key), f"{w}.{key}"), annotations(v, w), leftovers(v, _TEXT_KEYS, w)
    raise SchemaError(f"must be a string or an object with 'text', got {type_name(v)}", w)


def _first(d: dict, keys: tuple) -> tuple[str, Any]:
    for k in keys:
        if k in d:
            return k, d[k]
    return keys[0], None


def _call(b: TrajectoryBuilder, c: Any, w: str) -> None:
    if type(c) is str:  # a JSON string holding the call
        try:
            c = loads(c)
        except (json.JSONDecodeError, RecursionError):
            raise SchemaError("a tool call must be an object (or its JSON text)", w) from None
    if type(c) is not dict:
        raise SchemaError(f"a tool call must be an object, got {type_name(c)}", w)
    fn = c
    extra = leftovers(c, _CALL_KEYS, w)
    if extra.get("type") == "function":  # OpenAI's call marker
        del extra["type"]
    if type(c.get("function")) is dict:  # OpenAI-shaped {"function": {"name", "arguments"}}
        fn = c["function"]
        fn_left = leftovers(fn, _CALL_KEYS, f"{w}.function")
        if fn_left:
            extra["function"] = fn_left
    elif "function" in c:
        extra["function"] = c["function"]
    akey, arguments = _first(fn, _ARGUMENT_KEYS)
    ikey, call_id = _first(c, _ID_KEYS)
    ann = annotations(c, w) if "labels" in c or "note" in c or "train" in c else ()
    b.call(fn.get("name"), arguments, call_id, w, ann, arguments_field=akey, extra=extra)


def _result(b: TrajectoryBuilder, res: Any, w: str) -> None:
    if type(res) is not dict:
        text = res if type(res) is str else text_of(res, w, json_ok=True)
        b.result(text, None, None, not looks_like_failure(text), w)
        return
    ckey = next((k for k in _CONTENT_KEYS if k in res), None)
    if ckey is None:
        # A bare JSON object is the result itself (``{"forecast": "rain"}``, ``{"error": "..."}``):
        # its JSON text, less the keys that say which call it answers.
        body = {k: v for k, v in res.items() if k not in _ID_KEYS and k not in ("name", "ok", "labels", "note",
                                                                                   "train", "extra")}
        text = text_of(body, w, json_ok=True) if body else ""
        extra = leftovers(res, _RESULT_KEYS | body.keys(), w)
    else:
        content = res[ckey]
        text = content if type(content) is str else text_of(content, f"{w}.{ckey}", json_ok=True)
        extra = leftovers(res, _RESULT_KEYS, w)
        err = res.get("error")
        if err not in (None, False, True, "", {}, []):  # the error's own message, beside the content
            extra["error"] = err
    ikey, call_id = _first(res, _ID_KEYS)
    ann = annotations(res, w) if "labels" in res or "note" in res or "train" in res else ()
    b.result(text, call_id, res.get("name"), _ok(res, text, w), w, ann, id_field=ikey, extra=extra)


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


# The keys of canonical steps as Step.to_dict writes them (the fast path: nothing to keep in extra).
_CANONICAL = {"think": frozenset(("kind", "text", "labels", "note", "train")),
              "answer": frozenset(("kind", "text", "labels", "note", "train")),
              "tool_call": frozenset(("kind", "name", "arguments", "call_id", "labels", "note", "train")),
              "tool_result": frozenset(("kind", "text", "name", "call_id", "ok", "labels", "note", "train"))}


def _canonical_step(b: TrajectoryBuilder, s: dict, w: str) -> None:
    """A step given as ``{"kind": ...}`` or ``{"type": ...}`` other than the plain canonical one
    (which :func:`_turn` reads itself): kinds spelled as other step lists spell them, other keys."""
    kkey = "kind" if "kind" in s else "type"
    kind = KIND_ALIASES.get(s[kkey]) if type(s[kkey]) is str else None
    if kind is None or (kkey == "kind" and kind != s[kkey]):
        raise SchemaError(f"{kkey} must be one of {', '.join(STEP_KINDS)}, got {s[kkey]!r}", f"{w}.{kkey}")
    ann = annotations(s, w)
    if kind in ("think", "answer"):
        tkey = next((k for k in ("text", "content", "thinking") if k in s), "text")
        extra = leftovers(s, {kkey, tkey, "labels", "note", "train"}, w)
        (b.think if kind == "think" else b.answer)(string_field(s.get(tkey), f"{w}.{tkey}"), ann, extra)
    elif kind == "tool_call":
        fn = s["function"] if type(s.get("function")) is dict else s
        akey, arguments = _first(fn, (*_ARGUMENT_KEYS, "input"))
        ikey, call_id = _first(s, (*_ID_KEYS, "tool_use_id"))
        extra = leftovers(s, {kkey, "name", "function", akey, ikey, "labels", "note", "train"}, w)
        if fn is not s:
            fn_left = leftovers(fn, {"name", akey}, f"{w}.function")
            if fn_left:
                extra["function"] = fn_left
        b.call(fn.get("name"), arguments, call_id, w, ann, arguments_field=akey, extra=extra)
    else:
        tkey = next((k for k in ("text", *_CONTENT_KEYS) if k in s), "text")
        text = text_of(s.get(tkey), f"{w}.{tkey}", json_ok=True)
        ikey, call_id = _first(s, (*_ID_KEYS, "tool_use_id"))
        extra = leftovers(s, {kkey, tkey, ikey, "name", "ok", "is_error", "error", "labels", "note", "train"}, w)
        err = s.get("error")
        if err not in (None, False, True, "", {}, []):
            extra["error"] = err
        b.result(text, call_id, s.get("name"), _ok(s, text, w), w, ann, id_field=ikey, extra=extra)


# The role-tagged messages shape ------------------------------------------------------------------

_MESSAGE_KEYS = frozenset(("role", "content", "labels", "note", "train"))


def _flat_messages(b: TrajectoryBuilder, messages: list) -> tuple[str, dict]:
    """The system prompt, and the unmapped keys of messages that are no single step (system
    messages, messages holding several calls) by their place (``messages[3]``)."""
    system_parts: list[str] = []
    kept: dict = {}
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
            left = leftovers(m, _MESSAGE_KEYS, w)
            if left:
                kept[w] = left
            continue
        started = True
        if role == "user":
            b.user(text_of(m.get("content"), f"{w}.content"), leftovers(m, _MESSAGE_KEYS, w))
        elif role in ("assistant_think", "assistant_answer"):
            text = text_of(m.get("content"), f"{w}.content")
            add = b.think if role == "assistant_think" else b.answer
            add(text, annotations(m, w), leftovers(m, _MESSAGE_KEYS, w))
        elif role == "assistant_tool":
            if "name" in m or "function" in m:
                _call(b, {k: v for k, v in m.items() if k != "role"}, w)
            else:
                left = leftovers(m, _MESSAGE_KEYS, w)
                if left:
                    kept[w] = left
                _calls(b, m.get("content"), f"{w}.content")
        elif role in RESULT_ROLES:
            _result(b, {k: v for k, v in m.items() if k != "role"}, w)
        else:
            raise SchemaError(f"unknown role {role!r}; expected system, user, assistant_think, assistant_tool, "
                              "tool (or tool_result / observation) or assistant_answer", f"{w}.role")
    return "\n\n".join(system_parts), kept


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
        if turn.extra:
            out["extra"] = turn.extra
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
        if s.extra:
            ann["extra"] = s.extra
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
    read=plain_reader(to_trajectory),
    write=from_trajectory,
    rule="a 'turns' list, or 'messages' with raw role tags (assistant_think …)",
    example={"turns": [{"user": "Weather in Paris?", "assistant_tool": {"name": "get_weather", "arguments": {"city": "Paris"}},
                        "tool_result": "18 C", "assistant_answer": "18 C in Paris."}]}))
