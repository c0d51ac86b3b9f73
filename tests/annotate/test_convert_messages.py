"""OpenAI / TRL conversational records, and their lossless export."""

from __future__ import annotations

import json

import pytest

from annotate.formats.messages import from_trajectory, to_trajectory
from annotate.trajectory import Meta, SchemaError, Step, Trajectory, Turn
from tests.annotate.trajectory_shapes import shape

USER = {"role": "user", "content": "Weather in Paris?"}


def call(name, arguments, id=None):
    c = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if id is not None:
        c["id"] = id
    return c


# (case, messages, expected steps)
RECORDS = [
    ("arguments as a JSON string, result by tool_call_id",
     [USER, {"role": "assistant", "content": None, "tool_calls": [call("get_weather", '{"city": "Paris"}', "c1")]},
      {"role": "tool", "tool_call_id": "c1", "content": "18 C"}, {"role": "assistant", "content": "18 C."}],
     [("user", "Weather in Paris?"), ("call", "get_weather", {"city": "Paris"}, "c1"), ("result", "c1", "18 C", True),
      ("answer", "18 C.")]),
    ("arguments as an object",
     [USER, {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Paris"}, "c1")]},
      {"role": "tool", "tool_call_id": "c1", "content": "18 C"}],
     [("user", "Weather in Paris?"), ("call", "get_weather", {"city": "Paris"}, "c1"), ("result", "c1", "18 C", True)]),
    ("reasoning in reasoning_content",
     [USER, {"role": "assistant", "reasoning_content": "I know this.", "content": "Mild."}],
     [("user", "Weather in Paris?"), ("think", "I know this."), ("answer", "Mild.")]),
    ("reasoning in the reasoning field",
     [USER, {"role": "assistant", "reasoning": "I know this.", "content": "Mild."}],
     [("user", "Weather in Paris?"), ("think", "I know this."), ("answer", "Mild.")]),
    ("reasoning inline in <think>",
     [USER, {"role": "assistant", "content": "<think>\nI know this.\n</think>\n\nMild."}],
     [("user", "Weather in Paris?"), ("think", "I know this."), ("answer", "Mild.")]),
    ("parallel calls in one message, results in any order",
     [USER, {"role": "assistant", "content": "", "tool_calls": [call("w", {"city": "Paris"}, "a"), call("w", {"city": "Rome"}, "b")]},
      {"role": "tool", "tool_call_id": "b", "content": "24 C"}, {"role": "tool", "tool_call_id": "a", "content": "18 C"}],
     [("user", "Weather in Paris?"), ("call", "w", {"city": "Paris"}, "a"), ("call", "w", {"city": "Rome"}, "b"),
      ("result", "b", "24 C", True), ("result", "a", "18 C", True)]),
    ("calls without ids get call_<turn>_<n>; results link by name",
     [USER, {"role": "assistant", "content": "", "tool_calls": [call("w", {}), call("v", {})]},
      {"role": "tool", "name": "v", "content": "V"}, {"role": "tool", "name": "w", "content": "W"}],
     [("user", "Weather in Paris?"), ("call", "w", {}, "call_0_0"), ("call", "v", {}, "call_0_1"),
      ("result", "call_0_1", "V", True), ("result", "call_0_0", "W", True)]),
    ("legacy function_call and function role",
     [USER, {"role": "assistant", "content": "", "function_call": {"name": "w", "arguments": '{"city": "Paris"}'}},
      {"role": "function", "name": "w", "content": "18 C"}],
     [("user", "Weather in Paris?"), ("call", "w", {"city": "Paris"}, "call_0_0"), ("result", "call_0_0", "18 C", True)]),
    ("text before the calls is kept as an answer step",
     [USER, {"role": "assistant", "content": "Let me check.", "tool_calls": [call("w", "{}", "c1")]},
      {"role": "tool", "tool_call_id": "c1", "content": "18 C"}],
     [("user", "Weather in Paris?"), ("answer", "Let me check."), ("call", "w", {}, "c1"), ("result", "c1", "18 C", True)]),
    ("content as a list of text parts",
     [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}],
     [("user", "Hi there"), ("answer", "Hello")]),
    ("a failed tool result",
     [USER, {"role": "assistant", "content": "", "tool_calls": [call("w", "{}", "c1")]},
      {"role": "tool", "tool_call_id": "c1", "content": "Error: service down"}],
     [("user", "Weather in Paris?"), ("call", "w", {}, "c1"), ("result", "c1", "Error: service down", False)]),
    ("two user turns",
     [USER, {"role": "assistant", "content": "Mild."}, {"role": "user", "content": "Thanks"},
      {"role": "assistant", "content": "You're welcome."}],
     [("user", "Weather in Paris?"), ("answer", "Mild."), ("user", "Thanks"), ("answer", "You're welcome.")]),
]


@pytest.mark.parametrize("case, messages, steps", RECORDS, ids=[r[0] for r in RECORDS])
def test_it_reads_each_message_shape(case, messages, steps):
    assert shape(to_trajectory({"messages": messages})) == steps


@pytest.mark.parametrize("tools", [
    [{"type": "function", "function": {"name": "w", "description": "weather", "parameters": {"type": "object"}}}],
    json.dumps([{"name": "w", "description": "weather", "parameters": {"type": "object"}}]),
], ids=["list of OpenAI tools", "JSON string of flat specs"])
def test_it_reads_the_tools_column_either_way(tools):
    t = to_trajectory({"messages": [USER], "tools": tools})
    assert t.tools == [{"name": "w", "description": "weather", "parameters": {"type": "object"}}]


def test_the_system_message_becomes_the_system_prompt_and_case_types_are_inferred():
    t = to_trajectory({"messages": [{"role": "system", "content": "Be brief."}] + RECORDS[0][1]})
    assert t.system == "Be brief."
    assert t.meta.case_types == ["tool_required"]


BAD = [
    ("messages is not a list", {"messages": "hi"}, "messages"),
    ("a message is not an object", {"messages": [USER, "hi"]}, "messages[1]"),
    ("an unknown role", {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ("a tool result for an unknown call", {"messages": [USER, {"role": "tool", "tool_call_id": "zz", "content": "x"}]},
     "messages[1].tool_call_id"),
    ("a tool result with no call at all", {"messages": [USER, {"role": "tool", "content": "x"}]}, "messages[1]"),
    ("a second result for one call",
     {"messages": [USER, {"role": "assistant", "tool_calls": [call("w", "{}", "c1")]},
                   {"role": "tool", "tool_call_id": "c1", "content": "x"},
                   {"role": "tool", "tool_call_id": "c1", "content": "y"}]}, "messages[3].tool_call_id"),
    ("two unanswered calls with one id",
     {"messages": [USER, {"role": "assistant", "tool_calls": [call("w", "{}", "c1"), call("w", "{}", "c1")]}]},
     "messages[1].tool_calls[1].id"),
    ("arguments that are not JSON", {"messages": [USER, {"role": "assistant", "tool_calls": [call("w", "{oops")]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ("tool_calls is not a list", {"messages": [USER, {"role": "assistant", "tool_calls": {"name": "w"}}]},
     "messages[1].tool_calls"),
    ("a call with no name", {"messages": [USER, {"role": "assistant", "tool_calls": [call("", "{}")]}]},
     "messages[1].tool_calls[0].function.name"),
    ("an image part", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]"),
    ("a system message after the conversation started",
     {"messages": [USER, {"role": "system", "content": "late"}]}, "messages[1].role"),
    ("reasoning that is not text", {"messages": [USER, {"role": "assistant", "reasoning_content": 3, "content": ""}]},
     "messages[1].reasoning_content"),
    ("tools that are not valid JSON", {"messages": [USER], "tools": "[{"}, "tools"),
    ("a tool with no name", {"messages": [USER], "tools": [{"description": "x"}]}, "tools[0].name"),
]


@pytest.mark.parametrize("case, record, field", BAD, ids=[b[0] for b in BAD])
def test_a_bad_record_is_a_schema_error_naming_the_field(case, record, field):
    with pytest.raises(SchemaError) as err:
        to_trajectory(record)
    assert err.value.field == field


@pytest.mark.parametrize("case, messages, steps", RECORDS, ids=[r[0] for r in RECORDS])
def test_export_then_import_gives_the_same_trajectory(case, messages, steps):
    t = to_trajectory({"messages": messages, "tools": [{"name": "w"}]})
    assert to_trajectory(from_trajectory(t)) == t


def test_export_is_what_trl_reads():
    t = to_trajectory({"messages": RECORDS[0][1], "tools": [{"name": "get_weather"}]})
    rec = from_trajectory(t)
    assert rec["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
    assert rec["messages"][2] == {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "18 C"}
    assert rec["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "", "parameters": {"type": "object", "properties": {}}}}]


def _traj(*steps: Step, user: str = "u") -> Trajectory:
    return Trajectory(turns=[Turn(user, list(steps))], meta=Meta(case_types=[]))


# Step sequences that plain messages cannot tell apart without care.
TRICKY = [
    ("an answer that starts with <think>", _traj(Step("answer", "<think>not reasoning</think> ok"))),
    ("reasoning then an empty answer", _traj(Step("think", "hm"), Step("answer", ""))),
    ("reasoning alone", _traj(Step("think", "hm"))),
    ("an empty answer, then a call", _traj(Step("answer", ""), Step("tool_call", name="w", arguments={}, call_id="c"),
                                           Step("tool_result", "x", name="w", call_id="c"))),
    ("two answers in a row", _traj(Step("answer", "a"), Step("answer", "b"))),
    ("an answer, then reasoning", _traj(Step("answer", "a"), Step("think", "t"))),
    ("a call, then an answer with no result between",
     _traj(Step("tool_call", name="w", arguments={}, call_id="c"), Step("answer", "a"),
           Step("tool_result", "x", name="w", call_id="c"))),
    ("a result that reads like an error but succeeded",
     _traj(Step("tool_call", name="w", arguments={}, call_id="c"), Step("tool_result", "Error: 0 rows", name="w", call_id="c"))),
    ("a failed result that reads fine",
     _traj(Step("tool_call", name="w", arguments={}, call_id="c"), Step("tool_result", "[]", name="w", call_id="c", ok=False))),
    ("non-object arguments", _traj(Step("tool_call", name="w", arguments=["a", 1], call_id="c"),
                                   Step("tool_call", name="w", arguments="text", call_id="d"))),
    ("labels, notes and train flags", _traj(Step("think", "t", labels=["format_error"]), Step("answer", "a", note="n", train=False))),
    ("an empty user text", _traj(Step("answer", "a"), user="")),
]


@pytest.mark.parametrize("case, traj", TRICKY, ids=[t[0] for t in TRICKY])
def test_export_keeps_what_plain_messages_would_lose(case, traj):
    assert to_trajectory(from_trajectory(traj)) == traj
