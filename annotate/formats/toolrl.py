"""Tool calls written as tagged text -> canonical trajectories (pure; no Django).

Two sources write reasoning and tool calls inside one string, with the same tags:

- **ToolRL** rows ``{"instruction", "input", "output"}``: the instruction lists the tools
  (``N. Name: ...`` / ``Description: ...`` / ``Parameters: {json}``); the input is the dialogue so
  far (``<user>``, ``<think>``, ``<tool_call>``, ``<obs>``, ``<response>``); the output is the
  assistant's next step: ``<think>...</think>``, then ``<tool_call>`` with one JSON call a line
  (``{"name", "parameters"}``) and / or ``<response>...</response>``. A closing tag cut off at the
  end of the string is tolerated.
- **Hermes** function-calling transcripts ``{"example": "SYSTEM: ... <tools>[...]</tools>\\nUSER:
  ...\\nASSISTANT: <tool_call>{json}</tool_call>"}`` (NousResearch/Hermes-Function-Calling), or
  the same in ChatML (``<|im_start|>role ... <|im_end|>``), with results in ``<tool_response>``.

The tag scanner and the call-block parser are shared with the ShareGPT importer, whose ``gpt``
values may use the Hermes tags.

>>> t = to_trajectory({"instruction": "You are helpful.\\n\\n**Available Tools**\\n1. Name: lookup\\n"
...     "Description: Find a word.\\nParameters: {\\"word\\": {\\"type\\": \\"str\\", \\"default\\": \\"\\"}}\\n",
...     "input": "**Dialogue Records History**\\n<user> Define 'tool'. </user>",
...     "output": "<think> Look it up. </think>\\n<tool_call>\\n{\\"name\\": \\"lookup\\", "
...               "\\"parameters\\": {\\"word\\": \\"tool\\"}}\\n</tool_call>"})
>>> [(s.kind, s.name or s.text) for s in t.turns[0].steps]
[('think', 'Look it up.'), ('tool_call', 'lookup')]
>>> t.tools[0]["parameters"]["properties"]["word"]["type"]
'string'
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Any

from annotate.case_types import looks_like_failure
from annotate.formats import Format, plain_reader, register
from annotate.formats.common import (
    STRICT_JSON,
    record_id,
    TrajectoryBuilder, leftovers, meta_field, require_dict, set_meta, string_field, tools_field,
)
from annotate.trajectory import MAX_NESTING, Meta, SchemaError, Trajectory, check_nesting, normalize_tool
from core import strict_json

_DECODER = STRICT_JSON
_OPEN = re.compile(r"<(think|tool_call|tool_response|response|obs|user)>")


_TOOLRL_KEYS = frozenset(("instruction", "input", "output", "meta"))
# The prompt layout's fixed headings, which the reader drops (see annotate.formats.Format.markup).
MARKUP = ("**Available Tools**", "In your response, you can use the following tools:",
          "**Dialogue Records History**", "Name:", "Description:", "Parameters:",
          "SYSTEM:", "USER:", "ASSISTANT:", "TOOL:", "FUNCTION RESPONSE:", "```")


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    """Convert a ToolRL row or a Hermes transcript record."""
    record = require_dict(record, "record")
    if "example" in record or "text" in record and "output" not in record:
        traj = _hermes(record, tools)
        known = frozenset(("example" if "example" in record else "text", "meta"))
    elif "output" in record:
        traj = _toolrl(record, tools)
        known = _TOOLRL_KEYS
    else:
        raise SchemaError("a ToolRL row needs 'output' (a Hermes transcript: 'example')", "output")
    given = meta_field(record.get("meta"), "meta")
    extra = {**leftovers(record, known, ""), **traj.meta.extra}
    rid = record_id(record, extra, given)
    set_meta(traj, given, source=source, external_id=rid, extra=extra)
    return traj


# Tag scanning (shared) -------------------------------------------------------------------------

def scan_tags(text: str, tags: tuple[str, ...]) -> list[tuple[str | None, str]]:
    """``[(tag or None, inner text)]`` in order; text outside the tags comes as ``None`` segments.

    A missing closing tag runs to the end of the string (ToolRL outputs are sometimes cut off).

    >>> scan_tags("a <think> b </think> c <tool_call> d", ("think", "tool_call"))
    [(None, 'a '), ('think', ' b '), (None, ' c '), ('tool_call', ' d')]
    """
    out: list[tuple[str | None, str]] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _OPEN.search(text, pos)
        while m is not None and m.group(1) not in tags:
            m = _OPEN.search(text, m.end())
        if m is None:
            out.append((None, text[pos:]))
            break
        if m.start() > pos:
            out.append((None, text[pos:m.start()]))
        tag = m.group(1)
        close = text.find(f"</{tag}>", m.end())
        if close < 0:
            out.append((tag, text[m.end():]))
            break
        out.append((tag, text[m.end():close]))
        pos = close + len(tag) + 3
    return out


def parse_call_block(block: str, where: str) -> list[dict]:
    """The JSON calls in a ``<tool_call>`` block: one per line, one pretty-printed, or a JSON list."""
    calls: list[Any] = []
    pos, n = 0, len(block)
    while True:
        while pos < n and block[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            break
        try:
            value, pos = _DECODER.raw_decode(block, pos)
        except json.JSONDecodeError as e:
            raise SchemaError(f"tool call {len(calls) + 1} is not valid JSON ({e.msg}): "
                              f"{block[e.pos:e.pos + 40]!r}", where) from None
        except RecursionError:
            raise SchemaError(f"nested deeper than {MAX_NESTING} levels", where) from None
        calls.extend(value if isinstance(value, list) else [value])
    for i, c in enumerate(calls):
        if not isinstance(c, dict):
            raise SchemaError(f"tool call {i + 1} must be a JSON object", where)
    return calls


def add_calls(b: TrajectoryBuilder, block: str, where: str) -> int:
    """Add the calls of one ``<tool_call>`` block; returns how many."""
    calls = parse_call_block(block, where)
    for c in calls:
        args = c.get("arguments", c.get("parameters"))
        if isinstance(args, (dict, list)):
            check_nesting(args, where)
        b.call(c.get("name"), args, c.get("id"), where)
    return len(calls)


def add_results(b: TrajectoryBuilder, text: str, calls: int, where: str) -> None:
    """Add the result(s) of one observation: split into one per call when it is a JSON list of them.

    A single result keeps its text as written.
    """
    items = None
    if calls > 1 and text.lstrip()[:1] == "[":
        try:
            items = strict_json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            items = None
    if isinstance(items, list) and len(items) == calls:
        for item in items:
            check_nesting(item, where)
            one = json.dumps(item, ensure_ascii=False)
            name = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else None
            b.result(one, None, name, not looks_like_failure(one), where)
    else:
        b.result(text, None, None, not looks_like_failure(text), where)


# ToolRL ------------------------------------------------------------------------------------------

_TOOL_ENTRY = re.compile(r"^\d+\.\s*Name:\s*(.*)\nDescription:[ \t]*(.*)\nParameters:[ \t]*(.*)$", re.M)
_SECTION = "**Available Tools**"


def _toolrl(record: dict, default_tools: list[dict] | None) -> Trajectory:
    instruction = string_field(record.get("instruction"), "instruction")
    system, tools, after = instruction.strip(), [], ""
    if _SECTION in instruction:
        head, rest = instruction.split(_SECTION, 1)
        system = head.strip()
        section, _, after = rest.partition("\n**")
        tools = _toolrl_tools(section)
    b = TrajectoryBuilder()
    _toolrl_dialogue(b, string_field(record.get("input"), "input"), "input", ("user", "think", "tool_call",
                                                                              "obs", "response"))
    output = string_field(record.get("output"), "output")
    if not output.strip():
        raise SchemaError("the output is empty", "output")
    _toolrl_dialogue(b, output, "output", ("think", "tool_call", "response"))
    # The instruction's sections after the tool list (steps, output format, notes) are prompt
    # text with no canonical place: kept as written.
    meta = Meta(extra={"instruction_after_tools": "**" + after}) if after.strip() else None
    return b.finish(system, tools or tools_field(default_tools, "tools"), meta)


def _toolrl_tools(section: str) -> list[dict]:
    tools = []
    for i, (name, desc, params) in enumerate(_TOOL_ENTRY.findall(section)):
        where, what = "instruction", f"tool {i + 1} ({name.strip()!r})"
        try:
            props = STRICT_JSON.decode(params)
        except (json.JSONDecodeError, RecursionError):
            raise SchemaError(f"{what}: the Parameters line is not valid JSON", where) from None
        if not isinstance(props, dict):
            raise SchemaError(f"{what}: the Parameters must be a JSON object", where)
        properties = {}
        for pname, spec in props.items():
            properties[pname] = python_type_schema(spec) if isinstance(spec, dict) else {"description": str(spec)}
        tools.append(normalize_tool({"name": name.strip(), "description": desc.strip(),
                                     "parameters": {"type": "object", "properties": properties}}, where))
    return tools


_SIMPLE_TYPES = {
    "str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
    "number": "number", "double": "number", "bool": "boolean", "boolean": "boolean", "dict": "object",
    "object": "object", "list": "array", "array": "array", "tuple": "array", "any": None,
}


def python_type_schema(spec: dict) -> dict:
    """A parameter spec with Python-style type names (``int, optional``, ``List[float]``) as JSON Schema.

    The original name stays under ``x-type`` when it is not plain JSON Schema.

    >>> python_type_schema({"type": "List[float]", "default": ""})
    {'default': '', 'type': 'array', 'items': {'type': 'number'}, 'x-type': 'List[float]'}
    """
    out = {k: v for k, v in spec.items() if k != "type"}
    t = spec.get("type")
    if isinstance(t, list):
        out["type"] = t
        return out
    if not isinstance(t, str):
        return out
    base = re.sub(r",\s*optional\s*$", "", t).strip()
    m = re.fullmatch(r"(?i)(list|tuple|dict|optional|union)\[(.*)\]", base)
    generic = m.group(1).lower() if m else None
    if generic in ("list", "tuple"):
        out["type"] = "array"
        inner = _SIMPLE_TYPES.get(m.group(2).strip().lower(), None) if generic == "list" else None
        if inner:
            out["items"] = {"type": inner}
    elif generic == "dict":
        out["type"] = "object"
    elif generic is None and base.lower() in _SIMPLE_TYPES:
        mapped = _SIMPLE_TYPES[base.lower()]
        if mapped:
            out["type"] = mapped
    if out.get("type") != t:
        out["x-type"] = t
    return out


def _toolrl_dialogue(b: TrajectoryBuilder, text: str, where: str, tags: tuple[str, ...]) -> None:
    last_calls = 0
    seen_think = False
    for k, (tag, inner) in enumerate(scan_tags(text, tags)):
        with _located(where, f"<{tag}> block {k + 1}"):
            if tag is None:
                if inner.strip() and not inner.strip().startswith("**Dialogue Records History**"):
                    raise SchemaError(f"text outside the tags: {inner.strip()[:60]!r}", where)
            elif tag == "user":
                b.user(inner.strip())
            elif tag == "think":
                if where == "output" and seen_think:
                    raise SchemaError("a second <think> block in the output", where)
                seen_think = True
                b.think(inner.strip())
            elif tag == "tool_call":
                last_calls = add_calls(b, inner, where)
            elif tag == "obs":
                add_results(b, inner.strip(), last_calls, where)
            else:  # response
                b.answer(inner.strip())


@contextmanager
def _located(where: str, what: str):
    """Name the block inside a text field in errors about that field (the field path stays dotted)."""
    try:
        yield
    except SchemaError as e:
        if e.field != where or e.message.startswith(what):
            raise
        raise SchemaError(f"{what}: {e.message}", where) from None


# Hermes ------------------------------------------------------------------------------------------

_ROLE_LINE = re.compile(r"^(SYSTEM|USER|ASSISTANT|TOOL|FUNCTION RESPONSE):[ \t]*", re.M)
_CHATML = re.compile(r"<\|im_start\|>(\w+)\n?(.*?)(?:<\|im_end\|>|$)", re.S)
TOOLS_BLOCK = re.compile(r"<tools>(.*?)</tools>", re.S)


def _hermes(record: dict, default_tools: list[dict] | None) -> Trajectory:
    key = "example" if "example" in record else "text"
    text = string_field(record.get(key), key).strip()
    if text.startswith("```"):
        text = text.strip("`").strip()
    if "<|im_start|>" in text:
        parts = [(m.group(1).lower(), m.group(2)) for m in _CHATML.finditer(text)]
    else:
        marks = list(_ROLE_LINE.finditer(text))
        if not marks:
            raise SchemaError("no SYSTEM: / USER: / ASSISTANT: lines (or ChatML) found", key)
        parts = [(m.group(1).lower(), text[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(text)])
                 for i, m in enumerate(marks)]
    b = TrajectoryBuilder()
    system, tools = "", []
    last_calls = 0
    for i, (role, body) in enumerate(parts):
        with _located(key, f"message {i + 1} ({role})"):
            system, tools, last_calls = _hermes_part(b, role, body, key, system, tools, last_calls)
    return b.finish(system, tools or tools_field(default_tools, "tools"))


def _hermes_part(b: TrajectoryBuilder, role: str, body: str, w: str, system: str, tools: list,
                 last_calls: int) -> tuple[str, list, int]:
    if role == "system":
        block = TOOLS_BLOCK.search(body)
        if block:
            tools = tools_field(block.group(1).strip(), w)
            body = body[:block.start()] + body[block.end():]
        system = (system + "\n\n" + body.strip()).strip()
    elif role in ("user", "human") and "<tool_response>" not in body:
        b.user(body.strip())
    elif role == "assistant" or role == "gpt":
        last_calls = add_tagged_assistant(b, body, w)
    else:  # tool / function response, or a user message holding <tool_response> blocks
        add_tool_responses(b, body, last_calls, w)
    return system, tools, last_calls


def add_tagged_assistant(b: TrajectoryBuilder, body: str, where: str) -> int:
    """An assistant text with ``<think>`` / ``<tool_call>`` tags; the rest is the answer. Returns #calls."""
    calls = 0
    answer: list[str] = []
    for k, (tag, inner) in enumerate(scan_tags(body, ("think", "tool_call"))):
        if tag == "think":
            b.think(inner.strip())
        elif tag == "tool_call":
            if answer and "".join(answer).strip():
                b.answer("".join(answer).strip())
            answer = []
            with _located(where, f"<tool_call> block {k + 1}"):
                calls += add_calls(b, inner, where)
        else:
            answer.append(inner)
    rest = "".join(answer).strip()
    if rest or not calls:
        b.answer(rest)
    return calls


def add_tool_responses(b: TrajectoryBuilder, body: str, calls: int, where: str) -> None:
    """Results in ``<tool_response>`` blocks (Hermes: ``{"name", "content"}``), or the whole text."""
    blocks = [inner for tag, inner in scan_tags(body, ("tool_response",)) if tag]
    if not blocks:
        add_results(b, body.strip(), calls, where)
        return
    for inner in blocks:
        inner = inner.strip()
        name = None
        try:
            value = strict_json.loads(inner)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            name = value["name"]
        b.result(inner, None, name, not looks_like_failure(inner), where)


register(Format(
    "toolrl", title="ToolRL rows", aliases=("hermes",),
    detect=lambda r: "output" in r and ("instruction" in r or "input" in r) or "example" in r,
    read=plain_reader(to_trajectory),
    rule="'output' with 'instruction' or 'input' (or a Hermes 'example')", markup=MARKUP,
    example={"instruction": "...tools in <tool> tags...", "input": "<user>Weather in Paris?</user>",
             "output": "<think>One call.</think>\n<tool_call>\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}\n</tool_call>"}))
