"""Parsing raw outputs: the common formats, real third-party outputs, TRL's response templates, and
never an exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluation.parse import ParsedOutput, parse_output, parsed_from_message, trl_response_template
from evaluation.scoring import Reference, score_output
from tests.evaluation.cases import TOOLS

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"


def fixture(*parts: str) -> Path:
    p = FIXTURES.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the shared fixtures at {p.resolve()} (absent in this checkout)")
    return p


# (what, raw output, expected calls [(name, arguments)], expected answer, expected reasoning)
GOOD = [
    ("Hermes / Qwen tool call with reasoning",
     '<think>\nNeed the weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
     [("get_weather", {"city": "Paris"})], "", "Need the weather."),
    ("two parallel calls",
     '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>',
     [("f", {"a": 1}), ("g", {})], "", ""),
    ("Hermes' key order and arguments as a JSON string",
     '<tool_call>\n{"arguments": "{\\"length\\": 8}", "name": "generate_password"}\n</tool_call>',
     [("generate_password", {"length": 8})], "", ""),
    ("ToolRL: several JSON lines in one block, then a response",
     '<think> check both </think>\n<tool_call>\n{"name": "a", "parameters": {"x": 1}}\n{"name": "b", "parameters": {}}\n</tool_call>\n<response> Looking it up. </response>',
     [("a", {"x": 1}), ("b", {})], "Looking it up.", "check both"),
    ("Qwen3.5 XML parameters",
     "<tool_call>\n<function=get_forecast>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
     [("get_forecast", {"city": "Paris", "days": 3})], "", ""),
    ("a JSON list inside one block",
     '<tool_call>[{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"b": true}}]</tool_call>',
     [("f", {}), ("g", {"b": True})], "", ""),
    ("Llama 3 bare JSON with parameters",
     '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Rome"}}<|eot_id|>',
     [("get_weather", {"city": "Rome"})], "", ""),
    ("bare JSON list",
     '[{"name": "f", "arguments": {"x": [1, 2]}}, {"name": "f", "arguments": {"x": []}}]',
     [("f", {"x": [1, 2]}), ("f", {"x": []})], "", ""),
    ("OpenAI tool_calls object",
     '{"tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\\"q\\": \\"hi\\"}"}}]}',
     [("f", {"q": "hi"})], "", ""),
    ("fenced JSON",
     '```json\n{"name": "f", "arguments": {"n": 2}}\n```',
     [("f", {"n": 2})], "", ""),
    ("Python-style call with dotted name and literals",
     "math.hypot(x=4, y=-5.5, flags=[True, None], opts={'a': (1, 2)})",
     [("math.hypot", {"x": 4, "y": -5.5, "flags": [True, None], "opts": {"a": [1, 2]}})], "", ""),
    ("Python-style list of calls, a bare name read as text as BFCL does",
     "[f(a='x'), g(b=some_variable)]",
     [("f", {"a": "x"}), ("g", {"b": "some_variable"})], "", ""),
    ("reasoning closed but opened by the template's prefill",
     "The user greets me.\n</think>\n\nHello! How can I help?",
     [], "Hello! How can I help?", "The user greets me."),
    ("plain answer with end marker", "The capital of France is Paris.<|im_end|>", [], "The capital of France is Paris.", ""),
    ("JSON that is not a call is an answer", '{"temperature": 18}', [], '{"temperature": 18}', ""),
]


@pytest.mark.parametrize("what, raw, calls, answer, reasoning", GOOD, ids=[g[0] for g in GOOD])
def test_a_well_formed_output_parses_into_calls_answer_and_reasoning(what, raw, calls, answer, reasoning):
    p = parse_output(raw, tools=TOOLS)
    assert p.format_errors == []
    assert [(c.name, c.arguments) for c in p.tool_calls] == calls
    assert p.answer == answer
    assert p.reasoning == reasoning
    assert p.call_attempted == bool(calls)


BAD = [
    ("malformed JSON in a call", '<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>', "malformed tool call"),
    ("a call without a name", '<tool_call>{"arguments": {}}</tool_call>', "without a name"),
    ("arguments that are not an object", '<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>', "not an object"),
    ("arguments that are broken JSON text", '<tool_call>{"name": "f", "arguments": "{oops"}</tool_call>', "not valid JSON"),
    ("an unclosed call", '<tool_call>{"name": "f", "arguments": {}}', "unclosed <tool_call>"),
    ("a stray closing tag", 'f(x)</tool_call>', "without <tool_call>"),
    ("an unclosed reasoning block", "<think>let me think about", "unclosed <think>"),
    ("reasoning and nothing else", "<think>hmm</think>", "reasoning only"),
    ("nothing at all", "   <|im_end|>", "empty output"),
    ("positional arguments in a Python-style call", "get_weather('Paris')", "positional arguments"),
    ("a made-up tool reply", '<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_response>42</tool_response>', "<tool_response>"),
]


@pytest.mark.parametrize("what, raw, error", BAD, ids=[b[0] for b in BAD])
def test_a_broken_output_is_a_result_with_a_format_error(what, raw, error):
    p = parse_output(raw)
    assert any(error in e for e in p.format_errors), p.format_errors
    assert not p.format_ok


def test_a_broken_call_still_counts_as_an_attempt_to_call():
    p = parse_output('<tool_call>{"name": "f", "arguments": {"a": 1}</tool_call>')
    assert p.call_attempted and p.tool_calls == []


def test_text_around_calls_is_kept_as_the_answer():
    p = parse_output('Let me check.\n<tool_call>{"name": "f", "arguments": {}}</tool_call>\nOne moment.')
    assert [c.name for c in p.tool_calls] == ["f"]
    assert p.answer.startswith("Let me check.") and p.answer.endswith("One moment.")


def test_a_message_with_structured_tool_calls_is_read_as_is():
    message = {
        "role": "assistant",
        "reasoning_content": "weather needed",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    }
    p = parsed_from_message(message)
    assert [(c.name, c.arguments) for c in p.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert p.reasoning == "weather needed" and p.format_ok


def test_a_parsed_output_survives_a_round_trip_through_json():
    for _, raw, *_ in GOOD + BAD:
        p = parse_output(raw)
        assert ParsedOutput.from_dict(json.loads(json.dumps(p.to_dict()))) == p


# --- real third-party outputs -------------------------------------------------------------


def test_every_toolrl_output_parses_with_its_calls_and_response():
    rows = json.loads(fixture("toolrl", "rlla_sft_first200.json").read_text())
    assert len(rows) == 200
    for row in rows:
        out = row["output"]
        p = parse_output(out)
        assert p.format_errors == [], (out[-300:], p.format_errors)
        # ToolRL writes one JSON call per line between the tags, after the reasoning (which may
        # mention the tags itself).
        after = out.split("</think>", 1)[1]
        block = after.split("<tool_call>")[1].split("</tool_call>")[0] if "<tool_call>" in after else ""
        expected = [json.loads(line)["name"] for line in block.splitlines() if line.strip()]
        assert [c.name for c in p.tool_calls] == expected
        if "<response>" in after:
            assert p.answer == after.split("<response>")[1].split("</response>")[0].strip()
        assert p.reasoning  # every row thinks first


def test_the_hermes_few_shot_calls_parse():
    examples = json.loads(fixture("hermes_fc", "few_shot.json").read_text())
    parsed = [parse_output(e["example"].split("ASSISTANT:")[1].strip().strip("`").strip()) for e in examples]
    assert [(p.tool_calls[0].name, p.tool_calls[0].arguments) for p in parsed] == [
        ("calculate_distance", {"origin": "New York", "destination": "Los Angeles", "mode": "car"}),
        ("generate_password", {"length": 8}),
    ]
    assert all(p.format_ok for p in parsed)


# --- TRL's response templates -------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3_template():
    template = trl_response_template("qwen3")
    if template is None:
        pytest.skip("trl's response templates are not available")
    return template


QWEN_OUTPUTS = [g[1] for g in GOOD[:3]] + [
    "<think>\nsimple\n</think>\n\nThe capital of France is Paris.<|im_end|>",
    'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": [1, {"b": null}]}}\n</tool_call>',
]


@pytest.mark.parametrize("raw", QWEN_OUTPUTS)
def test_trls_qwen3_template_and_the_fallback_read_the_same(qwen3_template, raw):
    via_template = parse_output(raw, qwen3_template)
    fallback = parse_output(raw)
    assert via_template.parser == "template"
    assert [(c.name, c.arguments) for c in via_template.tool_calls] == [(c.name, c.arguments) for c in fallback.tool_calls]
    assert (via_template.answer, via_template.reasoning) == (fallback.answer, fallback.reasoning)


def test_a_malformed_call_under_a_template_falls_back_and_reports_it(qwen3_template):
    p = parse_output('<tool_call>\n{"name": "f", "arguments": \n</tool_call>', qwen3_template)
    assert p.parser == "tags" and not p.format_ok


def test_trls_qwen3_5_template_types_xml_arguments_with_the_tool_schema():
    template = trl_response_template("qwen3_5")
    if template is None:
        pytest.skip("trl's response templates are not available")
    raw = "<tool_call>\n<function=get_forecast>\n<parameter=city>\n75001\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call><|im_end|>"
    p = parse_output(raw, template, tools=TOOLS)
    assert p.parser == "template"
    assert p.tool_calls[0].arguments == {"city": "75001", "days": 3}


def test_an_unknown_family_has_no_template():
    assert trl_response_template("no-such-family") is None


# --- never an exception -------------------------------------------------------------------

FRAGMENTS = [
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "<response>", "</response>",
    "<|im_end|>", '{"name": "get_weather", "arguments": {"city": "Paris"}}', '{"name": ', '"arguments": ',
    "{", "}", "[", "]", "(", ")", "get_weather(", "city=", "'Paris'", ",", "\n", "```json\n", "```",
    "<function=f>", "<parameter=x>", "</parameter>", "</function>", "NaN", "1e999", "\\u0000", '"', "?",
]
REF = Reference(tools=TOOLS, calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])


def check_invariants(p: ParsedOutput):
    assert isinstance(p, ParsedOutput)
    assert all(isinstance(c.name, str) and c.name and isinstance(c.arguments, dict) for c in p.tool_calls)
    json.dumps(p.to_dict())  # storable
    s = score_output(p, REF)  # and scorable
    assert s.decision in ("call", "answer", "ask", "decline")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_parse_never_raises_on_random_text(text):
    check_invariants(parse_output(text))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=30).map("".join))
def test_parse_never_raises_on_text_made_of_format_fragments(text):
    check_invariants(parse_output(text))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=30).map("".join))
def test_parse_never_raises_under_trls_template_either(qwen3_template, text):
    check_invariants(parse_output(text, qwen3_template))


def test_parse_survives_deep_nesting_and_non_text():
    assert parse_output("[" * 100_000).answer.startswith("[[[")  # too deep for JSON: it is text
    deep_call = parse_output("<tool_call>" + "[" * 50_000 + "</tool_call>")
    assert deep_call.call_attempted and any("malformed" in e for e in deep_call.format_errors)
    assert parse_output(None).format_errors == ["output is not text but NoneType"]
