"""ShareGPT records as LLaMA-Factory writes them."""

from __future__ import annotations

import json

import pytest

from annotate.formats.sharegpt import to_trajectory
from annotate.trajectory import SchemaError
from tests.annotate.trajectory_shapes import shape

TOOLS = json.dumps([{"name": "w", "description": "weather", "parameters": {"type": "object", "properties": {}}}])

# (case, conversations, expected steps)
RECORDS = [
    ("a call, its observation and the answer",
     [{"from": "human", "value": "Paris?"}, {"from": "function_call", "value": '{"name": "w", "arguments": {"city": "Paris"}}'},
      {"from": "observation", "value": "18 C"}, {"from": "gpt", "value": "18 C."}],
     [("user", "Paris?"), ("call", "w", {"city": "Paris"}, "call_0_0"), ("result", "call_0_0", "18 C", True),
      ("answer", "18 C.")]),
    ("parallel calls as a JSON list, observation split per call",
     [{"from": "human", "value": "Paris and Rome?"},
      {"from": "function_call", "value": '[{"name": "w", "arguments": {"city": "Paris"}}, {"name": "w", "arguments": {"city": "Rome"}}]'},
      {"from": "observation", "value": '["18 C", "24 C"]'}],
     [("user", "Paris and Rome?"), ("call", "w", {"city": "Paris"}, "call_0_0"), ("call", "w", {"city": "Rome"}, "call_0_1"),
      ("result", "call_0_0", '"18 C"', True), ("result", "call_0_1", '"24 C"', True)]),
    ("arguments as a JSON string inside the call",
     [{"from": "human", "value": "Paris?"}, {"from": "function_call", "value": '{"name": "w", "arguments": "{\\"city\\": \\"Paris\\"}"}'}],
     [("user", "Paris?"), ("call", "w", {"city": "Paris"}, "call_0_0")]),
    ("reasoning inline in a gpt value",
     [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "<think>greet back</think>\n\nHello!"}],
     [("user", "Hi"), ("think", "greet back"), ("answer", "Hello!")]),
    ("Hermes tags inside gpt and tool values",
     [{"from": "human", "value": "Paris?"},
      {"from": "gpt", "value": '<tool_call>\n{"name": "w", "arguments": {"city": "Paris"}}\n</tool_call>'},
      {"from": "tool", "value": '<tool_response>\n{"name": "w", "content": "18 C"}\n</tool_response>'},
      {"from": "gpt", "value": "18 C."}],
     [("user", "Paris?"), ("call", "w", {"city": "Paris"}, "call_0_0"),
      ("result", "call_0_0", '{"name": "w", "content": "18 C"}', True), ("answer", "18 C.")]),
    ("role / content keys",
     [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
     [("user", "Hi"), ("answer", "Hello")]),
]


@pytest.mark.parametrize("case, conversations, steps", RECORDS, ids=[r[0] for r in RECORDS])
def test_it_reads_each_conversation_shape(case, conversations, steps):
    t = to_trajectory({"conversations": conversations, "tools": TOOLS, "system": "Be brief."})
    assert shape(t) == steps
    assert (t.system, [x["name"] for x in t.tools]) == ("Be brief.", ["w"])


def test_a_hermes_system_turn_gives_the_tools():
    t = to_trajectory({"conversations": [
        {"from": "system", "value": 'You call functions.\n<tools>[{"name": "w", "parameters": {"type": "object"}}]</tools>'},
        {"from": "human", "value": "Hi"}]})
    assert (t.system, [x["name"] for x in t.tools]) == ("You call functions.", ["w"])


BAD = [
    ("an unknown speaker", {"conversations": [{"from": "bot", "value": "x"}]}, "conversations[0].from"),
    ("a call that is not JSON", {"conversations": [{"from": "human", "value": "u"},
                                                   {"from": "function_call", "value": "w(city=Paris)"}]},
     "conversations[1].value"),
    ("an observation with no call", {"conversations": [{"from": "human", "value": "u"},
                                                       {"from": "observation", "value": "x"}]},
     "conversations[1].value"),
    ("a value that is not text", {"conversations": [{"from": "human", "value": 3}]}, "conversations[0].value"),
    ("tools that are not JSON", {"conversations": [], "tools": "[oops"}, "tools"),
]


@pytest.mark.parametrize("case, record, field", BAD, ids=[b[0] for b in BAD])
def test_a_bad_record_is_a_schema_error_naming_the_field(case, record, field):
    with pytest.raises(SchemaError) as err:
        to_trajectory(record)
    assert err.value.field == field


def test_an_observation_keeps_its_text_as_written():
    t = to_trajectory({"conversations": [{"from": "human", "value": "u"},
                                         {"from": "function_call", "value": '{"name": "w", "arguments": {}}'},
                                         {"from": "observation", "value": "  line one\nline two\n"}]})
    assert t.turns[0].steps[1].text == "  line one\nline two\n"
