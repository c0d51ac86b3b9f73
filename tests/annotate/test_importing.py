"""Reading whole files: every bad input gets a clear problem naming file, line and field, and
nothing comes back unless skip_invalid asks for the good records."""

from __future__ import annotations

import json

import pytest

from annotate import formats
from annotate.formats import dump_jsonl, export_records
from annotate.ingest.reader import ImportIssue, detect_format, parse_file
from annotate.trajectory import SchemaError

GOOD = {"turns": [{"user": "Weather in Paris?", "assistant_tool": {"name": "w", "arguments": {"city": "Paris"}},
                   "tool_result": "18 C", "assistant_answer": "18 C."}]}
GOOD_LINE = json.dumps(GOOD).encode()


def jsonl(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (case, file bytes, line, field, words in the message)
BAD_FILES = [
    ("a malformed JSON line", jsonl(GOOD_LINE, b'{"turns": [', GOOD_LINE), 2, "", "not valid JSON"),
    ("a wrong type", jsonl(GOOD_LINE, GOOD_LINE, b'{"turns": [{"user": ["not", "text"]}]}'), 3, "turns[0].user",
     "must be a string"),
    ("an orphan tool result", jsonl(GOOD_LINE, b'{"turns": [{"user": "u", "tool_result": {"call_id": "c7", "content": "x"}}]}'),
     2, "turns[0].tool_result.call_id", "orphan tool result"),
    ("absurdly nested arguments",
     jsonl(b'{"turns": [{"user": "u", "assistant_tool": {"name": "w", "arguments": {"a": ' + deep_json(100) + b"}}}]}",
           GOOD_LINE), 1, "turns[0].assistant_tool.arguments", "nested deeper than 64 levels"),
    ("nesting too deep for the JSON reader", jsonl(GOOD_LINE, b'{"turns": ' + deep_json(100_000) + b"}"), 2, "",
     "nested too deeply"),
    ("a record that is not an object", jsonl(GOOD_LINE, b'["turns"]'), 2, "", "JSON object"),
    ("a record in no known format", jsonl(b'{"dialogue": []}'), 1, "", "cannot tell the format"),
    ("a BFCL answers file given as the questions", jsonl(b'{"id": "simple_0", "ground_truth": []}'), 1, "ground_truth",
     "possible-answer file"),
]


def test_a_record_in_no_format_is_told_the_rule_of_every_registered_format():
    extra = formats.register(formats.Format("made_up_test", detect=lambda r: "zzz" in r, read=lambda r, **kw: None,
                                            rule="a 'zzz' key"))
    try:
        [issue] = parse_file(jsonl(b'{"dialogue": []}'), "upload.jsonl").errors
    finally:
        del formats.FORMATS[extra.name]
    for f in [*formats.FORMATS.values(), extra]:
        assert f"{f.name}: {f.rule}" in issue.message


@pytest.mark.parametrize("case, data, line, field, words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_record_fails_the_whole_file_with_file_line_and_field(case, data, line, field, words):
    r = parse_file(data, "upload.jsonl")
    assert r.trajectories == [] and not r.ok
    [issue] = r.errors
    assert (issue.file, issue.line, issue.field) == ("upload.jsonl", line, field)
    assert words in issue.message
    assert str(issue).startswith(f"upload.jsonl:{line}: ")


@pytest.mark.parametrize("case, data, line, field, words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_skip_invalid_keeps_the_good_records_and_reports_the_bad_one(case, data, line, field, words):
    r = parse_file(data, "upload.jsonl", skip_invalid=True)
    good_lines = [i + 1 for i, raw in enumerate(data.split(b"\n")) if raw == GOOD_LINE]
    assert [ln for ln, _ in r.trajectories] == good_lines
    assert [(e.line, e.field) for e in r.errors] == [(line, field)]


def test_bytes_that_are_not_utf8_are_reported_with_line_and_offset():
    data = jsonl(GOOD_LINE, b'{"turns": [{"user": "caf\xe9"}]}', GOOD_LINE)
    r = parse_file(data, "latin1.jsonl")
    assert r.trajectories == []
    [issue] = r.errors
    offset = data.index(b"\xe9")
    assert (issue.line, issue.field) == (2, "")
    assert "not UTF-8" in issue.message and f"byte offset {offset}" in issue.message
    r = parse_file(data, "latin1.jsonl", skip_invalid=True)
    assert [ln for ln, _ in r.trajectories] == [1, 3]


@pytest.mark.parametrize("data", [b"", b"  \n\n  ", "\ufeff".encode()], ids=["empty", "blank", "a lone BOM"])
def test_an_empty_file_is_an_error(data):
    r = parse_file(data, "empty.jsonl")
    assert [(e.line, e.message) for e in r.errors] == [(None, "the file is empty")]


def test_an_empty_array_is_an_error():
    assert [e.message for e in parse_file(b"[]", "none.json").errors] == ["the file holds no records"]


def test_a_file_over_the_size_limit_is_refused_unread():
    data = jsonl(*[GOOD_LINE] * 10)
    r = parse_file(data, "big.jsonl", max_bytes=len(data) - 1)
    assert r.trajectories == []
    [issue] = r.errors
    assert issue.line is None and f"{len(data):,} bytes" in issue.message and f"{len(data) - 1:,}" in issue.message
    assert parse_file(data, "big.jsonl", max_bytes=len(data)).ok


def test_an_unknown_format_name_is_an_error_naming_the_choices():
    r = parse_file(jsonl(GOOD_LINE), "a.jsonl", fmt="csv")
    [issue] = r.errors
    assert issue.field == "format" and "'csv'" in issue.message and "sharegpt" in issue.message


def test_a_named_format_is_used_even_where_auto_would_pick_another():
    r = parse_file(jsonl(GOOD_LINE), "a.jsonl", fmt="messages")
    assert [(e.line, e.field) for e in r.errors] == [(1, "messages")]


ARRAY = b"""[
  {"turns": [{"user": "one", "assistant_answer": "1"}]},
  {
    "turns": [{"user": "two", "assistant_answer": "2"}]
  },

  {"turns": [{"user": "three", "assistant_answer": "3"}]}
]
"""


def test_a_json_array_reports_the_line_each_record_starts_on():
    r = parse_file(ARRAY, "a.json")
    assert [(ln, t.turns[0].user) for ln, t in r.trajectories] == [(2, "one"), (3, "two"), (7, "three")]


def test_a_bad_record_in_an_array_is_named_by_its_first_line():
    data = ARRAY.replace(b'"user": "two"', b'"user": 2')
    assert [(e.line, e.field) for e in parse_file(data, "a.json").errors] == [(3, "turns[0].user")]


@pytest.mark.parametrize("data, line, words", [
    (b'[\n {"turns": []},\n {"turns": [}\n]', 3, "not valid JSON"),
    (b'[\n {"turns": []}\n {"turns": []}\n]', 3, "expected ',' or ']'"),
    (b'[{"turns": []}] trailing', 1, "after the closing"),
], ids=["malformed record", "missing comma", "text after the array"])
def test_a_broken_array_is_reported_where_it_breaks(data, line, words):
    r = parse_file(data, "a.json")
    assert r.trajectories == []
    assert [e.line for e in r.errors] == [line] and words in r.errors[0].message


def test_a_single_pretty_printed_object_is_one_record():
    r = parse_file(json.dumps(GOOD, indent=2).encode(), "one.json")
    assert r.ok and [ln for ln, _ in r.trajectories] == [1]


def test_records_get_their_source_and_format():
    r = parse_file(jsonl(GOOD_LINE), "mine.jsonl")
    assert (r.format, r.records, r.trajectories[0][1].meta.source) == ("raw", 1, "raw:mine.jsonl")


@pytest.mark.parametrize("record, fmt", [
    ({"turns": []}, "raw"),
    ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant_answer", "content": "a"}]}, "raw"),
    ({"messages": [{"role": "user", "content": "u"}]}, "messages"),
    ({"conversations": [{"role": "user", "content": "u"}]}, "messages"),
    ({"conversations": [{"from": "human", "value": "u"}]}, "sharegpt"),
    ({"id": "simple_0", "question": [], "function": []}, "bfcl"),
    ({"task_id": 1, "traj": []}, "tau_bench"),
    ({"instruction": "i", "input": "", "output": "o"}, "toolrl"),
    ({"example": "USER: hi"}, "toolrl"),
], ids=lambda v: v if isinstance(v, str) else next(iter(v)))
def test_it_detects_each_format_from_a_record(record, fmt):
    assert detect_format(record) == fmt


def test_adp_standardized_records_get_a_pointer_to_the_supported_version():
    with pytest.raises(SchemaError, match="Agent Data Protocol"):
        detect_format({"id": "x", "content": [{"class_": "api_action", "function": "f", "kwargs": {}}]})


BFCL_Q = b'{"id": "simple_python_0", "question": [[{"role": "user", "content": "Area?"}]], "function": [{"name": "area"}]}'


def test_bfcl_answers_become_the_gold_reference():
    answers = jsonl(b'{"id": "simple_python_0", "ground_truth": [{"area": {"base": [10]}}]}')
    r = parse_file(jsonl(BFCL_Q), "q.json", answers=answers)
    assert r.trajectories[0][1].meta.reference == {"ground_truth": [{"area": {"base": [10]}}]}


@pytest.mark.parametrize("answers, file, line, field, words", [
    (jsonl(b'{"id": "simple_python_1", "ground_truth": []}'), "q.json", 1, "id", "no possible answer"),
    (jsonl(b'{"id": "simple_python_0", "ground_truth": 3}'), "a.json", 1, "ground_truth", "ground_truth list"),
    (jsonl(b'{"id": "simple_python_0",'), "a.json", 1, "", "not valid JSON"),
], ids=["an answer missing", "a malformed answer", "an answers file that is not JSON"])
def test_problems_with_the_answers_file_name_that_file(answers, file, line, field, words):
    r = parse_file(jsonl(BFCL_Q), "q.json", answers=answers, answers_filename="a.json")
    assert r.trajectories == []
    [issue] = r.errors
    assert (issue.file, issue.line, issue.field) == (file, line, field) and words in issue.message


def test_a_tools_file_fills_in_records_without_tools():
    tau = b'{"task_id": 1, "reward": 1.0, "traj": [{"role": "user", "content": "hi"}]}'
    tools = b'[{"type": "function", "function": {"name": "get_user", "parameters": {"type": "object"}}}]'
    r = parse_file(jsonl(tau), "t.json", tools=tools)
    assert [t["name"] for t in r.trajectories[0][1].tools] == ["get_user"]
    bad = parse_file(jsonl(tau), "t.json", tools=b'[{"description": "no name"}]', tools_filename="tools.json")
    assert [(e.file, e.field) for e in bad.errors] == [("tools.json", "[0].name")]


def test_export_records_and_dump_jsonl_read_back_the_same():
    r = parse_file(ARRAY, "a.json")
    trajs = [t for _, t in r.trajectories]
    for fmt in ("raw", "messages"):
        back = parse_file(dump_jsonl(export_records(trajs, fmt)).encode(), "back.jsonl")
        assert [t for _, t in back.trajectories] == trajs


def test_export_to_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="sharegpt"):
        export_records([], "sharegpt")


def test_an_issue_reads_as_file_line_field_message():
    assert str(ImportIssue("a.jsonl", 3, "turns[0].user", "must be a string")) == "a.jsonl:3: turns[0].user: must be a string"
    assert str(ImportIssue("a.jsonl", None, "", "the file is empty")) == "a.jsonl: the file is empty"


@pytest.mark.parametrize("data, line, constant", [
    (b'{"turns": [{"user": "hi", "assistant_answer": "x"}]}\n{"turns": [], "meta": {"extra": {"x": NaN}}}\n', 2, "NaN"),
    (b'[{"turns": []},\n {"turns": [], "meta": {"reference": -Infinity}}]', 2, "-Infinity"),
    (b'{\n "turns": [],\n "meta": {"reference": Infinity}\n}\n', 1, "Infinity"),
    (b'{"turns": [{"user": "a", "assistant_tool": {"name": "f", "arguments": {"x": 1e999}}}]}\n', 1, "1e999"),
])
def test_nan_and_infinity_are_reported_where_they_are(data, line, constant):
    # Python's reader takes them but JSON and the database's JSON columns do not: reported with
    # the line instead of failing the insert.
    r = parse_file(data, "a.jsonl")
    assert not r.trajectories
    assert [(e.line, e.message.split(" is ")[0]) for e in r.errors] == [(line, f"not valid JSON: {constant}")]


def test_ordinary_floats_are_read_as_before():
    r = parse_file(b'{"turns": [], "meta": {"extra": {"a": 1.5, "b": -0.0, "c": 1E3, "d": 2.5e-8}}}', "a.jsonl")
    assert r.trajectories[0][1].meta.extra == {"a": 1.5, "b": -0.0, "c": 1000.0, "d": 2.5e-8}
