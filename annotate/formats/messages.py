"""OpenAI / TRL conversational records <-> canonical trajectories (pure; no Django).

A record is ``{"messages": [...], "tools": [...]}`` as TRL's SFTTrainer reads it:

- ``system`` (or ``developer``) messages at the start give the system prompt;
- ``assistant`` messages carry ``content``, optional reasoning (``reasoning_content``,
  ``reasoning`` or ``thinking``, or a leading ``<think>...</think>`` in the content) and
  ``tool_calls`` whose ``function.arguments`` is an object or a JSON string (the legacy
  ``function_call`` is read too);
- ``tool`` (or legacy ``function``) messages answer a call through ``tool_call_id`` (or, without
  one, the oldest unanswered call of that ``name``);
- ``tools`` is a list of function specs or a JSON string of one.

One assistant message becomes, in order, a ``think`` step, an ``answer`` step (its content, when
there is any or when the message holds nothing else) and its ``tool_call`` steps.

Export (:func:`from_trajectory`) writes the same shape with ``arguments`` as objects, and keeps what
plain messages cannot say (step labels / notes / train flags, failed results, metadata) in extra keys
that chat templates ignore: ``step_meta`` on messages, ``is_error`` on tool messages and ``meta``
on the record, so that ``to_trajectory(from_trajectory(t)) == t``.

>>> t = to_trajectory({"messages": [
...     {"role": "user", "content": "Weather in Paris?"},
...     {"role": "assistant", "content": "<think>Use the tool.</think>", "tool_calls": [
...         {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
...     {"role": "tool", "name": "get_weather", "content": "18 C"},
...     {"role": "assistant", "content": "It is 18 C."}]})
>>> [(s.kind, s.call_id or s.text) for s in t.turns[0].steps]
[('think', 'Use the tool.'), ('tool_call', 'call_0_0'), ('tool_result', 'call_0_0'), ('answer', 'It is 18 C.')]
>>> to_trajectory(from_trajectory(t)) == t
True
"""

from __future__ import annotations

from typing import Any

from annotate.case_types import infer_case_types, looks_like_failure
from annotate.formats import Format, register
from annotate.formats.common import (
    TrajectoryBuilder, messages_kind, annotations, annotations_of, dump_arguments, make_meta, meta_field, require_dict,
    require_list, string_field, text_of, tools_field, type_name,
)
from annotate.trajectory import SchemaError, Step, Trajectory

REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
SYSTEM_ROLES = ("system", "developer")
TOOL_ROLES = ("tool", "function")


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    """Convert one OpenAI / TRL record; ``tools`` is used when the record has none of its own."""
    record = require_dict(record, "record")
    key = "conversations" if "conversations" in record and "messages" not in record else "messages"
    if key not in record:
        raise SchemaError("a messages record needs 'messages' (a list of chat messages)", key)
    messages = require_list(record[key], key)
    traj = messages_to_trajectory(messages, key)
    traj.tools = _record_tools(record, tools)
    given = meta_field(record.get("meta"), "meta")
    traj.meta = make_meta(given, "meta", source=source, external_id=record.get("id"))
    if "case_types" not in given:
        traj.meta.case_types = infer_case_types(traj)
    return traj


def _record_tools(record: dict, default: list[dict] | None) -> list[dict]:
    for key in ("tools", "available_tools"):
        if record.get(key) not in (None, "", []):
            return tools_field(record[key], key)
    return tools_field(default, "tools")


def messages_to_trajectory(messages: list, where: str = "messages") -> Trajectory:
    """Turns and steps (and the system prompt) from a message list; tools and meta left empty."""
    b = TrajectoryBuilder()
    system_parts: list[str] = []
    started = False
    for i, m in enumerate(messages):
        w = f"{where}[{i}]"
        if type(m) is not dict:
            raise SchemaError(f"a message must be an object, got {type_name(m)}", w)
        role = m.get("role")
        if role == "assistant":
            _assistant(b, m, w)
        elif role == "user":
            b.user(text_of(m.get("content"), f"{w}.content"))
        elif role in TOOL_ROLES:
            content = text_of(m.get("content"), f"{w}.content", json_ok=True)
            if "is_error" in m:
                ok = not m["is_error"]
            else:
                ok = not looks_like_failure(content)
            b.result(content, m.get("tool_call_id"), m.get("name"), ok, w, _step_meta(m, w, 1)[0])
        elif role in SYSTEM_ROLES:
            if started:
                raise SchemaError("a system message is only allowed before the conversation starts", f"{w}.role")
            system_parts.append(text_of(m.get("content"), f"{w}.content"))
            continue
        else:
            raise SchemaError(f"unknown role {role!r}; expected system, user, assistant or tool", f"{w}.role")
        started = True
    return b.finish("\n\n".join(system_parts))


def _assistant(b: TrajectoryBuilder, m: dict, w: str) -> None:
    reasoning = None
    reasoning_key_seen = False
    for k in REASONING_KEYS:
        if k in m:
            reasoning_key_seen = True
            if m[k] is not None:
                reasoning = string_field(m[k], f"{w}.{k}")
                break
    content = text_of(m.get("content"), f"{w}.content")
    if not reasoning_key_seen and content[:20].lstrip().startswith("<think>"):
        reasoning, content = split_inline_think(content)
    calls = m.get("tool_calls")
    legacy = calls is None and m.get("function_call") is not None
    if legacy:
        calls = [m["function_call"]]
    elif calls is not None:
        calls = require_list(calls, f"{w}.tool_calls")
    with_answer = content != "" or (not calls and reasoning is None)
    n = (reasoning is not None) + with_answer + (len(calls) if calls else 0)
    ann = _step_meta(m, w, n)
    k = 0
    if reasoning is not None:
        b.think(reasoning, ann[k])
        k += 1
    if with_answer:
        b.answer(content, ann[k])
        k += 1
    for j, tc in enumerate(calls or ()):
        cw = f"{w}.function_call" if legacy else f"{w}.tool_calls[{j}]"
        if type(tc) is not dict:
            raise SchemaError(f"a tool call must be an object, got {type_name(tc)}", cw)
        fn, prefix = tc, ""  # legacy function_call and flat {"name", "arguments"} calls
        if "function" in tc:
            fn, prefix = require_dict(tc["function"], f"{cw}.function"), "function."
        b.call(fn.get("name"), fn.get("arguments"), tc.get("id"), cw, ann[k],
               name_field=f"{prefix}name", arguments_field=f"{prefix}arguments")
        k += 1


def split_inline_think(content: str) -> tuple[str, str]:
    """``("reasoning", "rest")`` from content that starts with ``<think>``.

    >>> split_inline_think("<think>\\nplan\\n</think>\\n\\nanswer")
    ('plan', 'answer')
    """
    start = content.index("<think>") + len("<think>")
    end = content.find("</think>", start)
    if end < 0:  # cut off while thinking
        return content[start:].strip(), ""
    return content[start:end].strip(), content[end + len("</think>"):].lstrip()


def _step_meta(m: dict, w: str, n: int) -> list[tuple]:
    """Per-step annotations (``step_meta``: one object per step the message holds) or empty ones."""
    sm = m.get("step_meta")
    if sm is None:
        return [()] * n
    sm = require_list(sm, f"{w}.step_meta")
    if len(sm) != n:
        raise SchemaError(f"has {len(sm)} entries but the message holds {n} step(s)", f"{w}.step_meta")
    return [annotations(require_dict(a, f"{w}.step_meta[{i}]"), f"{w}.step_meta[{i}]")
            for i, a in enumerate(sm)]


# Export -------------------------------------------------------------------------------------------

def from_trajectory(traj: Trajectory) -> dict:
    """The record TRL reads (``messages`` + ``tools``), plus ``meta``; lossless (see module doc)."""
    messages: list[dict] = []
    if traj.system:
        messages.append({"role": "system", "content": traj.system})
    for turn in traj.turns:
        messages.append({"role": "user", "content": turn.user})
        _export_steps(turn.steps, messages)
    return {
        "messages": messages,
        "tools": [{"type": "function", "function": dict(t)} for t in traj.tools],
        "meta": traj.meta.to_dict(),
    }


def _export_steps(steps: list[Step], out: list[dict]) -> None:
    cur: dict | None = None  # the assistant message being filled
    notes: list[dict] = []
    closed = False  # an empty answer stands alone, or it would not come back on import

    def flush() -> None:
        nonlocal cur, notes, closed
        if cur is not None:
            if any(notes):
                cur["step_meta"] = notes
            out.append(cur)
        cur, notes, closed = None, [], False

    for s in steps:
        kind = s.kind
        if kind == "tool_result":
            flush()
            msg: dict[str, Any] = {"role": "tool", "tool_call_id": s.call_id, "name": s.name, "content": s.text}
            if s.ok == looks_like_failure(s.text):
                msg["is_error"] = not s.ok
            ann = annotations_of(s)
            if ann:
                msg["step_meta"] = [ann]
            out.append(msg)
            continue
        if kind == "think":
            if cur is not None:
                flush()
            cur = {"role": "assistant", "content": "", "reasoning_content": s.text}
        elif kind == "answer":
            if cur is None or closed or "tool_calls" in cur or cur["content"] or s.text == "":
                flush()
                cur = {"role": "assistant", "content": ""}
            cur["content"] = s.text
            if s.text == "":
                closed = True
            elif "reasoning_content" not in cur and s.text[:20].lstrip().startswith("<think>"):
                cur["reasoning_content"] = None  # says "no reasoning here": the text is the answer
        else:  # tool_call
            if cur is None or closed:
                flush()
                cur = {"role": "assistant", "content": ""}
            cur.setdefault("tool_calls", []).append(
                {"id": s.call_id, "type": "function",
                 "function": {"name": s.name, "arguments": dump_arguments(s.arguments)}})
        notes.append(annotations_of(s))
    flush()


register(Format(
    "messages", title="OpenAI / TRL messages", aliases=("openai", "trl"),
    detect=lambda r: messages_kind(r) == "messages", read=lambda r, *, source="", tools=None, answer=None: to_trajectory(r, source=source, tools=tools),
    write=from_trajectory, rule="'messages' with OpenAI roles (system, user, assistant with tool_calls, tool)",
    example={"messages": [{"role": "user", "content": "Weather in Paris?"},
                          {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                           "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                          {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
                          {"role": "assistant", "content": "18 C in Paris."}]}))
