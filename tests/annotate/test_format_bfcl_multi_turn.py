"""BFCL multi-turn question files: every turn kept (the empty miss-func turns too), per-turn gold kept,
the class func docs given as the tools file, and nothing of a record lost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from annotate import formats
from annotate.formats import bfcl_multi_turn
from annotate.ingest.reader import detect_format, parse_file
from tests.annotate.format_checks import (
    FIXTURES, missing_leaves, raw_export, raw_round_trip, records,
)

DIR = FIXTURES / "bfcl_multi_turn"
VARIANTS = ("base", "miss_func", "miss_param")


def question_file(variant):
    return DIR / f"BFCL_v4_multi_turn_{variant}.json"


def answer_file(variant):
    return DIR / "possible_answer" / f"BFCL_v4_multi_turn_{variant}.json"


def imported(variant, tools=None):
    result = parse_file(question_file(variant).read_bytes(), question_file(variant).name,
                                  answers=answer_file(variant).read_bytes(), tools=tools)
    assert result.errors == []
    return [t for _, t in result.trajectories]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_question_turn_is_a_turn_with_its_gold(variant):
    questions, answers = records(question_file(variant)), {a["id"]: a for a in records(answer_file(variant))}
    trajs = imported(variant)
    assert len(trajs) == len(questions)
    for q, t in zip(questions, trajs):
        assert t.meta.external_id == q["id"]
        assert [turn.user for turn in t.turns] == ["\n\n".join(m["content"] for m in turn) for turn in q["question"]]
        assert all(turn.steps == [] for turn in t.turns)
        assert t.meta.reference == {"ground_truth": answers[q["id"]]["ground_truth"]}
        assert len(t.meta.reference["ground_truth"]) == len(t.turns)
        assert {k: t.meta.extra[k] for k in ("initial_config", "path", "involved_classes")} == {
            k: q[k] for k in ("initial_config", "path", "involved_classes")}


def test_the_empty_miss_func_turn_says_which_functions_arrive_there():
    questions = records(question_file("miss_func"))
    for q, t in zip(questions, imported("miss_func")):
        (at, names), = q["missed_function"].items()
        assert q["question"][int(at)] == [] and t.turns[int(at)].user == ""
        assert t.turns[int(at)].extra == {"missed_function": names}
        assert [i for i, turn in enumerate(t.turns) if turn.extra] == [int(at)]
        assert t.meta.extra["missed_function"] == q["missed_function"]


@pytest.mark.parametrize("variant, case_types", [
    ("base", ["multi_turn", "tool_required"]),
    ("miss_func", ["multi_turn", "tool_required", "tool_unavailable"]),
    ("miss_param", ["clarification", "multi_turn", "tool_required"]),
])
def test_the_variant_sets_the_case_types_and_tag(variant, case_types):
    for t in imported(variant):
        assert t.meta.case_types == case_types
        assert t.meta.tags == [f"bfcl:multi_turn_{variant}"]


def test_the_func_docs_tools_file_gives_each_record_its_classes_tools_only():
    tools = bfcl_multi_turn.func_doc_tools(DIR / "multi_turn_func_doc")
    docs = records(DIR / "multi_turn_func_doc" / "math_api.json")
    assert [t["bfcl_class"] for t in tools] == ["MathAPI"] * len(docs)
    record = records(question_file("base"))[1]
    assert record["involved_classes"] == ["GorillaFileSystem"]
    assert bfcl_multi_turn.to_trajectory(record, tools=tools).tools == []
    with_math = {**record, "involved_classes": ["GorillaFileSystem", "MathAPI"]}
    t = bfcl_multi_turn.to_trajectory(with_math, tools=tools)
    assert [x["name"] for x in t.tools] == [d["name"] for d in docs]
    assert all("bfcl_class" not in x for x in t.tools)
    mean = t.tool_by_name("mean")
    assert mean["parameters"]["type"] == "object"
    assert mean["parameters"]["properties"]["numbers"] == {
        "type": "array", "items": {"type": "number"}, "description": "List of numbers to calculate the mean of. "}
    untagged = [{k: v for k, v in d.items()} for d in docs[:2]]
    assert [x["name"] for x in bfcl_multi_turn.to_trajectory(record, tools=untagged).tools] == ["absolute_value", "add"]


def test_the_tools_command_writes_the_tagged_list_the_importer_reads():
    out = subprocess.run([sys.executable, "-m", "annotate.formats.bfcl_multi_turn", str(DIR / "multi_turn_func_doc")],
                         capture_output=True, check=True, cwd=FIXTURES.parents[1]).stdout
    trajs = parse_file(json.dumps([{**records(question_file("base"))[0],
                                              "involved_classes": ["MathAPI"]}]).encode(), "q.json", tools=out)
    assert trajs.errors == [] and len(trajs.trajectories[0][1].tools) == len(json.loads(out))


@pytest.mark.parametrize("variant", VARIANTS)
def test_nothing_of_a_record_or_its_gold_is_lost_in_the_raw_export(variant):
    answers = {a["id"]: a for a in records(answer_file(variant))}
    for q, t in zip(records(question_file(variant)), imported(variant)):
        assert missing_leaves({"q": q, "gold": answers[q["id"]]["ground_truth"]}, raw_export(t)) == []


@pytest.mark.parametrize("variant", ["base", "miss_param", "miss_func"])
def test_the_raw_export_round_trips(variant):
    for t in imported(variant):
        assert raw_round_trip(t) == t


def test_it_is_detected_and_plain_bfcl_is_not_taken():
    assert detect_format(records(question_file("miss_func"))[0]) == "bfcl_multi_turn"
    plain = {"id": "simple_python_0", "question": [[{"role": "user", "content": "Area?"}]], "function": []}
    assert detect_format(plain) == "bfcl"


def test_malformed_records_are_refused_with_file_line_and_field():
    good = records(question_file("base"))[3]
    bad_role = {**good, "question": [[{"role": "assistant", "content": "x"}], *good["question"][1:]]}
    no_id = {k: v for k, v in good.items() if k != "id"}
    data = "\n".join(json.dumps(r) for r in (good, bad_role, no_id)).encode()
    r = parse_file(data, "mt.jsonl")
    assert r.trajectories == []
    assert [(e.file, e.line, e.field) for e in r.errors] == [("mt.jsonl", 2, "question[0][0].role"), ("mt.jsonl", 3, "id")]
    short = {"id": good["id"], "ground_truth": [["ls()"]]}
    r = parse_file(json.dumps(good).encode(), "mt.jsonl", answers=json.dumps(short).encode())
    assert [(e.line, e.field) for e in r.errors] == [(1, "answer.ground_truth")]
    assert "1 turns of gold calls, the question 2 turns" in r.errors[0].message


def test_unknown_keys_of_a_message_and_of_an_answer_are_kept():
    q = records(question_file("base"))[3]
    q = {**q, "question": [[{**q["question"][0][0], "name": "alex"}], q["question"][1]], "split": "v4"}
    t = bfcl_multi_turn.to_trajectory(q, answer={"id": q["id"], "ground_truth": [[], []], "note": "checked"})
    assert t.turns[0].extra == {"message_extra": {"0": {"name": "alex"}}}
    assert t.meta.reference == {"ground_truth": [[], []], "note": "checked"}
    assert t.meta.extra["split"] == "v4"


def test_per_turn_gold_is_not_mistaken_for_a_single_turn_bfcl_answer():
    # The single-turn scorer reads {"ground_truth": [{fn: {arg: [values]}}]}; multi-turn gold (call
    # strings per turn) must not be turned into a wrong one-step reference.
    from evaluation.scoring import reference_from_gold_answers, references_from_trajectory

    for t in imported("base"):
        assert reference_from_gold_answers(t) is None and references_from_trajectory(t) == []
