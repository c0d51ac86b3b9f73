"""Validation findings, per step, never raising on user data (no database)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from annotate import findings
from annotate.findings import argument_errors, validate
from annotate.trajectory import Trajectory
from tests.conftest import shared_path

WEATHER = {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                     "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"]}}


def traj(steps, tools=(WEATHER,), user="q"):
    return Trajectory.from_dict({"tools": list(tools), "turns": [{"user": user, "steps": steps}]})


def call(args, name="get_weather", cid="c1"):
    return {"kind": "tool_call", "name": name, "arguments": args, "call_id": cid}


def result(cid="c1", text="ok"):
    return {"kind": "tool_result", "call_id": cid, "text": text}


CASES = [
    # (steps, expected [(code, step index, field)])
    ([call({"city": "Paris"}), result(), {"kind": "answer", "text": "Sunny"}], []),
    ([call({"city": "Paris"}, name="get_wether"), result()], [("unknown_tool", 0, "name")]),
    ([call({}), result()], [("schema_violation", 0, "arguments.city")]),
    ([call({"city": 5}), result()], [("schema_violation", 0, "arguments.city")]),
    ([call({"city": "x", "unit": "kelvin"}), result()], [("schema_violation", 0, "arguments.unit")]),
    ([call({"city": "x", "days": 1.5}), result()], [("schema_violation", 0, "arguments.days")]),
    ([call("city=Paris"), result()], [("arguments_not_object", 0, "arguments")]),
    ([result("zz")], [("result_without_call", 0, "call_id")]),
    ([call({"city": "Paris"})], [("call_without_result", 0, "call_id")]),
    ([call({"city": "P"}), result(), {"kind": "answer", "text": "  "}], [("empty_answer", 2, "text")]),
    # Parallel calls, results in another order.
    ([call({"city": "A"}, cid="a"), call({"city": "B"}, cid="b"), result("b"), result("a"),
      {"kind": "answer", "text": "done"}], []),
]


@pytest.mark.parametrize("steps,expected", CASES)
def test_findings_name_the_step_and_field(steps, expected):
    got = [(f.code, f.step, f.field) for f in validate(traj(steps))]
    assert got == expected


def test_findings_carry_a_severity_for_the_audit():
    f = validate(traj([call({})]))
    assert {x.severity for x in f} == {"error", "warning"}
    assert all(x.to_dict()["severity"] in ("error", "warning") for x in f)


def test_an_invalid_tool_schema_is_a_finding_not_a_crash():
    bad = {"name": "t", "parameters": {"type": "objectx"}}
    errs = argument_errors(bad["parameters"], {})
    assert errs and "schema is invalid" in errs[0][1]


def test_bfcl_type_names_are_mapped_to_json_schema():
    schema = {"type": "dict", "properties": {"x": {"type": "float"}, "t": {"type": "tuple", "items": {"type": "integer"}},
                                            "a": {"type": "any"}}, "required": ["x"]}
    assert argument_errors(schema, {"x": 1, "t": [1, 2], "a": {"whatever": 1}}) == []
    assert [p for p, _ in argument_errors(schema, {"x": "1"})] == ["x"]


# The fast path for simple schemas must agree with jsonschema on every input.
SCHEMAS = [
    WEATHER["parameters"],
    {"type": "object", "properties": {"n": {"type": "number"}, "b": {"type": "boolean"}, "e": {"enum": [1, "a", None]}},
     "required": ["n"]},
    {"type": "object", "properties": {"l": {"type": ["string", "null"]}, "arr": {"type": "array", "items": {"type": "string"}}}},
]
json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False) |
                           st.sampled_from(["", "c", "f", "a", "Paris"]),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["x", "y"]), c, max_size=2),
                           max_leaves=5)
arguments = st.dictionaries(st.sampled_from(["city", "days", "unit", "n", "b", "e", "l", "arr", "other"]), json_values,
                            max_size=4)


@settings(max_examples=300, deadline=None)
@given(schema=st.sampled_from(SCHEMAS), args=arguments)
def test_the_fast_check_agrees_with_jsonschema(schema, args):
    findings._FAST_CACHE.clear()
    fast = argument_errors(schema, args)
    v = findings._validator(json.dumps(schema, sort_keys=True))
    assert (fast == []) == (not list(v.iter_errors(args)))


def pick(options: dict) -> dict:
    """BFCL's {arg: [acceptable values]} → one concrete arguments dict (nested dicts alike)."""
    out = {}
    for k, values in options.items():
        given = [v for v in values if v != ""]  # "" = may be omitted (BFCL lists it first at times)
        if given:
            out[k] = concrete(given[0])
    return out


def concrete(v):
    if isinstance(v, dict):
        return pick(v)
    if isinstance(v, list):
        return [concrete(x) for x in v]
    return v


def test_every_bfcl_function_schema_validates_its_gold_answer():
    """BFCL gold answers (first acceptable value, optional arguments left out) pass their schemas."""
    root = shared_path("fixtures", "bfcl")
    checked = mismatched = 0
    for name in ("simple_python", "multiple"):
        questions = {json.loads(l)["id"]: json.loads(l) for l in (root / f"BFCL_v4_{name}.json").read_text().splitlines()}
        for line in (root / "possible_answer" / f"BFCL_v4_{name}.json").read_text().splitlines():
            gold = json.loads(line)
            fns = {f["name"]: f for f in questions[gold["id"]]["function"]}
            for call_ in gold["ground_truth"]:
                (fn, args), = call_.items()
                chosen = pick(args)
                errs = argument_errors(fns[fn]["parameters"], chosen)
                checked += 1
                # A handful of BFCL gold values contradict their own declared type (e.g. True for a
                # string); anything else (required, enum, unknown type names) would be our bug.
                assert all("is not of type" in m for _, m in errs), (gold["id"], errs)
                mismatched += bool(errs)
    assert checked == 600 and mismatched <= 6, mismatched
