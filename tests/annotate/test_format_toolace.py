"""ToolACE rows: the tool list out of the system prose, Python-style calls read with ``ast`` (never
evaluated), tool responses linked to their calls, and every word of the row kept."""

from __future__ import annotations

import json

import pytest

from annotate import formats
from annotate.formats.toolace import parse_calls, to_trajectory
from annotate.ingest.reader import parse_file
from tests.annotate.format_checks import FIXTURES, missing_leaves, missing_words, raw_export, raw_round_trip, records

SAMPLE = FIXTURES / "toolace" / "ToolACE_data_sample.json"


def imported():
    result = parse_file(SAMPLE.read_bytes(), SAMPLE.name)
    assert result.errors == [] and result.format == "toolace"
    return [t for _, t in result.trajectories]


def test_the_real_row_becomes_three_turns_with_calls_results_and_answers():
    row, = records(SAMPLE)
    t, = imported()
    convs = row["conversations"]
    assert [turn.user for turn in t.turns] == [c["value"] for c in convs if c["from"] == "user"]
    kinds = [[s.kind for s in turn.steps] for turn in t.turns]
    assert kinds == [["tool_call", "tool_result", "answer"], ["answer"], ["tool_call", "tool_result", "answer"]]
    calls = [(s.name, s.arguments) for _, _, s in t.steps() if s.kind == "tool_call"]
    assert calls == [("GetCompetitions", {}), ("Get Manager Placeholder Image", {"sport": "football"})]
    results = [s.text for _, _, s in t.steps() if s.kind == "tool_result"]
    assert results == [c["value"] for c in convs if c["from"] == "tool"]
    answers = [s.text for _, _, s in t.steps() if s.kind == "answer"]
    assert answers == [c["value"] for c in convs if c["from"] == "assistant" and not c["value"].startswith("[")]
    assert t.meta.case_types == ["multi_turn", "tool_required"]


def test_the_tool_list_leaves_the_prose_and_becomes_the_tools():
    row, = records(SAMPLE)
    t, = imported()
    listed = json.loads(row["system"].split("you can invoke:\n", 1)[1].split("]. \n", 1)[0] + "]")
    assert [x["name"] for x in t.tools] == [x["name"] for x in listed] and len(listed) == 4
    assert t.tool_by_name("Get Category Image")["parameters"] == {
        "type": "object", "properties": {"slug": {
            "description": "Slug of the sport or league, e.g. `france` `champions-league` `intl`.", "type": "string",
            "default": "france"}}, "required": ["slug"]}
    assert t.meta.extra["original_tools"] == listed
    assert "GetCompetitions" not in t.system
    assert t.system.startswith("You are an expert in composing functions.")
    assert t.system.endswith("NO other text MUST be included.")


def test_every_value_and_word_of_the_row_is_in_the_raw_export_which_round_trips():
    row, = records(SAMPLE)
    t, = imported()
    exported = raw_export(t)
    # The speakers ("from") are the row's structure, and null the JSON literal of the tool list's text.
    texts = [row["system"], *(c["value"] for c in row["conversations"])]
    assert missing_words(texts, exported, {"null"}) == set()
    # Every value but the calls (mapped to name + arguments, checked above) is there as written.
    written = [c["value"] for c in row["conversations"] if parse_calls(c["value"], "value") is None]
    assert len(written) == len(row["conversations"]) - 2 and missing_leaves(written, exported) == []
    assert raw_round_trip(t) == t


def test_parallel_calls_and_their_listed_results_pair_by_name():
    row = {"system": 'Use:\n[{"name": "a b", "parameters": {}}, {"name": "c", "parameters": {}}]',
           "conversations": [
               {"from": "user", "value": "both"},
               {"from": "assistant", "value": '[a b(x=1, y=[1, 2], z={"k": null}), c(flag=true, t=(1, 2), n=-3.5)]'},
               {"from": "tool", "value": '[{"name": "c", "results": {"ok": 1}}, {"name": "a b", "results": {"ok": 2}}]'},
               {"from": "assistant", "value": "done"}]}
    t = to_trajectory(row)
    steps = t.turns[0].steps
    assert [(s.kind, s.name, s.arguments) for s in steps[:2]] == [
        ("tool_call", "a b", {"x": 1, "y": [1, 2], "z": {"k": None}}),
        ("tool_call", "c", {"flag": True, "t": [1, 2], "n": -3.5})]
    assert [(s.name, s.call_id, json.loads(s.text)["results"]) for s in steps[2:4]] == [
        ("c", steps[1].call_id, {"ok": 1}), ("a b", steps[0].call_id, {"ok": 2})]


@pytest.mark.parametrize("value", ["[See the docs](http://example.com)", "[1, 2, 3]", "[]", "Sure [GetCompetitions()]"])
def test_assistant_text_that_is_not_a_call_list_is_an_answer(value):
    assert parse_calls(value, "value") is None


@pytest.mark.parametrize("value, message", [
    ("[f(city=__import__('os').getcwd())]", "argument 'city' of 'f' is not a literal"),
    ("[f(city=paris)]", "argument 'city' of 'f' is not a literal"),
    ('[f("Paris")]', "the call to 'f' has positional arguments"),
    ("[f(s={1, 2})]", "argument 's' of 'f' is a set, not a JSON value"),
    ("[f(a=1,, b=2)]", "the arguments of 'f' cannot be read"),
])
def test_a_call_that_is_not_literal_keyword_arguments_is_refused_naming_the_field(value, message):
    good, = records(SAMPLE)
    bad = {**good, "conversations": [good["conversations"][0], {"from": "assistant", "value": value}]}
    r = parse_file(json.dumps([good, bad]).encode(), "t.json")
    assert r.trajectories == []
    assert [(e.file, e.line, e.field) for e in r.errors] == [("t.json", 1, "conversations[1].value")]
    assert r.errors[0].message.startswith(message)


def test_other_malformed_rows_name_their_field():
    good, = records(SAMPLE)
    cases = [
        ({**good, "conversations": [{"from": "narrator", "value": "x"}]}, "conversations[0].from"),
        ({**good, "conversations": [good["conversations"][0], {"from": "tool", "value": "{}"}]}, "conversations[1]"),
        ({**good, "conversations": [{"from": "user", "value": 3}]}, "conversations[0].value"),
    ]
    for record, field in cases:
        r = parse_file(json.dumps(record).encode(), "t.json")
        assert [(e.line, e.field) for e in r.errors] == [(1, field)], field


def test_detection_takes_toolace_and_leaves_plain_sharegpt():
    row, = records(SAMPLE)
    assert formats.detect(row) == "toolace"
    plain = {"system": "Be kind.", "conversations": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "hello"}]}
    assert formats.detect(plain) == "sharegpt"
    with_tools_key = {**row, "tools": "[]"}
    assert formats.detect(with_tools_key) == "sharegpt"


def test_the_id_and_unknown_keys_are_kept():
    row, = records(SAMPLE)
    t = to_trajectory({**row, "id": 17, "category": "sports",
                       "conversations": [{**row["conversations"][0], "lang": "en"}]})
    assert t.meta.external_id == "17" and t.meta.extra["category"] == "sports"
    assert t.turns[0].extra == {"lang": "en"}
