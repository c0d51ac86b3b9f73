"""Glaive function-calling v2 rows (glaiveai/glaive-function-calling-v2) -> trajectories (pure; no Django).

A row is two strings. ``system``: ``"SYSTEM: You are a helpful assistant with access to the following
functions. Use them if required -"`` followed by one or several pretty-printed JSON function specs
(or ``"SYSTEM: You are a helpful assistant, with no access to external functions."``); the specs
become the tools, the words around them the system prompt. ``chat``: ``USER:`` / ``ASSISTANT:`` /
``FUNCTION RESPONSE:`` segments, each assistant segment closed by ``<|endoftext|>``. An assistant
segment with ``<functioncall> {"name": ..., "arguments": '{...}'}`` is a tool call (its arguments
usually a *single-quoted* JSON string, read as JSON, never evaluated; text before the marker is
the assistant's words, kept as an answer step before the call, text after the call object is kept
in the step's ``extra``); ``FUNCTION RESPONSE:`` is the result of the oldest unanswered call; any
other assistant segment is an answer. An assistant segment without ``<|endoftext|>`` is marked
``{"endoftext": false}`` in its step's extra; text before the first marker goes to
``meta.extra["chat_preamble"]``. A row's other keys (an ``id`` becomes the external id) go to
``meta.extra``.

>>> t = to_trajectory({"system": 'SYSTEM: Use them if required -\\n{"name": "f", "parameters": {}}\\n',
...     "chat": "USER: Hi\\n\\n\\nASSISTANT: <functioncall> {\\"name\\": \\"f\\", \\"arguments\\": '{\\"a\\": 1}'} "
...             "<|endoftext|>\\n\\n\\nFUNCTION RESPONSE: {\\"ok\\": true}\\n\\n\\nASSISTANT: Done. <|endoftext|>"})
>>> t.system, [t["name"] for t in t.tools], [(s.kind, s.arguments or s.text) for s in t.turns[0].steps]
('Use them if required -', ['f'], [('tool_call', {'a': 1}), ('tool_result', '{"ok": true}'), ('answer', 'Done.')])
"""

from __future__ import annotations

import json
import re
from typing import Any

from annotate.case_types import looks_like_failure
from annotate.formats.common import (
    loads, STRICT_JSON, TrajectoryBuilder, meta_field, require_dict, set_meta, string_field, tools_field, type_name,
)
from annotate.formats import Format, register
from annotate.trajectory import MAX_NESTING, SchemaError, Trajectory

KNOWN_KEYS = ("system", "chat", "meta")
END = "<|endoftext|>"
CALL = "<functioncall>"
_MARKER = re.compile(r"^(USER|ASSISTANT|FUNCTION RESPONSE):", re.MULTILINE)
_SINGLE_QUOTED = re.compile(
    r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*\'(.*)\'\s*\}', re.DOTALL)
_DECODER = STRICT_JSON  # (NaN, Infinity and 1e999 refused: the database's JSON columns refuse them)
# The row layout's fixed headings, which the reader turns into turns and steps (see
# annotate.formats.Format.markup): not values, so the conservation check does not look for them.
MARKUP = ("SYSTEM:", "USER:", "ASSISTANT:", "FUNCTION RESPONSE:", CALL, END)
_QUOTE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\'")


def detect(record: dict) -> bool:
    """A ``chat`` text with ``USER:``; or a ``chat`` of any other type beside a Glaive ``SYSTEM:`` text,
    so that the reader refuses it naming ``chat`` rather than the format going unrecognised."""
    if "conversations" in record or "chat" not in record:
        return False
    chat = record["chat"]
    if isinstance(chat, str):
        return "USER:" in chat
    system = record.get("system")
    return isinstance(system, str) and system.lstrip().startswith("SYSTEM:")


def _strict_json(text: str) -> Any:
    return loads(text)  # (NaN, Infinity and 1e999 refused, as in the file itself)


def split_system(system: str, where: str = "system") -> tuple[str, list[dict]]:
    """``(prose, functions)``: the JSON objects in a Glaive system text, and the words around them.

    >>> split_system('SYSTEM: Use them -\\n{"name": "a"}\\n\\n{"name": "b"}\\n\\nBe brief.\\n')
    ('Use them -\\n\\nBe brief.', [{'name': 'a'}, {'name': 'b'}])
    """
    text = system.strip()
    if text.startswith("SYSTEM:"):
        text = text[len("SYSTEM:"):]
    prose: list[str] = []
    functions: list[dict] = []
    pos = 0
    while True:
        start = text.find("{", pos)
        if start < 0:
            break
        try:
            obj, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as e:
            raise SchemaError(f"a function spec is not valid JSON ({e.msg} at character {e.pos})", where) from None
        except RecursionError:
            raise SchemaError(f"nested deeper than {MAX_NESTING} levels", where) from None
        if type(obj) is not dict:
            raise SchemaError(f"a function spec must be an object, got {type_name(obj)}", where)
        prose.append(text[pos:start])
        functions.append(obj)
        pos = end
    prose.append(text[pos:])
    return "\n\n".join(p.strip() for p in prose if p.strip()), functions


def parse_call(text: str, where: str) -> tuple[str, Any, str]:
    """``(name, arguments, trailing text)`` of the JSON after ``<functioncall>``.

    The arguments may be an object or a single-quoted JSON string (``\\'`` inside it is a quote).

    >>> parse_call(\"\"\"{"name": "send", "arguments": '{"msg": "let\\\\'s go"}'} \"\"\", "chat")
    ('send', {'msg': "let's go"}, '')
    >>> parse_call('{"name": "now", "arguments": {}} thanks', "chat")
    ('now', {}, 'thanks')
    """
    try:
        obj, end = _DECODER.raw_decode(text.lstrip())
        rest = text.lstrip()[end:]
    except (json.JSONDecodeError, RecursionError):
        m = _SINGLE_QUOTED.match(text)
        if not m:
            raise SchemaError(f"cannot read the {CALL} {text[:80]!r}: expected {{\"name\": ..., "
                              "\"arguments\": ...}", where) from None
        name = loads(m.group(1))
        raw = m.group(2)
        try:
            arguments = _strict_json(raw) if raw.strip() else {}
        except (ValueError, RecursionError):
            try:  # a quote escaped for the single-quoted string (\\') is a plain quote in the JSON
                arguments = _strict_json(_QUOTE_ESCAPE.sub(r"\1'", raw))
            except (ValueError, RecursionError) as e:
                raise SchemaError(f"the arguments of {name!r} are not valid JSON ({e})", where) from None
        return name, arguments, text[m.end():].strip()
    if type(obj) is not dict or "name" not in obj:
        raise SchemaError(f"cannot read the {CALL} {text[:80]!r}: expected an object with a name", where)
    unknown = [k for k in obj if k not in ("name", "arguments")]
    if unknown:
        raise SchemaError(f"the {CALL} has {unknown[0]!r}, expected only name and arguments", where)
    arguments = obj.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = _strict_json(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError) as e:
            raise SchemaError(f"the arguments of {obj['name']!r} are not valid JSON ({e})", where) from None
    return obj["name"], arguments, rest.strip()


def segments(chat: str) -> tuple[str, list[tuple[str, str]]]:
    """``(preamble, [(speaker, text), ...])`` of a Glaive chat text."""
    found = list(_MARKER.finditer(chat))
    preamble = chat[:found[0].start()] if found else chat
    out = []
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(chat)
        out.append((m.group(1), chat[m.end():end]))
    return preamble, out


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    record = require_dict(record, "record")
    system, functions = split_system(string_field(record.get("system"), "system"))
    chat = string_field(record.get("chat"), "chat")
    preamble, parts = segments(chat)
    b = TrajectoryBuilder()
    for n, (speaker, text) in enumerate(parts, 1):
        where = f"chat (segment {n}, {speaker})"
        if speaker == "USER":
            b.user(text.strip())
        elif speaker == "FUNCTION RESPONSE":
            body = text.strip()
            if not b.open_calls():
                raise SchemaError(f"segment {n}: a FUNCTION RESPONSE that follows no {CALL}", "chat")
            b.result(body, None, None, not looks_like_failure(body), "chat")
        else:
            _assistant(b, text, n, where)
    traj = b.finish(system, tools_field(_unique(functions), "system") if functions else tools_field(tools, "tools"))
    extra: dict[str, Any] = {k: v for k, v in record.items() if k not in KNOWN_KEYS}
    if preamble.strip():
        extra["chat_preamble"] = preamble
    duplicates = _duplicates(functions)
    if duplicates:
        extra["duplicate_functions"] = duplicates
    given = meta_field(record.get("meta"), "meta")
    set_meta(traj, given, source=source, external_id=record.get("id", record.get("uuid")),
                          extra=extra)
    return traj


def _assistant(b: TrajectoryBuilder, text: str, n: int, where: str) -> None:
    body = text.rstrip()
    ended = body.endswith(END)
    if ended:
        body = body[:-len(END)]
    step_extra = None if ended else {"endoftext": False}
    at = body.find(CALL)
    if at < 0:
        b.answer(body.strip(), extra=step_extra)
        return
    before = body[:at].strip()
    if before:
        b.answer(before)
    try:
        name, arguments, rest = parse_call(body[at + len(CALL):], "chat")
    except SchemaError as e:
        raise SchemaError(f"segment {n}: {e.message}", "chat") from None
    extra = dict(step_extra or {})
    if rest:
        extra["trailing_text"] = rest
    if type(name) is not str or not name:
        raise SchemaError(f"segment {n}: a {CALL} needs a non-empty string name", "chat")
    b.call(name, arguments, None, "chat", extra=extra or None)


def _unique(functions: list[dict]) -> list[dict]:
    """The first spec of each name (a later one with the same name goes to ``duplicate_functions``)."""
    seen: set = set()
    out = []
    for f in functions:
        key = f.get("name")
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    return out


def _duplicates(functions: list[dict]) -> list[dict]:
    seen: set = set()
    out = []
    for f in functions:
        key = f.get("name")
        if key in seen:
            out.append(f)
        seen.add(key)
    return out


register(Format(
    "glaive", title="Glaive function-calling v2", aliases=("glaive_v2",),
    detect=detect, read=lambda r, *, source="", tools=None, answer=None: to_trajectory(r, source=source, tools=tools),
    rule="a 'chat' string with USER: / ASSISTANT: / FUNCTION RESPONSE: (specs in 'system')", markup=MARKUP,
    example={"system": "SYSTEM: You are a helpful assistant with access to the following functions. Use them if "
                       'required -\n{"name": "detect_language", "parameters": {"type": "object", "properties": '
                       '{"text": {"type": "string"}}}}\n',
             "chat": "USER: Which language is \"Je suis un étudiant\"?\n\n\nASSISTANT: <functioncall> "
                     "{\"name\": \"detect_language\", \"arguments\": '{\"text\": \"Je suis un étudiant\"}'} "
                     "<|endoftext|>\n\n\nFUNCTION RESPONSE: {\"language\": \"French\"}\n\n\nASSISTANT: French. "
                     "<|endoftext|>"}))
