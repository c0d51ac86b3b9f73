"""Building blocks shared by the format modules of :mod:`annotate.formats` (pure; no Django).

Every converter walks its source format in order and feeds a :class:`TrajectoryBuilder`, which
owns the rules that must be the same whatever the format:

- a missing call id becomes ``call_<turn>_<n>`` (turn index, n-th call of that turn, from 0);
- a tool result links to its call by id, or, without an id, to the oldest unanswered call of the
  same tool name (or of any name when the result has none);
- a result that links to no earlier unanswered call is an *orphan* and a :class:`SchemaError`;
- arguments may come as a JSON value or as a JSON string; both become the parsed value.

Every error is a ``SchemaError`` whose ``field`` is a dotted path into the source record.

>>> b = TrajectoryBuilder()
>>> b.user("weather in Paris?")
>>> b.call("get_weather", '{"city": "Paris"}', "", "messages[1]")
'call_0_0'
>>> b.result("18 C", "", "get_weather", True, "messages[2]")
>>> [s.kind for s in b.finish().turns[0].steps]
['tool_call', 'tool_result']
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from typing import Any

import orjson

from annotate.case_types import infer_case_types
from core import strict_json
from annotate.trajectory import (
    MAX_NESTING, Meta, SchemaError, Step, Trajectory, Turn, check_nesting, normalize_tool,
)

ANNOTATION_KEYS = ("labels", "note", "train")
# What the database stores (Step.name / call_id, Trajectory.external_id / source are sized columns).
MAX_NAME = 200
MAX_EXTERNAL_ID = 300
MAX_SOURCE = 300


# JSON inside a record's strings (arguments, tool lists, calls) read as the file itself is: NaN,
# Infinity and numbers too large for a float are refused (the database's JSON columns refuse them).
STRICT_JSON, loads = strict_json.STRICT_JSON, strict_json.loads
# The raw format's role tags, which tell its ``messages`` shape from OpenAI's.
RAW_ROLES = ("assistant_think", "assistant_tool", "assistant_answer", "tool_result", "observation")


def is_raw_messages(record: dict) -> bool:
    """Whether a ``messages`` record uses the raw role tags (``assistant_think`` ...)."""
    msgs = record.get("messages")
    return isinstance(msgs, list) and any(type(m) is dict and m.get("role") in RAW_ROLES for m in msgs)


def messages_kind(record: dict) -> str | None:
    """Which of the message-list formats a record is: ``raw``, ``sharegpt``, ``messages`` or None.

    >>> messages_kind({"conversations": [{"from": "human", "value": "hi"}]})
    'sharegpt'
    """
    for key in ("messages", "conversations"):
        msgs = record.get(key)
        if isinstance(msgs, list):
            first = next((m for m in msgs if type(m) is dict), None)
            if first is not None and "from" in first:
                return "sharegpt"
            if key == "messages" and is_raw_messages(record):
                return "raw"
            return "messages"
    return None


class TrajectoryBuilder:
    """Accumulates turns and steps of one trajectory, assigning call ids and linking results."""

    __slots__ = ("turns", "_turn", "_open", "_answered", "_used", "_calls_in_turn")

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self._turn: Turn | None = None
        self._open: dict[str, str] = {}  # unanswered call id -> tool name, oldest first
        self._answered: set[str] = set()
        self._used: set[str] = set()
        self._calls_in_turn = 0

    # Turns ------------------------------------------------------------------------------
    def user(self, text: str, extra: dict | None = None) -> None:
        self._turn = Turn(text, [], extra or {})
        self.turns.append(self._turn)
        self._calls_in_turn = 0

    def _steps(self) -> list[Step]:
        if self._turn is None:
            # Assistant output before any user message: keep it, in a turn with an empty user text.
            self.user("")
        return self._turn.steps  # type: ignore[union-attr]

    # Steps ------------------------------------------------------------------------------
    # (The hot path of every import: type checks are written out rather than delegated, and error
    # paths are only built when an error is raised.)
    def think(self, text: str, ann: tuple = (), extra: dict | None = None) -> None:
        steps = self._turn.steps if self._turn is not None else self._steps()
        steps.append(_step("think", text, "", None, "", True, ann, extra) if ann or extra else Step("think", text))

    def answer(self, text: str, ann: tuple = (), extra: dict | None = None) -> None:
        steps = self._turn.steps if self._turn is not None else self._steps()
        steps.append(_step("answer", text, "", None, "", True, ann, extra) if ann or extra else Step("answer", text))

    def call(self, name: Any, arguments: Any, call_id: Any, where: str, ann: tuple = (),
             name_field: str = "name", arguments_field: str = "arguments", extra: dict | None = None) -> str:
        """Add a tool call; returns its (possibly generated) call id."""
        steps = self._turn.steps if self._turn is not None else self._steps()
        if type(name) is not str or not name:
            raise SchemaError("a tool call needs a non-empty string name", f"{where}.{name_field}")
        if len(name) > MAX_NAME:
            raise SchemaError(f"a tool name is at most {MAX_NAME} characters, this one has {len(name)}",
                              f"{where}.{name_field}")
        if type(arguments) is dict:
            for v in arguments.values():  # flat arguments (the usual case) cannot nest too deeply
                if type(v) is dict or type(v) is list:
                    check_nesting(arguments, f"{where}.{arguments_field}")
                    break
        else:
            arguments = parse_arguments(arguments, f"{where}.{arguments_field}")
        if call_id is None or call_id == "":
            call_id = f"call_{len(self.turns) - 1}_{self._calls_in_turn}"
            while call_id in self._used:
                call_id += "_"
        else:
            if type(call_id) is not str:
                if not isinstance(call_id, int) or isinstance(call_id, bool):
                    raise SchemaError("a call id must be a string", f"{where}.id")
                call_id = str(call_id)
            if len(call_id) > MAX_NAME:
                raise SchemaError(f"a call id is at most {MAX_NAME} characters, this one has {len(call_id)}",
                                  f"{where}.id")
            if call_id in self._open:
                raise SchemaError(f"call id {call_id!r} is already used by an earlier call that has no "
                                  "result yet", f"{where}.id")
            self._answered.discard(call_id)
        self._used.add(call_id)
        self._open[call_id] = name
        self._calls_in_turn += 1
        steps.append(_step("tool_call", "", name, arguments, call_id, True, ann, extra) if ann or extra
                     else Step("tool_call", "", name, arguments, call_id))
        return call_id

    def result(self, text: str, call_id: Any, name: Any, ok: bool, where: str, ann: tuple = (),
               id_field: str = "tool_call_id", extra: dict | None = None) -> None:
        """Add a tool result, linked to an earlier unanswered call; an orphan is a SchemaError."""
        steps = self._turn.steps if self._turn is not None else self._steps()
        if name is None:
            name = ""
        elif type(name) is not str:
            raise SchemaError("must be a string", f"{where}.name")
        elif len(name) > MAX_NAME:
            raise SchemaError(f"a tool name is at most {MAX_NAME} characters, this one has {len(name)}",
                              f"{where}.name")
        if call_id is not None and call_id != "":
            if type(call_id) is not str:
                if not isinstance(call_id, int) or isinstance(call_id, bool):
                    raise SchemaError("a call id must be a string", f"{where}.{id_field}")
                call_id = str(call_id)
            if call_id not in self._open:
                if call_id in self._answered:
                    raise SchemaError(f"a second result for call {call_id!r}", f"{where}.{id_field}")
                raise SchemaError(f"orphan tool result: no earlier tool call has id {call_id!r}",
                                  f"{where}.{id_field}")
        else:
            call_id = self._oldest_open(name)
            if call_id is None:
                what = f"to {name!r}" if name else ""
                raise SchemaError(f"orphan tool result: no earlier unanswered tool call {what}".rstrip(),
                                  where)
        call_name = self._open.pop(call_id)
        self._answered.add(call_id)
        steps.append(_step("tool_result", text, name or call_name, None, call_id, ok, ann, extra) if ann or extra
                     else Step("tool_result", text, name or call_name, None, call_id, ok))

    def _oldest_open(self, name: str) -> str | None:
        for cid, n in self._open.items():
            if not name or n == name:
                return cid
        return None

    def open_calls(self) -> list[str]:
        return list(self._open)

    def finish(self, system: str = "", tools: list | None = None, meta: Meta | None = None) -> Trajectory:
        return Trajectory(system, tools if tools is not None else [], self.turns, meta or Meta())


def _step(kind: str, text: str, name: str, arguments: Any, call_id: str, ok: bool, ann: tuple,
          extra: dict | None) -> Step:
    """A step with its annotations ``(labels, note, train)`` (or ``()``) and its ``extra`` values."""
    labels, note, train = ann if ann else ([], "", True)
    return Step(kind, text, name, arguments, call_id, ok, labels, note, train, extra or {})


# Field helpers ---------------------------------------------------------------------------------

def parse_arguments(value: Any, where: str) -> Any:
    """Arguments as a JSON value: a JSON string is parsed, ``None`` and ``""`` become ``{}``."""
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        value = _json_field(value, "arguments", where)
    if type(value) is dict:
        for v in value.values():  # flat arguments (the usual case) cannot nest too deeply
            if type(v) is dict or type(v) is list:
                check_nesting(value, where)
                break
    elif type(value) is list:
        check_nesting(value, where)
    return value


def _json_field(text: str, what: str, where: str) -> Any:
    """``text`` parsed as JSON, or a SchemaError naming ``where`` (``what``: "arguments", "tools")."""
    try:
        return loads(text)
    except json.JSONDecodeError as e:
        raise SchemaError(f"{what} are not valid JSON ({_reason(e)})", where) from None
    except RecursionError:
        raise SchemaError(f"nested deeper than {MAX_NESTING} levels", where) from None


def _reason(e: json.JSONDecodeError) -> str:
    return e.msg if "JSON allows" in e.msg else f"{e.msg} at character {e.pos}"


def dump_arguments(value: Any) -> Any:
    """The inverse of :func:`parse_arguments` for export: objects stay, anything else as a JSON string."""
    return value if isinstance(value, dict) else json.dumps(value, ensure_ascii=False)


def text_of(value: Any, where: str, *, json_ok: bool = False) -> str:
    """A text field: a string, ``None`` (empty), or a list of OpenAI ``{"type": "text"}`` parts.

    With ``json_ok`` (tool results), any other JSON value is kept as its JSON text.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list) and value and all(isinstance(p, dict) for p in value):
        parts = []
        for i, p in enumerate(value):
            if p.get("type", "text") != "text" or not isinstance(p.get("text"), str):
                if json_ok:
                    return _json_text(value, where)
                raise SchemaError(f"only text content is supported, got a {p.get('type')!r} part",
                                  f"{where}[{i}]")
            parts.append(p["text"])
        return "".join(parts)
    if json_ok:
        return _json_text(value, where)
    raise SchemaError(f"must be a string, got {type_name(value)}", where)


def _json_text(value: Any, where: str) -> str:
    check_nesting(value, where)
    return json.dumps(value, ensure_ascii=False)


def string_field(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    raise SchemaError(f"must be a string, got {type_name(value)}", where)


def leftovers(d: dict, known: frozenset | set | tuple, where: str) -> dict:
    """The values of ``d`` under keys the reader does not map, kept verbatim for an ``extra``.

    An ``extra`` object in ``d`` (as the raw export writes it) is merged in; a key both there and
    in ``d`` is refused rather than one of them dropped.

    >>> leftovers({"name": "f", "source_id": 7, "extra": {"origin": "web"}}, {"name"}, "call")
    {'origin': 'web', 'source_id': 7}
    """
    out = None
    for k in d:
        if k not in known:
            if out is None:
                out = {}
            out[k] = d[k]
    if out is None:
        return {}
    given = out.pop("extra", None)
    if given is not None:
        if type(given) is not dict:
            raise SchemaError(f"must be an object, got {type_name(given)}", f"{where}.extra")
        clash = next((k for k in out if k in given), None)
        if clash is not None:
            raise SchemaError(f"{clash!r} is both a key here and in 'extra'", f"{where}.{clash}")
        out = {**given, **out}
    check_nesting(out, where)
    return out


def record_id(record: dict, extra: dict, given_meta: dict) -> Any:
    """A record's ``id`` (a string or a number) as its external id, taken out of the record's
    leftovers ``extra``; None (and the id left in ``extra``) when it is another kind of value or the
    record's ``meta`` names its own external id."""
    rid = record.get("id")
    if (type(rid) is str or type(rid) is int) and "external_id" not in given_meta:
        extra.pop("id", None)
        return rid
    return None


def annotations(d: dict, where: str) -> tuple:
    """``(labels, note, train)`` from a dict carrying any of them, or ``()`` when none is present."""
    if "labels" not in d and "note" not in d and "train" not in d:
        return ()
    labels = d.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise SchemaError("must be a list of strings", f"{where}.labels")
    note = d.get("note") or ""
    if not isinstance(note, str):
        raise SchemaError("must be a string", f"{where}.note")
    train = d.get("train", True)
    if not isinstance(train, bool):
        raise SchemaError("must be true or false", f"{where}.train")
    return (list(labels), note, train)


def annotations_of(step: Step) -> dict:
    """The labels / note / train flag of a step, only those that differ from the defaults."""
    return step.annotations()


def tools_field(value: Any, where: str) -> list[dict]:
    """A tool list given as a list or as a JSON string, normalized to flat function specs."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = _json_field(value, "tools", where)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise SchemaError(f"must be a list of tools, got {type_name(value)}", where)
    memo = _TOOL_MEMO.get()
    key = _memo_key(value) if memo is not None else None
    if key is not None:
        # A record that repeats the last record's tool list gets that list's tools, from one
        # C-speed comparison of the list (-1.3 us a record of 4 tools, measured) rather than one
        # memo look-up per tool; equal input, equal output.
        last = memo.get(_LAST_LIST)
        if last is not None and last[0] == key:
            return [dict(t) for t in last[1]]
    tools = [_normalized_tool(t, f"{where}[{i}]") for i, t in enumerate(value)]
    if key is not None:
        memo[_LAST_LIST] = (key, [dict(t) for t in tools])
    return tools


def _memo_key(value: Any) -> bytes | None:
    """What the tool memo compares: the value's JSON text, which tells ``1``, ``1.0`` and ``true``
    apart (Python's ``==`` does not, and a memo hit would hand a record the other's number), in its
    key order; None where orjson cannot write it (an integer beyond 64 bits): not memoised."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return None


# The records of one file usually repeat the same tool catalog: normalizing (and nesting-checking)
# each tool once per file, not once per record, saves a third of the import time. The importer
# opens a memo for the duration of one file (:func:`tool_memo`); equal input gives the same
# output as normalize_tool, and the trajectories of that file share the nested ``parameters``
# objects (treat them as read-only, as JSON loaded once).
_TOOL_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("tool_memo", default=None)
_LAST_LIST = object()  # (the memo's key of the last tool list read, beside the tool names)


@contextlib.contextmanager
def tool_memo(memo: dict | None = None):
    """Memoise tool normalisation inside the block; pass the same ``memo`` to share it across blocks."""
    token = _TOOL_MEMO.set({} if memo is None else memo)
    try:
        yield
    finally:
        _TOOL_MEMO.reset(token)


def _normalized_tool(t: Any, where: str) -> dict:
    memo = _TOOL_MEMO.get()
    if memo is None or type(t) is not dict:
        return normalize_tool(t, where)
    name = t.get("name")
    if name is None and type(t.get("function")) is dict:
        name = t["function"].get("name")
    if type(name) is not str:
        return normalize_tool(t, where)
    key = _memo_key(t)
    if key is None:
        return normalize_tool(t, where)
    hit = memo.get(name)
    if hit is not None and hit[0] == key:
        return dict(hit[1])
    out = normalize_tool(t, where)
    memo[name] = (key, out)
    return dict(out)


def meta_field(value: Any, where: str) -> dict:
    """The optional canonical ``meta`` object of a record (checked later by :func:`make_meta`)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError(f"must be an object, got {type_name(value)}", where)
    return value


def set_meta(traj: Trajectory, given: dict, **fields) -> Trajectory:
    """Give ``traj`` its Meta from the record's own ``given`` meta and what the converter found
    (``make_meta``'s keywords), with case types inferred unless the record's meta names them."""
    traj.meta = make_meta(given, "meta", **fields)
    if "case_types" not in given:
        traj.meta.case_types = infer_case_types(traj)
    return traj


def make_meta(given: dict, where: str, *, source: str = "", external_id: Any = None,
              case_types: list[str] | None = None, tags: list[str] | None = None,
              reference: Any = None, extra: dict | None = None) -> Meta:
    """A Meta where the record's own ``meta`` wins, field by field, over what the converter found.

    ``case_types`` is filled by the caller (inference) only where the record does not state them.
    """
    meta = Meta.from_dict(given, where) if given else Meta()
    if meta.extra:
        check_nesting(meta.extra, f"{where}.extra")
    if "source" not in given:
        meta.source = source
    if "external_id" not in given and external_id is not None and external_id != "":
        meta.external_id = str(external_id)
    if len(meta.external_id) > MAX_EXTERNAL_ID or len(meta.source) > MAX_SOURCE:
        for name, value, limit in (("external_id", meta.external_id, MAX_EXTERNAL_ID),
                                   ("source", meta.source, MAX_SOURCE)):
            if len(value) > limit:  # refused, not cut: a cut id would no longer name its record
                fld = f"{where}.{name}" if name in given or name == "source" else "id"
                raise SchemaError(f"at most {limit} characters, this one has {len(value)}", fld)
    if "case_types" not in given and case_types is not None:
        meta.case_types = list(case_types)
    if "tags" not in given and tags:
        meta.tags = list(tags)
    if "reference" not in given and reference is not None:
        check_nesting(reference, f"{where}.reference")
        meta.reference = reference
    if extra:
        check_nesting(extra, f"{where}.extra")
        clash = next((k for k in extra if k in meta.extra), None)
        if clash is not None:
            raise SchemaError(f"{clash!r} is both a key of the record and of meta.extra", f"{where}.extra.{clash}")
        meta.extra = {**meta.extra, **extra}
    return meta


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def require_dict(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise SchemaError(f"must be an object, got {type_name(value)}", where)
    return value


def require_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise SchemaError(f"must be a list, got {type_name(value)}", where)
    return value
