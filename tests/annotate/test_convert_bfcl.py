"""BFCL question files, with their possible answers as the gold reference."""

from __future__ import annotations

import pytest

from annotate.formats.bfcl import category_of, to_trajectory
from annotate.trajectory import SchemaError
from tests.annotate.trajectory_shapes import shape

FUNCTION = {"name": "calc.area", "description": "Area of a triangle.", "parameters": {
    "type": "dict", "properties": {"base": {"type": "integer"}, "height": {"type": "float"},
                                   "dims": {"type": "tuple", "items": {"type": "float"}}, "extra": {"type": "any"}},
    "required": ["base"]}}


def question(id, *turns, function=FUNCTION):
    return {"id": id, "question": [[{"role": "user", "content": t}] for t in turns], "function": [function]}


# (case, record, answer, case types, reference)
RECORDS = [
    ("a simple question with its answer", question("simple_python_0", "Area of base 10?"),
     {"id": "simple_python_0", "ground_truth": [{"calc.area": {"base": [10]}}]},
     ["tool_required"], {"ground_truth": [{"calc.area": {"base": [10]}}]}),
    ("a question without an answer file", question("multiple_3", "Area?"), None, ["tool_required"], None),
    ("an irrelevance question: no call is right", question("irrelevance_5", "Who won in 1998?"), None,
     ["irrelevant_tools"], {"ground_truth": []}),
    ("a live irrelevance question", question("live_irrelevance_3-0-1", "Hi"), None, ["irrelevant_tools"],
     {"ground_truth": []}),
]


@pytest.mark.parametrize("case, record, answer, case_types, reference", RECORDS, ids=[r[0] for r in RECORDS])
def test_it_keeps_the_question_the_category_and_the_gold(case, record, answer, case_types, reference):
    t = to_trajectory(record, answer=answer)
    assert shape(t) == [("user", record["question"][0][0]["content"])]
    assert (t.meta.case_types, t.meta.reference, t.meta.external_id) == (case_types, reference, record["id"])
    assert t.meta.tags == [f"bfcl:{category_of(record['id'])}"]


def test_bfcl_type_names_become_json_schema():
    params = to_trajectory(question("simple_python_1", "x")).tools[0]["parameters"]
    assert params["type"] == "object"
    assert {k: v.get("type") for k, v in params["properties"].items()} == {
        "base": "integer", "height": "number", "dims": "array", "extra": None}
    assert params["properties"]["dims"]["items"] == {"type": "number"}


def test_several_turns_and_a_system_message():
    rec = {"id": "multi_turn_base_0", "function": [FUNCTION], "question": [
        [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "First"}],
        [{"role": "user", "content": "Second"}]]}
    t = to_trajectory(rec)
    assert (t.system, shape(t)) == ("Be exact.", [("user", "First"), ("user", "Second")])


BAD = [
    ("no id", {"question": [], "function": []}, None, "id"),
    ("question is not a list", {"id": "simple_0", "question": 3, "function": []}, None, "question"),
    ("a message with an unexpected role", {"id": "simple_0", "question": [[{"role": "tool", "content": "x"}]],
                                           "function": []}, None, "question[0][0].role"),
    ("a function with no name", {"id": "simple_0", "question": [], "function": [{"parameters": {}}]}, None,
     "function[0].name"),
    ("an answer without ground_truth", question("simple_python_0", "x"), {"id": "simple_python_0"},
     "answer.ground_truth"),
]


@pytest.mark.parametrize("case, record, answer, field", BAD, ids=[b[0] for b in BAD])
def test_a_bad_record_is_a_schema_error_naming_the_field(case, record, answer, field):
    with pytest.raises(SchemaError) as err:
        to_trajectory(record, answer=answer)
    assert err.value.field == field
