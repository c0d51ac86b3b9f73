"""ShareGPT records (LLaMA-Factory's ``sharegpt`` format) -> canonical trajectories (pure; no Django).

``{"conversations": [{"from": "human" | "gpt" | "function_call" | "observation", "value": "..."}],
"system": "...", "tools": "[...json...]"}``:

- ``function_call`` values are a JSON call ``{"name", "arguments"}`` or a JSON list of them
  (parallel calls); ``observation`` answers the calls before it, split into one result per call
  when it is a JSON list with one item per call;
- ``gpt`` values may start with ``<think>...</think>`` and may write calls with the Hermes tags
  (``<tool_call>{json}</tool_call>``), as datasets converted from Hermes do; a ``tool`` turn may hold
  ``<tool_response>`` blocks;
- a leading ``system`` turn is read as well as the ``system`` column; ``role`` / ``content`` keys
  and ``user`` / ``assistant`` / ``tool`` names are accepted for LLaMA-Factory's other tag settings.

>>> t = to_trajectory({"conversations": [
...     {"from": "human", "value": "Convert 100 USD to EUR"},
...     {"from": "function_call", "value": '{"name": "convert", "arguments": {"amount": 100}}'},
...     {"from": "observation", "value": '{"eur": 92.1}'},
...     {"from": "gpt", "value": "100 USD is 92.10 EUR."}],
...     "tools": '[{"name": "convert", "parameters": {"type": "object", "properties": {}}}]'})
>>> [(s.kind, s.name or s.text) for s in t.turns[0].steps]
[('tool_call', 'convert'), ('tool_result', 'convert'), ('answer', '100 USD is 92.10 EUR.')]
"""

from __future__ import annotations

from annotate.formats import Format, plain_reader, register
from annotate.formats.common import (
    TrajectoryBuilder, leftovers, messages_kind, meta_field, record_id, require_dict, require_list,
    set_meta, string_field, text_of, tools_field, type_name,
)
from annotate.formats.messages import split_inline_think
from annotate.formats.toolrl import TOOLS_BLOCK, add_calls, add_results, add_tagged_assistant, add_tool_responses
from annotate.trajectory import SchemaError, Trajectory

USER_TAGS = ("human", "user")
ASSISTANT_TAGS = ("gpt", "assistant")
CALL_TAGS = ("function_call",)
RESULT_TAGS = ("observation", "tool", "function")
SYSTEM_TAGS = ("system",)


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    """Convert one ShareGPT record; ``tools`` is used when it has no ``tools`` of its own."""
    record = require_dict(record, "record")
    key = "messages" if "messages" in record and "conversations" not in record else "conversations"
    if key not in record:
        raise SchemaError("a ShareGPT record needs 'conversations'", key)
    conv = require_list(record[key], key)
    b = TrajectoryBuilder()
    system_parts = [string_field(record.get("system"), "system")] if record.get("system") else []
    extra = leftovers(record, {key, "system", "tools", "meta"}, "")
    last_calls = 0
    started = False
    for i, m in enumerate(conv):
        w = f"{key}[{i}]"
        if type(m) is not dict:
            raise SchemaError(f"a conversation turn must be an object, got {type_name(m)}", w)
        tkey, vkey = ("from", "value") if "from" in m else ("role", "content")
        tag = m.get(tkey)
        vw = f"{w}.{vkey}"
        value = text_of(m.get(vkey), vw)
        left = leftovers(m, (tkey, vkey), w)
        if left and tag not in USER_TAGS:  # (a user message's go with its turn)
            extra[w] = left
        if tag in SYSTEM_TAGS:
            if started:
                raise SchemaError("a system turn is only allowed first", f"{w}.{tkey}")
            if "<tools>" in value and not record.get("tools"):
                block = TOOLS_BLOCK.search(value)  # a Hermes-style system prompt
                if block:
                    tools = tools_field(block.group(1).strip(), f"{vw} <tools>")
                    value = (value[:block.start()] + value[block.end():]).strip()
            system_parts.append(value)
            continue
        started = True
        if tag in USER_TAGS:
            b.user(value, left)
        elif tag in ASSISTANT_TAGS:
            if "<tool_call>" in value:
                last_calls = add_tagged_assistant(b, value, vw)
            else:
                if value[:20].lstrip().startswith("<think>"):
                    think, value = split_inline_think(value)
                    b.think(think)
                    if value:
                        b.answer(value)
                else:
                    b.answer(value)
        elif tag in CALL_TAGS:
            last_calls = add_calls(b, value, vw)
        elif tag in RESULT_TAGS:
            if "<tool_response>" in value:
                add_tool_responses(b, value, last_calls, vw)
            else:
                add_results(b, value, last_calls, vw)
        else:
            raise SchemaError(f"unknown {tkey} {tag!r}; expected human, gpt, function_call, observation "
                              "or system", f"{w}.{tkey}")
    traj = b.finish("\n\n".join(p for p in system_parts if p),
                    tools_field(record["tools"], "tools") if record.get("tools") else tools_field(tools, "tools"))
    given = meta_field(record.get("meta"), "meta")
    rid = record_id(record, extra, given)
    set_meta(traj, given, source=source, external_id=rid, extra=extra)
    return traj


register(Format(
    "sharegpt", title="ShareGPT (LLaMA-Factory)",
    detect=lambda r: messages_kind(r) == "sharegpt", read=plain_reader(to_trajectory),
    rule="'conversations' (or 'messages') whose entries have 'from'",
    example={"conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": "18 C"}, {"from": "gpt", "value": "18 C in Paris."}],
        "tools": '[{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]'}))
