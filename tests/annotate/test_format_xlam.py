"""xLAM / APIGen rows: the query, the tools (flat parameter maps as JSON schema, the original kept)
and the answers as parallel calls, with nothing of the row lost."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from annotate import formats
from annotate.formats.xlam import python_type_schema, to_trajectory
from annotate.ingest.reader import detect_format, parse_file
from tests.annotate.format_checks import FIXTURES, missing_leaves, raw_export, raw_round_trip, records

SAMPLE = FIXTURES / "xlam" / "xlam_function_calling_60k_sample.json"
TOOLRL = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "toolrl" / "rlla_sft_first200.json"


def imported():
    result = parse_file(SAMPLE.read_bytes(), SAMPLE.name)
    assert result.errors == [] and result.format == "xlam"
    return [t for _, t in result.trajectories]


def test_each_row_is_the_query_and_its_answers_as_parallel_calls():
    rows = records(SAMPLE)
    trajs = imported()
    assert len(trajs) == len(rows)
    for row, t in zip(rows, trajs):
        answers = json.loads(row["answers"])
        assert t.meta.external_id == str(row["id"])
        assert [turn.user for turn in t.turns] == [row["query"]]
        assert [(s.kind, s.name, s.arguments) for s in t.turns[0].steps] == [
            ("tool_call", a["name"], a["arguments"]) for a in answers]
        assert len({s.call_id for s in t.turns[0].steps}) == len(answers)
        assert [x["name"] for x in t.tools] == [x["name"] for x in json.loads(row["tools"])]
        assert t.meta.extra["original_tools"] == json.loads(row["tools"])
        assert t.meta.case_types == ["tool_required"]


def test_flat_parameters_become_a_json_schema_object():
    t = imported()[0]
    assert t.tools[0]["parameters"] == {
        "type": "object", "required": ["type"],
        "properties": {"type": {"type": "string", "description": "The type of giveaways to retrieve (e.g., game, loot, "
                                                                 "beta).", "default": "game"}}}
    peers = imported()[1].tool_by_name("peers")["parameters"]["properties"]["symbol"]
    assert peers == {"type": "string", "description": "The stock symbol for the company."}  # "" is no default


@pytest.mark.parametrize("spec, schema, optional", [
    ("str", {"type": "string"}, False),
    ("int, optional", {"type": "integer"}, True),
    ("bool, optional", {"type": "boolean"}, True),
    ("float", {"type": "number"}, False),
    ("List[int]", {"type": "array", "items": {"type": "integer"}}, False),
    ("List[float]", {"type": "array", "items": {"type": "number"}}, False),
    ("List", {"type": "array"}, False),
    ("Tuple[float, float]", {"type": "array", "items": {"type": "number"}}, False),
    ("List[Union[int, float]]", {"type": "array", "items": {"type": ["integer", "number"]}}, False),
    ("Dict", {"type": "object"}, False),
    ("Dict[str, Any]", {"type": "object"}, False),
    ("Optional[str]", {"type": "string"}, True),
    ("book", {}, False),
])
def test_python_type_names_map_to_json_schema(spec, schema, optional):
    assert python_type_schema(spec) == (schema, optional)


def test_every_type_written_in_real_xlam_tools_is_read():
    # ToolRL's rows embed xLAM's tools with their original flat parameter maps.
    if not TOOLRL.exists():
        pytest.skip("the shared third-party fixtures (../shared/fixtures) are not in this checkout")
    text = TOOLRL.read_text(encoding="utf-8")
    types = set(re.findall(r'\\"type\\": \\"([^"\\]+)\\"', text))
    python_like = {t for t in types if t[0].isupper() or "," in t or t in ("str", "int", "float", "bool")}
    assert {"List[int]", "str, optional", "Tuple[float, float]"} <= python_like
    assert {t for t in python_like if python_type_schema(t)[0] == {}} == set()


def test_nothing_of_a_row_is_lost_and_the_raw_export_round_trips():
    for row, t in zip(records(SAMPLE), imported()):
        parsed = {**row, "tools": json.loads(row["tools"]), "answers": json.loads(row["answers"])}
        assert missing_leaves(parsed, raw_export(t)) == []
        assert raw_round_trip(t) == t


def test_unknown_keys_of_a_row_and_of_a_call_are_kept():
    row = {**records(SAMPLE)[1], "split": "train",
           "answers": '[{"name": "web_chain_details", "arguments": {"chain_slug": "ethereum"}, "score": 0.9}]'}
    t = to_trajectory(row)
    assert t.meta.extra["split"] == "train" and t.turns[0].steps[0].extra == {"score": 0.9}


def test_a_row_with_no_answer_is_a_no_tool_case():
    t = to_trajectory({**records(SAMPLE)[0], "answers": "[]"})
    assert t.turns[0].steps == [] and t.meta.case_types == ["no_tool"]


def test_detection_leaves_when2call_alone():
    row = records(SAMPLE)[0]
    assert detect_format(row) == "xlam"
    when2call = {"uuid": "x", "question": "q", "answers": {"direct": "a"}, "correct_answer": "direct", "tools": "[]"}
    assert formats.detect(when2call) != "xlam"


def test_malformed_rows_are_refused_with_file_line_and_field():
    good = records(SAMPLE)[0]
    bad = [
        {**good, "tools": "[{not json"},
        {**good, "answers": '[{"arguments": {}}]'},
        {**good, "tools": '[{"name": "f", "parameters": {"x": "str"}}]'},
        {**good, "query": ["a list"]},
    ]
    data = "\n".join(json.dumps(r) for r in [good, *bad]).encode()
    r = parse_file(data, "x.jsonl")
    assert r.trajectories == []
    assert [(e.file, e.line, e.field) for e in r.errors] == [
        ("x.jsonl", 2, "tools"), ("x.jsonl", 3, "answers[0].name"), ("x.jsonl", 4, "tools[0].parameters.x"),
        ("x.jsonl", 5, "query")]


def test_parameters_already_written_as_a_schema_are_kept_with_bfcl_types_mapped():
    row = {**records(SAMPLE)[0], "tools": json.dumps([{"name": "f", "parameters": {
        "type": "dict", "properties": {"x": {"type": "float"}}, "required": ["x"]}}]), "answers": "[]"}
    assert to_trajectory(row).tools[0]["parameters"] == {
        "type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
