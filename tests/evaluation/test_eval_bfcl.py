"""BFCL simple_python and multiple: every gold answer, written as a model would write it, parses and
scores as correct under BFCL's rules; irrelevance items want no call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.parse import parse_output
from evaluation.scoring import aggregate, reference_from_bfcl, reference_output, score_output

BFCL = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "bfcl"


def load(category: str):
    questions_path = BFCL / f"BFCL_v4_{category}.json"
    if not questions_path.exists():
        pytest.skip(f"needs the shared BFCL fixtures at {BFCL.resolve()} (absent in this checkout)")
    questions = [json.loads(line) for line in questions_path.read_text().splitlines() if line.strip()]
    answers_path = BFCL / "possible_answer" / f"BFCL_v4_{category}.json"
    if not answers_path.exists():
        return [(q, None) for q in questions]
    answers = {a["id"]: a for a in map(json.loads, answers_path.read_text().splitlines())}
    return [(q, answers[q["id"]]) for q in questions]


@pytest.fixture(scope="module")
def gold_items():
    return {category: [reference_from_bfcl(q, a) for q, a in load(category)] for category in ("simple_python", "multiple")}


@pytest.mark.parametrize("category, count", [("simple_python", 400), ("multiple", 200)])
@pytest.mark.parametrize("style", ["tool_call", "python"])
def test_every_bfcl_gold_answer_parses_and_scores_as_correct(gold_items, category, count, style):
    refs = gold_items[category]
    assert len(refs) == count
    failures, scores = [], []
    for ref in refs:
        text = reference_output(ref, style)
        parsed = parse_output(text)
        scores.append(score_output(parsed, ref))
        if not scores[-1].correct or [c.name for c in parsed.tool_calls] != [c["name"] for c in ref.calls]:
            failures.append((ref.item_id, text[:200], scores[-1].labels, scores[-1].reasons[:2]))
    assert failures == [], f"{len(failures)} gold answers fail, first: {failures[:3]}"
    table = aggregate(scores)
    assert table["metrics"]["calls_ok"]["rate"] == 1.0
    assert table["metrics"]["schema_ok"]["rate"] == 1.0


def test_the_gold_answer_is_the_first_acceptable_value_without_optional_arguments(gold_items):
    ref = next(r for r in gold_items["simple_python"] if r.item_id == "simple_python_0")
    # {"base": [10], "height": [5], "unit": ["units", ""]}: "unit" may be omitted.
    assert ref.calls == [{"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}]
    assert score_output(parse_output('calculate_triangle_area(base=10, height=5, unit="units")'), ref).correct
    assert score_output(parse_output("calculate_triangle_area(base=10, height=5.0)"), ref).labels == ["arg_type_error"]


def test_a_wrong_value_for_a_bfcl_item_is_an_argument_value_error(gold_items):
    failures = 0
    for ref in gold_items["simple_python"][:50]:
        call = ref.calls[0]
        key = next((k for k, v in call["arguments"].items() if isinstance(v, str)), None)
        if key is None:
            continue
        wrong = {**call["arguments"], key: call["arguments"][key] + " nowhere"}
        s = score_output(parse_output(json.dumps({"name": call["name"], "arguments": wrong})), ref)
        assert "arg_value_error" in s.labels and not s.correct, (ref.item_id, s.labels)
        failures += 1
    assert failures > 10


def test_multiple_items_pick_the_tool_among_several(gold_items):
    ref = next(r for r in gold_items["multiple"] if len(r.tools) > 1)
    other = next(t["name"] for t in ref.tools if t["name"] != ref.calls[0]["name"])
    s = score_output(parse_output(json.dumps({"name": other, "arguments": ref.calls[0]["arguments"]})), ref)
    assert "wrong_tool" in s.labels and s.metrics["tool_selection_ok"] is False


def test_bfcl_irrelevance_items_want_no_call():
    items = load("irrelevance")
    assert len(items) == 240
    refs = [reference_from_bfcl(q) for q, _ in items]
    oracle = aggregate([score_output(parse_output(reference_output(r)), r) for r in refs])
    assert oracle["metrics"]["no_tool_ok"]["rate"] == 1.0 and oracle["metrics"]["decline_ok"]["rate"] == 1.0
    # As BFCL: a plain answer without a call is fine too; any call is not.
    assert score_output(parse_output("The answer is 42."), refs[0]).correct
    forced = reference_output(reference_from_bfcl(items[0][0], {"ground_truth": [{items[0][0]["function"][0]["name"]: {}}]}))
    s = score_output(parse_output(forced), refs[0])
    assert "unnecessary_tool_call" in s.labels and not s.correct


def test_an_imported_bfcl_trajectory_gives_the_same_reference_as_the_raw_item():
    from annotate.formats.bfcl import to_trajectory
    from evaluation.scoring import references_from_trajectory

    for category in ("simple_python", "multiple", "irrelevance"):
        for q, a in load(category)[:40]:
            refs = references_from_trajectory(to_trajectory(q, answer=a))
            assert len(refs) == 1
            ref = refs[0]
            assert ref.item_id == f"{q['id']}#t0s0"
            raw = reference_from_bfcl(q, a)
            assert (ref.decision, ref.calls, ref.acceptable, ref.case_types) == (raw.decision, raw.calls, raw.acceptable, raw.case_types)
            for style in ("tool_call", "python"):
                assert score_output(parse_output(reference_output(ref, style)), ref).correct, (q["id"], style)
