"""Tool calls in tagged text: ToolRL rows and Hermes transcripts."""

from __future__ import annotations

import pytest

from annotate.formats.toolrl import python_type_schema, to_trajectory
from annotate.trajectory import SchemaError
from tests.annotate.trajectory_shapes import shape

INSTRUCTION = ("You are a helpful assistant.\n\n**Available Tools**\nIn your response, you can use these tools:\n"
               '1. Name: Search Managers\nDescription: Find a manager by name.\n'
               'Parameters: {"name": {"description": "The name", "type": "str", "default": ""}}\n'
               '2. Name: odds\nDescription: Odds.\nParameters: {"year": {"type": "float, optional", "default": ""}}\n\n'
               "**Steps for Each Turn**\n1. Think.\n")
HISTORY = "**Dialogue Records History**\n<user> Who manages United? </user>"

# (case, input, output, expected steps)
ROWS = [
    ("think then one call", HISTORY,
     '<think> Use Search Managers. </think>\n<tool_call>\n{"name": "Search Managers", "parameters": {"name": "Ten Hag"}}\n</tool_call>',
     [("user", "Who manages United?"), ("think", "Use Search Managers."),
      ("call", "Search Managers", {"name": "Ten Hag"}, "call_0_0")]),
    ("parallel calls, one JSON line each", HISTORY,
     '<think> Two. </think>\n<tool_call>\n{"name": "odds", "parameters": {"year": 2023}}\n'
     '{"name": "odds", "parameters": {"year": 2024}}\n</tool_call>',
     [("user", "Who manages United?"), ("think", "Two."), ("call", "odds", {"year": 2023}, "call_0_0"),
      ("call", "odds", {"year": 2024}, "call_0_1")]),
    ("a response and no call", HISTORY, "<think> I know it. </think>\n<response> Ten Hag. </response>",
     [("user", "Who manages United?"), ("think", "I know it."), ("answer", "Ten Hag.")]),
    ("reasoning that mentions the tags, and a cut-off closing tag", HISTORY,
     "<think> No <tool_call> needed, just a <response>. </think>\n<response> Ten Hag.",
     [("user", "Who manages United?"), ("think", "No <tool_call> needed, just a <response>."), ("answer", "Ten Hag.")]),
    ("a history with an earlier call and its observation",
     HISTORY + '\n\n<think> look up </think>\n<tool_call>\n{"name": "odds", "parameters": {}}\n</tool_call>\n'
               '<obs> [{"name": "odds", "results": {"x": 1}}] </obs>\n\n<response> Done. </response>\n\n<user> Again? </user>',
     "<think> Same. </think>\n<response> Yes. </response>",
     [("user", "Who manages United?"), ("think", "look up"), ("call", "odds", {}, "call_0_0"),
      ("result", "call_0_0", '[{"name": "odds", "results": {"x": 1}}]', True), ("answer", "Done."),
      ("user", "Again?"), ("think", "Same."), ("answer", "Yes.")]),
]


@pytest.mark.parametrize("case, input, output, steps", ROWS, ids=[r[0] for r in ROWS])
def test_it_reads_each_toolrl_row_shape(case, input, output, steps):
    t = to_trajectory({"instruction": INSTRUCTION, "input": input, "output": output})
    assert shape(t) == steps
    assert t.system == "You are a helpful assistant."
    assert [x["name"] for x in t.tools] == ["Search Managers", "odds"]


@pytest.mark.parametrize("spec, schema", [
    ({"type": "str"}, {"type": "string", "x-type": "str"}),
    ({"type": "int, optional", "default": 1}, {"type": "integer", "default": 1, "x-type": "int, optional"}),
    ({"type": "List[int]"}, {"type": "array", "items": {"type": "integer"}, "x-type": "List[int]"}),
    ({"type": "Tuple[float, float]"}, {"type": "array", "x-type": "Tuple[float, float]"}),
    ({"type": "Dict"}, {"type": "object", "x-type": "Dict"}),
    ({"type": "string"}, {"type": "string"}),
    ({"type": ["string", "null"]}, {"type": ["string", "null"]}),
    ({"type": "Callable"}, {"x-type": "Callable"}),
], ids=lambda v: str(v.get("type")) if isinstance(v, dict) else "")
def test_python_type_names_become_json_schema(spec, schema):
    assert python_type_schema(spec) == schema


HERMES = ("```\nSYSTEM: You have functions.\n<tools>[{\"name\": \"dist\", \"parameters\": {\"type\": \"object\"}}]\n</tools>\n"
          "USER: Distance NY to LA?\nASSISTANT:\n<tool_call>\n{\"arguments\": {\"origin\": \"NY\",\n \"destination\": \"LA\"},"
          " \"name\": \"dist\"}\n</tool_call>\nTOOL: <tool_response>\n{\"name\": \"dist\", \"content\": \"4500 km\"}\n"
          "</tool_response>\nASSISTANT: About 4500 km.\n```")


def test_it_reads_a_hermes_transcript():
    t = to_trajectory({"example": HERMES})
    assert (t.system, [x["name"] for x in t.tools]) == ("You have functions.", ["dist"])
    assert shape(t) == [("user", "Distance NY to LA?"), ("call", "dist", {"origin": "NY", "destination": "LA"}, "call_0_0"),
                        ("result", "call_0_0", '{"name": "dist", "content": "4500 km"}', True),
                        ("answer", "About 4500 km.")]


def test_it_reads_a_hermes_transcript_in_chatml():
    t = to_trajectory({"example": "<|im_start|>system\nHi<|im_end|>\n<|im_start|>user\nPing<|im_end|>\n"
                                  "<|im_start|>assistant\n<think>easy</think>Pong<|im_end|>"})
    assert (t.system, shape(t)) == ("Hi", [("user", "Ping"), ("think", "easy"), ("answer", "Pong")])


@pytest.mark.parametrize("case, record, field, words", [
    ("a call line that is not JSON", {"instruction": INSTRUCTION, "input": HISTORY,
                                      "output": "<think> x </think><tool_call>\n{name: odds}\n</tool_call>"},
     "output", "<tool_call> block 2: tool call 1 is not valid JSON"),
    ("an empty output", {"instruction": INSTRUCTION, "input": HISTORY, "output": " "}, "output", "empty"),
    ("text outside the tags", {"instruction": INSTRUCTION, "input": HISTORY, "output": "<think> x </think> stray"},
     "output", "text outside the tags"),
    ("a tool whose Parameters are not JSON", {"instruction": INSTRUCTION.replace('"default": ""}}', "oops"),
                                              "input": HISTORY, "output": "<response> x </response>"},
     "instruction", "tool 1 ('Search Managers')"),
    ("output is not text", {"instruction": INSTRUCTION, "input": HISTORY, "output": 5}, "output", "string"),
    ("a transcript without roles", {"example": "just text"}, "example", "no SYSTEM"),
], ids=lambda v: v if isinstance(v, str) and " " in v else "")
def test_a_bad_record_is_a_schema_error_naming_the_field_and_the_block(case, record, field, words):
    with pytest.raises(SchemaError) as err:
        to_trajectory(record)
    assert err.value.field == field
    assert words in err.value.message
