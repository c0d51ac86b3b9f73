"""Turn a model's raw output text into reasoning, tool calls and an answer (pure; no Django).

Two ways in, one result shape (:class:`ParsedOutput`):

1. **The family's response template**, when one is given: transformers' response parser
   (``transformers.utils.chat_parsing``) driven by the template TRL ships for the family
   (``trl.chat_template_utils.qwen3_template`` …) or by the tokenizer's own ``response_template``.
   :func:`trl_response_template` fetches TRL's (it imports trl: workers only).
2. **Fallbacks** for the common formats, always available and used when no template is given
   or the template parser gives up:

   - ``<think>…</think>`` reasoning (also a bare ``</think>`` when the template prefilled ``<think>``);
   - Hermes / Qwen ``<tool_call>{"name": …, "arguments": …}</tool_call>`` blocks, one call per
     block or one JSON object per line (ToolRL writes several lines in one block), Qwen3.5's
     ``<function=name><parameter=k>v</parameter></function>`` inside the block;
   - bare JSON: ``{"name": …, "arguments"|"parameters": …}``, a list of those, OpenAI's
     ``{"type": "function", "function": {…}}`` or ``{"tool_calls": […]}``;
   - Python-style calls, ``get_weather(city="Paris")`` or ``[f(a=1), g(b="x")]``, read with
     :mod:`ast` (never evaluated);
   - ToolRL's ``<response>…</response>`` as the answer.

An output that cannot be read is a result, never an exception: ``format_errors`` says why.

>>> p = parse_output('<think>easy</think><tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>')
>>> p.reasoning, [(c.name, c.arguments) for c in p.tool_calls], p.format_ok
('easy', [('f', {'x': 1})], True)
>>> parse_output('[math.factorial(number=5)]').tool_calls[0].name
'math.factorial'
>>> parse_output('<tool_call>{"name": oops</tool_call>').format_errors
['malformed tool call: not JSON, not a Python-style call']
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

# End-of-turn markers a decoder may leave at the end of a generation (kept by
# ``skip_special_tokens=False``); they are not part of the answer.
END_MARKERS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "</s>",
    "<eos>",
    "<end_of_turn>",
    "<｜end▁of▁sentence｜>",
)
START_MARKERS = ("<|im_start|>assistant\n", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|python_tag|>")

# Family name -> the attribute of ``trl.chat_template_utils`` holding its response template.
TRL_RESPONSE_TEMPLATES = {
    "qwen3": "qwen3_template",
    "qwen2_5": "qwen3_template",  # same <tool_call> JSON format; TRL maps both to it
    "hermes": "qwen3_template",
    "qwen3_5": "qwen3_5_template",
    "llama3": "llama3_template",
    "glm4moe": "glm4moe_template",
    "gptoss": "gptoss_template",
    "lfm2_5": "lfm2_2_5_template",
    "gemma4": "gemma4_template",
    "nemotron3": "nemotron_3_template",
    "deepseek_r1": "deepseek_r1_distill_template",
}

# Python-style parsing of arbitrarily long text is pointless (a call list is short) and ast on
# megabytes of text is slow; longer outputs are read as text.
MAX_PYTHON_CALL_CHARS = 20_000

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_TOOL_RESPONSE_RE = re.compile(r"<tool_response>.*?(?:</tool_response>|\Z)", re.DOTALL)
_RESPONSE_RE = re.compile(r"<response>(.*?)(?:</response>|\Z)", re.DOTALL)
_FENCE_RE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_XML_FUNCTION_RE = re.compile(r"<function=([^>\n]+)>(.*?)(?:</function>|\Z)", re.DOTALL)
_XML_PARAMETER_RE = re.compile(r"<parameter=([^>\n]+)>\s*(.*?)\s*</parameter>", re.DOTALL)
_PYTHON_CALL_START_RE = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")


@dataclass
class ToolCall:
    """One parsed call: the tool's name, its arguments (a dict) and the text it was read from."""

    name: str
    arguments: dict
    raw: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "arguments": self.arguments, "raw": self.raw}

    @classmethod
    def from_dict(cls, d: dict) -> "ToolCall":
        return cls(name=d["name"], arguments=d.get("arguments") or {}, raw=d.get("raw", ""))


@dataclass
class ParsedOutput:
    """What the model said, read: reasoning, tool calls, answer text, and what could not be read.

    ``call_attempted`` is true when the output tried to call a tool, even if the call was broken
    (a malformed ``<tool_call>`` block): scoring counts that as a decision to call.
    ``parser`` names the path that read it: ``template``, ``tags``, ``json``, ``python`` or ``text``.
    """

    raw: str
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    answer: str = ""
    format_errors: list[str] = field(default_factory=list)
    call_attempted: bool = False
    parser: str = "text"

    @property
    def format_ok(self) -> bool:
        return not self.format_errors

    def to_dict(self) -> dict:
        return {
            "raw": self.raw,
            "reasoning": self.reasoning,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "answer": self.answer,
            "format_errors": list(self.format_errors),
            "call_attempted": self.call_attempted,
            "parser": self.parser,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ParsedOutput":
        return cls(
            raw=d.get("raw", ""),
            reasoning=d.get("reasoning", ""),
            tool_calls=[ToolCall.from_dict(c) for c in d.get("tool_calls", [])],
            answer=d.get("answer", ""),
            format_errors=list(d.get("format_errors", [])),
            call_attempted=bool(d.get("call_attempted", False)),
            parser=d.get("parser", "text"),
        )


# ---------------------------------------------------------------------------------------------
# Entry points


def parse_output(
    text: Any,
    response_template: dict | None = None,
    *,
    prefix: str = "",
    tools: list[dict] | None = None,
) -> ParsedOutput:
    """Parse one raw output. Never raises: an unreadable output comes back with ``format_errors``.

    ``response_template``: a transformers response template (TRL's for the family, see
    :func:`trl_response_template`, or ``tokenizer.response_template``); without one, the
    fallbacks read the common formats. ``prefix``: the rendered prompt, for templates that
    prefill part of the assistant turn. ``tools``: the tool schemas, used to type arguments
    that a format writes as bare text (Qwen3.5's XML parameters).
    """
    if not isinstance(text, str):
        return ParsedOutput(raw=repr(text), format_errors=[f"output is not text but {type(text).__name__}"])
    try:
        if response_template is not None:
            via_template = _parse_with_template(text, response_template, prefix, tools)
            if via_template is not None:
                return via_template
        return _parse_fallback(text, tools)
    except Exception as e:  # a parser bug must not crash an evaluation run; it is a result
        return ParsedOutput(raw=text, format_errors=[f"unparseable output ({type(e).__name__})"])


def parsed_from_message(message: Any, tools: list[dict] | None = None) -> ParsedOutput:
    """Read an assistant message dict (OpenAI / TRL shape) as a :class:`ParsedOutput`.

    Structured ``tool_calls`` (as an OpenAI-compatible server or ``tokenizer.parse_response``
    returns them) are taken as they are; a message with only ``content`` is parsed as text.

    >>> m = {"role": "assistant", "content": "", "tool_calls": [
    ...     {"type": "function", "function": {"name": "f", "arguments": '{"x": 2}'}}]}
    >>> parsed_from_message(m).tool_calls[0].arguments
    {'x': 2}
    """
    if isinstance(message, str):
        return parse_output(message, tools=tools)
    if not isinstance(message, dict):
        return ParsedOutput(raw=repr(message), format_errors=[f"message is not an object but {type(message).__name__}"])
    content = message.get("content") or ""
    if not isinstance(content, str):  # content blocks: keep the text parts
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict)) if isinstance(content, list) else str(content)
    calls = message.get("tool_calls")
    if not calls:
        parsed = parse_output(content, tools=tools)
        reasoning = _message_reasoning(message)
        if reasoning and not parsed.reasoning:
            parsed.reasoning = reasoning
        return parsed
    out = ParsedOutput(raw=content, reasoning=_message_reasoning(message), call_attempted=True, parser="message")
    for item in calls if isinstance(calls, list) else [calls]:
        call, error = _call_from_object(item, raw=json.dumps(item, ensure_ascii=False, default=str))
        if call is not None:
            out.tool_calls.append(call)
        else:
            out.format_errors.append(error)
    rest = parse_output(content, tools=tools) if content.strip() else None
    if rest is not None:
        out.answer = rest.answer
        out.tool_calls.extend(rest.tool_calls)
        out.format_errors.extend(rest.format_errors)
        out.reasoning = out.reasoning or rest.reasoning
    return out


def trl_response_template(family: str) -> dict | None:
    """TRL's response template for a template family (``qwen3``, ``qwen3_5``, ``llama3`` …).

    Imports trl (seconds, and torch with it): call it in workers, once per run. ``None`` when
    the family has no template or trl is not installed.
    """
    attr = TRL_RESPONSE_TEMPLATES.get(family)
    if attr is None:
        return None
    try:  # trl only where a template is asked for: importing it costs seconds, never in the web process
        import trl.chat_template_utils as ctu
    except ImportError:
        return None
    return getattr(ctu, attr, None)


# ---------------------------------------------------------------------------------------------
# The template path


def _parse_with_template(text: str, template: dict, prefix: str, tools) -> ParsedOutput | None:
    """transformers' parser, checked against the fallbacks; ``None`` when it gives up."""
    try:  # transformers only on this path (heavy; kept out of the web process)
        from transformers.utils.chat_parsing.response_parser import parse_response
    except ImportError:
        return None
    try:
        message = parse_response(text, template, prefix=prefix or "", tools=_openai_tools(tools))
    except (ValueError, TypeError, KeyError, RuntimeError):
        return None  # malformed calls: the fallbacks say precisely what is wrong
    if not isinstance(message, dict):
        return None
    out = ParsedOutput(raw=text, reasoning=_message_reasoning(message), parser="template")
    calls = message.get("tool_calls") or []
    for item in calls:
        call, error = _call_from_object(item, raw=json.dumps(item, ensure_ascii=False, default=str))
        if call is None:
            return None
        out.tool_calls.append(call)
    out.call_attempted = bool(calls)
    content = message.get("content") or ""
    out.answer = _strip_markers(content if isinstance(content, str) else str(content)).strip()
    fallback = _parse_fallback(text, tools)
    if not calls and fallback.call_attempted:
        return fallback  # a call in another common format (bare JSON, Python-style)
    # The template parser keeps only the last text region when text surrounds a call; the
    # fallback keeps all of it. Where both read the same calls, prefer the fuller answer.
    if [c.name for c in fallback.tool_calls] == [c.name for c in out.tool_calls] and out.answer in fallback.answer:
        out.answer = fallback.answer
    if "<tool_call>" in out.answer or "</tool_call>" in out.answer:
        return None
    if not out.tool_calls and not out.answer:
        return None  # empty, or reasoning only: the fallbacks say so (a format error)
    return out


def _openai_tools(tools):
    if not tools:
        return None
    return [t if "function" in t else {"type": "function", "function": t} for t in tools if isinstance(t, dict)]


def _message_reasoning(message: dict) -> str:
    for key in ("reasoning_content", "thinking", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


# ---------------------------------------------------------------------------------------------
# The fallbacks


def _parse_fallback(text: str, tools) -> ParsedOutput:
    out = ParsedOutput(raw=text)
    body = _strip_markers(text)
    body, out.reasoning = _take_reasoning(body, out.format_errors)
    if _TOOL_RESPONSE_RE.search(body):
        # The model wrote the tool's reply itself instead of stopping after its call.
        out.format_errors.append("wrote a <tool_response> itself")
        body = _TOOL_RESPONSE_RE.sub("", body)

    if "<tool_call>" in body:
        out.parser = "tags"
        out.call_attempted = True
        for m in _TOOL_CALL_RE.finditer(body):
            if not m.group(0).endswith("</tool_call>"):
                out.format_errors.append("unclosed <tool_call>")
            _read_call_block(m.group(1), out, tools)
        body = _TOOL_CALL_RE.sub("\n", body)
    elif "</tool_call>" in body:
        out.format_errors.append("</tool_call> without <tool_call>")
        out.call_attempted = True
        body = body.replace("</tool_call>", "")

    answer = body
    responses = _RESPONSE_RE.findall(body)
    if responses:
        answer = "\n".join(r.strip() for r in responses)
    answer = answer.strip()

    if not out.call_attempted and answer:
        calls = _bare_calls(answer)
        if calls is not None:
            kind, found, errors = calls
            out.parser = kind
            out.call_attempted = True
            out.tool_calls.extend(found)
            out.format_errors.extend(errors)
            answer = ""
    out.answer = answer
    if not out.answer and not out.call_attempted and not out.reasoning:
        out.format_errors.append("empty output")
    elif not out.answer and not out.call_attempted:
        out.format_errors.append("reasoning only: no call and no answer")
    return out


def _strip_markers(text: str) -> str:
    s = text
    for marker in START_MARKERS:
        if s.startswith(marker):
            s = s[len(marker):]
    changed = True
    while changed:
        changed = False
        stripped = s.rstrip()
        for marker in END_MARKERS:
            if stripped.endswith(marker):
                s = stripped[: -len(marker)]
                changed = True
    return s


def _take_reasoning(body: str, errors: list[str]) -> tuple[str, str]:
    parts = []
    if "</think>" in body and "<think>" not in body.split("</think>", 1)[0]:
        # The template prefilled "<think>" in the prompt: everything before the close is reasoning.
        head, body = body.split("</think>", 1)
        parts.append(head.strip())
    for m in _THINK_RE.finditer(body):
        parts.append(m.group(1).strip())
    body = _THINK_RE.sub("", body)
    if "<think>" in body:
        head, tail = body.split("<think>", 1)
        errors.append("unclosed <think>")
        parts.append(tail.strip())
        body = head
    return body, "\n".join(p for p in parts if p)


def _read_call_block(block: str, out: ParsedOutput, tools) -> None:
    """One ``<tool_call>`` body: JSON (one object, a list, or one object per line), Qwen3.5 XML
    or a Python-style call."""
    text = _unfence(block.strip())
    if not text:
        out.format_errors.append("empty <tool_call>")
        return
    if "<function=" in text:
        for m in _XML_FUNCTION_RE.finditer(text):
            out.tool_calls.append(_xml_call(m, tools))
        return
    objects = _json_objects(text)
    if objects is not None:
        for obj, raw in objects:
            call, error = _call_from_object(obj, raw)
            if call is not None:
                out.tool_calls.append(call)
            else:
                out.format_errors.append(error)
        return
    python = _python_calls(text)
    if python is not None:
        calls, errors = python
        out.tool_calls.extend(calls)
        out.format_errors.extend(errors)
        return
    out.format_errors.append("malformed tool call: not JSON, not a Python-style call")


def _json_objects(text: str) -> list[tuple[Any, str]] | None:
    """A JSON value (a list counts as several calls) or one JSON value per line; None otherwise."""
    value = _loads(text)
    if value is not _NOT_JSON:
        return [(v, json.dumps(v, ensure_ascii=False)) for v in value] if isinstance(value, list) else [(value, text)]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    found = []
    for line in lines:
        value = _loads(line)
        if value is _NOT_JSON:
            return None
        found.append((value, line))
    return found


_NOT_JSON = object()


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _unfence(text: str) -> str:
    m = _FENCE_RE.match(text)
    return m.group(1).strip() if m else text


def _call_from_object(obj: Any, raw: str) -> tuple[ToolCall | None, str]:
    """``(call, "")`` for a call-shaped object, ``(None, reason)`` otherwise."""
    if not isinstance(obj, dict):
        return None, "tool call is not a JSON object"
    if isinstance(obj.get("function"), dict):  # OpenAI: {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, "tool call without a name"
    if "arguments" in obj:
        args = obj["arguments"]
    elif "parameters" in obj:
        args = obj["parameters"]
    else:
        args = obj.get("args", {})
    if isinstance(args, str):  # OpenAI sends arguments as a JSON string
        parsed = _loads(args) if args.strip() else {}
        if parsed is _NOT_JSON:
            return None, f"arguments of {name!r} are not valid JSON"
        args = parsed
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None, f"arguments of {name!r} are not an object"
    return ToolCall(name=name.strip(), arguments=args, raw=raw), ""


def _xml_call(m: re.Match, tools) -> ToolCall:
    name = m.group(1).strip()
    props = _tool_properties(tools, name)
    args = {}
    for key, value in _XML_PARAMETER_RE.findall(m.group(2)):
        key = key.strip()
        declared = (props.get(key) or {}).get("type")
        if declared in ("string", "str", "String", "char"):
            args[key] = value
        else:
            parsed = _loads(value)
            args[key] = value if parsed is _NOT_JSON else parsed
    return ToolCall(name=name, arguments=args, raw=m.group(0))


def _tool_properties(tools, name: str) -> dict:
    for t in tools or []:
        if isinstance(t, dict):
            fn = t.get("function", t)
            if isinstance(fn, dict) and fn.get("name") == name:
                params = fn.get("parameters") or {}
                return params.get("properties") or {} if isinstance(params, dict) else {}
    return {}


def _bare_calls(text: str) -> tuple[str, list[ToolCall], list[str]] | None:
    """The whole answer as bare JSON calls or Python-style calls; None when it is plain text."""
    text = _unfence(text)
    if text[:1] in "[{":
        value = _loads(text)
        if value is not _NOT_JSON:
            items = value
            if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
                items = value["tool_calls"]
            items = items if isinstance(items, list) else [items]
            if items and all(_looks_like_call(i) for i in items):
                calls, errors = [], []
                for item in items:
                    call, error = _call_from_object(item, json.dumps(item, ensure_ascii=False))
                    (calls.append(call) if call is not None else errors.append(error))
                return "json", calls, errors
            return None
    python = _python_calls(text)
    if python is not None:
        calls, errors = python
        return "python", calls, errors
    return None


def _looks_like_call(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    return isinstance(obj.get("name"), str) and bool({"arguments", "parameters"} & obj.keys())


def _python_calls(text: str) -> tuple[list[ToolCall], list[str]] | None:
    """``f(a=1)`` / ``[f(a=1), g(b="x")]`` read with ast; None when the text is not that."""
    text = text.strip()
    if len(text) > MAX_PYTHON_CALL_CHARS or not _PYTHON_CALL_START_RE.match(text):
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    if not nodes or not all(isinstance(n, ast.Call) and _dotted_name(n.func) for n in nodes):
        return None
    calls, errors = [], []
    for node in nodes:
        name = _dotted_name(node.func)
        if node.args:
            errors.append(f"positional arguments in call to {name!r}")
            continue
        if any(kw.arg is None for kw in node.keywords):
            errors.append(f"**kwargs in call to {name!r}")
            continue
        args = {kw.arg: _literal(kw.value) for kw in node.keywords}
        calls.append(ToolCall(name=name, arguments=args, raw=ast.get_source_segment(text, node) or ""))
    return calls, errors


def _dotted_name(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(node.id)
    return ".".join(reversed(parts))


def _literal(node: ast.AST) -> Any:
    """A literal's value; as BFCL does, a bare name becomes its text and any other expression
    its source (``x=foo`` -> ``"foo"``). Tuples become lists, as JSON would have them."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        if isinstance(node, ast.Name):
            return node.id
        return ast.unparse(node)
    return _jsonish(value)


def _jsonish(value: Any) -> Any:
    if isinstance(value, tuple | list | set | frozenset):
        return [_jsonish(v) for v in value]
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _jsonish(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # complex, Ellipsis: kept as their text
