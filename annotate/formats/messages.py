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

from annotate.case_types import looks_like_failure
from annotate.formats import Format, plain_reader, register
from annotate.formats.common import (
    ANNOTATION_KEYS, TrajectoryBuilder, annotations, annotations_of, dump_arguments, leftovers, messages_kind,
    meta_field, record_id, require_dict, require_list, set_meta, string_field, text_of, tools_field, type_name,
)
from annotate.trajectory import Meta, SchemaError, Step, Trajectory

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
    extra = {**leftovers(record, _RECORD_KEYS, ""), **traj.meta.extra}
    external_id = record_id(record, extra, given)
    set_meta(traj, given, source=source, external_id=external_id, extra=extra)
    return traj


_RECORD_KEYS = frozenset(("messages", "conversations", "tools", "available_tools", "meta"))
_USER_KEYS = frozenset(("role", "content"))
_TOOL_KEYS = frozenset(("role", "content", "tool_call_id", "name", "is_error", "step_meta"))
_ASSISTANT_KEYS = frozenset(("role", "content", "tool_calls", "function_call", "step_meta", *REASONING_KEYS))
_CALL_KEYS = frozenset(("id", "type", "function"))
_FUNCTION_KEYS = frozenset(("name", "arguments"))


def _record_tools(record: dict, default: list[dict] | None) -> list[dict]:
    for key in ("tools", "available_tools"):
        if record.get(key) not in (None, "", []):
            return tools_field(record[key], key)
    return tools_field(default, "tools")


def messages_to_trajectory(messages: list, where: str = "messages") -> Trajectory:
    """Turns and steps (and the system prompt) from a message list; tools left empty, and in
    ``meta.extra`` only the unmapped keys of system messages (by their place, ``messages[0]``)."""
    b = TrajectoryBuilder()
    kept: dict = {}
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
            b.user(text_of(m.get("content"), f"{w}.content"), leftovers(m, _USER_KEYS, w))
        elif role in TOOL_ROLES:
            content = text_of(m.get("content"), f"{w}.content", json_ok=True)
            if "is_error" in m:
                ok = not m["is_error"]
            else:
                ok = not looks_like_failure(content)
            ann, extra = _step_meta(m, w, 1)[0]
            b.result(content, m.get("tool_call_id"), m.get("name"), ok, w, ann,
                     extra={**extra, **leftovers(m, _TOOL_KEYS, w)})
        elif role in SYSTEM_ROLES:
            if started:
                raise SchemaError("a system message is only allowed before the conversation starts", f"{w}.role")
            system_parts.append(text_of(m.get("content"), f"{w}.content"))
            left = leftovers(m, _USER_KEYS, w)
            if left:
                kept[w] = left
            continue
        else:
            raise SchemaError(f"unknown role {role!r}; expected system, user, assistant or tool", f"{w}.role")
        started = True
    return b.finish("\n\n".join(system_parts), meta=Meta(extra=kept))


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
    left = leftovers(m, _ASSISTANT_KEYS, w)
    if left:  # the message's own unmapped keys go with its first step
        ann[0] = (ann[0][0], {**ann[0][1], **left})
    k = 0
    if reasoning is not None:
        b.think(reasoning, *ann[k])
        k += 1
    if with_answer:
        b.answer(content, *ann[k])
        k += 1
    for j, tc in enumerate(calls or ()):
        cw = f"{w}.function_call" if legacy else f"{w}.tool_calls[{j}]"
        if type(tc) is not dict:
            raise SchemaError(f"a tool call must be an object, got {type_name(tc)}", cw)
        fn, prefix = tc, ""  # legacy function_call and flat {"name", "arguments"} calls
        if "function" in tc:
            fn, prefix = require_dict(tc["function"], f"{cw}.function"), "function."
            extra = leftovers(tc, _CALL_KEYS, cw)
            fn_left = leftovers(fn, _FUNCTION_KEYS, f"{cw}.function")
            if fn_left:
                extra["function"] = fn_left
        else:
            extra = leftovers(tc, _CALL_KEYS | _FUNCTION_KEYS, cw)
        step_ann, step_extra = ann[k]
        b.call(fn.get("name"), fn.get("arguments"), tc.get("id"), cw, step_ann,
               name_field=f"{prefix}name", arguments_field=f"{prefix}arguments", extra={**step_extra, **extra})
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
    """Per-step ``(annotations, extra)`` (``step_meta``: one object per step the message holds:
    ``labels`` / ``note`` / ``train`` and ``extra``), or empty ones."""
    sm = m.get("step_meta")
    if sm is None:
        return [((), {})] * max(n, 1)
    sm = require_list(sm, f"{w}.step_meta")
    if len(sm) != n:
        raise SchemaError(f"has {len(sm)} entries but the message holds {n} step(s)", f"{w}.step_meta")
    out = []
    for i, a in enumerate(sm):
        a = require_dict(a, f"{w}.step_meta[{i}]")
        out.append((annotations(a, f"{w}.step_meta[{i}]"), leftovers(a, ANNOTATION_KEYS, f"{w}.step_meta[{i}]")))
    return out


# Export -------------------------------------------------------------------------------------------

def from_trajectory(traj: Trajectory) -> dict:
    """The record TRL reads (``messages`` + ``tools``), plus ``meta``; lossless (see module doc)."""
    messages: list[dict] = []
    if traj.system:
        messages.append({"role": "system", "content": traj.system})
    for turn in traj.turns:
        messages.append({"role": "user", "content": turn.user, **({"extra": turn.extra} if turn.extra else {})})
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
            ann = _step_note(s)
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
        notes.append(_step_note(s))
    flush()


def _step_note(s: Step) -> dict:
    """A step's ``step_meta`` entry: its annotations and its ``extra``."""
    d = annotations_of(s)
    if s.extra:
        d["extra"] = s.extra
    return d


register(Format(
    "messages", title="OpenAI / TRL messages", aliases=("openai", "trl"),
    detect=lambda r: messages_kind(r) == "messages", read=plain_reader(to_trajectory),
    write=from_trajectory, rule="'messages' with OpenAI roles (system, user, assistant with tool_calls, tool)",
    example={"messages": [{"role": "user", "content": "Weather in Paris?"},
                          {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                           "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                          {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
                          {"role": "assistant", "content": "18 C in Paris."}]}))
