"""Scoring: an oracle scores 100 %, hand-made bad outputs get the annotators' labels, tables add up."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.trajectory import CASE_TYPES, DEFAULT_ERROR_LABELS
from evaluation.parse import parse_output
from evaluation.scoring import (
    DECISIONS,
    METRICS,
    ItemScore,
    Reference,
    aggregate,
    breakdown,
    compare_runs,
    confusion,
    label_table,
    reference_at,
    reference_output,
    references_from_trajectory,
    score_output,
    wilson_interval,
)
from tests.evaluation.cases import TRAJECTORIES


def refs_by_id():
    return {r.item_id: r for t in TRAJECTORIES for r in references_from_trajectory(t)}


REFS = refs_by_id()


def oracle_scores(style):
    return [score_output(parse_output(reference_output(r, style)), r) for r in REFS.values()]


# --- the oracle ---------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["tool_call", "python", "json"])
def test_an_oracle_that_returns_the_references_scores_100_percent_on_every_metric(style):
    table = aggregate(oracle_scores(style))
    for name in METRICS:
        m = table["metrics"][name]
        assert m["n"] > 0, f"{name} never applied: the oracle check would be vacuous"
        assert m["k"] == m["n"], f"{name}: {m['k']}/{m['n']}"
    assert table["counts"]["n_redundant"]["mean"] == 0
    assert table["counts"]["n_calls"]["mean"] > 0


def test_the_oracle_covers_every_case_type_and_every_decision():
    scores = oracle_scores("tool_call")
    assert {c for s in scores for c in s.case_types} == set(CASE_TYPES)
    assert {s.gold_decision for s in scores} == set(DECISIONS)
    for case_type, table in breakdown(scores).items():
        assert table["metrics"]["correct"]["rate"] == 1.0, case_type


def test_each_decision_point_of_a_trajectory_becomes_a_reference():
    # The parallel-call trajectory: one decision to call (two calls), one to answer.
    parallel = [r for r in REFS.values() if r.item_id.startswith("parallel")]
    assert [r.decision for r in parallel] == ["call", "answer"]
    assert [c["arguments"]["city"] for c in parallel[0].calls] == ["Paris", "Rome"]
    assert len(parallel[1].tool_results) == 2 and all(r["recent"] for r in parallel[1].tool_results)


def test_a_reference_points_at_its_gold_step():
    for t in TRAJECTORIES:
        for ref in references_from_trajectory(t):
            step = t.turns[ref.turn_index].steps[ref.step_index]
            assert step.kind == ("tool_call" if ref.decision == "call" else "answer")
            assert ref.item_id.endswith(f"#t{ref.turn_index}s{ref.step_index}")
            assert (step.text == ref.answer) if step.kind == "answer" else (step.name == ref.calls[0]["name"])


def test_a_clarification_reference_knows_which_arguments_are_missing():
    ref = REFS["clarification#t0s0"]
    assert ref.decision == "ask"
    assert ref.missing_args == ["origin", "date"]  # the destination was given by the user


def test_retrying_a_failed_call_is_not_a_repeat():
    retry = REFS["tool_failure#t0s2"]
    assert retry.decision == "call" and retry.context_calls == []
    s = score_output(parse_output(reference_output(retry)), retry)
    assert s.n_redundant == 0 and s.correct


def test_a_reference_point_must_be_a_decision():
    with pytest.raises(ValueError, match="not a decision"):
        reference_at(TRAJECTORIES[0], 0, 2)  # a tool result


def test_steps_labelled_as_errors_are_not_used_as_references():
    t = TRAJECTORIES[2]
    bad = type(t).from_dict(t.to_dict())
    bad.turns[0].steps[0].labels = ["goal_partially_completed"]
    assert references_from_trajectory(bad) == []
    assert len(references_from_trajectory(bad, include_labelled=True)) == 1


def test_a_reference_survives_a_round_trip_through_json():
    import json

    for ref in REFS.values():
        assert Reference.from_dict(json.dumps(ref.to_dict())) == ref


# --- hand-made bad outputs ----------------------------------------------------------------

TC = '<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'

BAD_OUTPUTS = [
    # (what it is, reference id, output, expected label)
    ("malformed JSON", "tool_required#t0s1", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>', "format_error"),
    ("unclosed reasoning", "tool_required#t0s1", "<think>I should call get_weather", "format_error"),
    ("empty output", "no_tool#t0s0", "", "format_error"),
    ("wrong tool", "tool_required#t0s1", TC.format(name="get_forecast", args='{"city": "Paris", "days": 1}'), "wrong_tool"),
    ("tool that does not exist", "tool_required#t0s1", TC.format(name="weather_lookup", args='{"city": "Paris"}'), "hallucinated_tool"),
    ("missing required argument", "tool_required#t0s1", TC.format(name="get_weather", args="{}"), "missing_required_arg"),
    ("extra argument", "tool_required#t0s1", TC.format(name="get_weather", args='{"city": "Paris", "country": "FR"}'), "unexpected_arg"),
    ("wrong type", "multi_turn#t1s0", TC.format(name="get_forecast", args='{"city": "Paris", "days": "three"}'), "arg_type_error"),
    ("wrong value", "tool_required#t0s1", TC.format(name="get_weather", args='{"city": "London"}'), "arg_value_error"),
    ("value outside the schema's enum", "tool_required#t0s1", TC.format(name="get_weather", args='{"city": "Paris", "unit": "kelvin"}'), "arg_value_error"),
    ("one of two parallel calls", "parallel#t0s0", TC.format(name="get_weather", args='{"city": "Paris"}'), "wrong_call_count"),
    ("unnecessary call on a no-tool item", "no_tool#t0s0", TC.format(name="get_weather", args='{"city": "Paris"}'), "unnecessary_tool_call"),
    ("answers where a call was needed", "tool_required#t0s1", "It is probably sunny in Paris.", "missed_tool_call"),
    ("a call where clarification was needed", "clarification#t0s0", TC.format(name="book_flight", args='{"origin": "Boston", "destination": "Seattle", "date": "2024-01-01"}'), "missing_clarification"),
    ("answers where clarification was needed", "clarification#t0s0", "Done, you are booked on the next flight to Seattle.", "missing_clarification"),
    ("asks although everything was given", "tool_required#t0s1", "Which city would you like the weather for?", "unnecessary_clarification"),
    ("an answer that ignores the tool result", "tool_required#t0s3", "It is sunny and 25 degrees in Paris.", "ungrounded_answer"),
    ("an answer that ignores an earlier turn's result", "multi_turn#t1s2", "No, it is colder than 15 degrees and will be sunny all week.", "ungrounded_answer"),
    ("pretends the missing tool worked", "tool_unavailable#t0s0", "Your hotel in Rome is booked for next weekend.", "ungrounded_answer"),
    ("a repeated call", "tool_required#t0s1", TC.format(name="get_weather", args='{"city": "Paris"}') * 2, "redundant_call"),
    ("calls again after the result is known", "tool_required#t0s3", TC.format(name="get_weather", args='{"city": "Paris"}'), "redundant_call"),
    ("forces a call with irrelevant tools", "irrelevant_tools#t0s0", TC.format(name="get_weather", args='{"city": "Cupertino"}'), "unnecessary_tool_call"),
    ("writes the tool's reply itself", "tool_required#t0s1", TC.format(name="get_weather", args='{"city": "Paris"}') + "<tool_response>sunny</tool_response>", "format_error"),
    ("misses facts of the gold answer", "parallel#t0s4", "Paris is 18 degrees and cloudy.", "goal_partially_completed"),
]


@pytest.mark.parametrize("what, ref_id, output, label", BAD_OUTPUTS, ids=[b[0] for b in BAD_OUTPUTS])
def test_a_bad_output_is_scored_with_the_expected_error_label(what, ref_id, output, label):
    s = score_output(parse_output(output), REFS[ref_id])
    assert label in s.labels, (s.labels, s.reasons)
    assert not s.correct
    assert s.reasons, "a failed output says why"


def test_every_label_used_is_an_annotator_label():
    known = {code for code, _ in DEFAULT_ERROR_LABELS}
    for _, ref_id, output, _ in BAD_OUTPUTS:
        assert set(score_output(parse_output(output), REFS[ref_id]).labels) <= known


@pytest.mark.parametrize(
    "ref_id, output",
    [
        ("tool_required#t0s1", '[get_weather(city="paris")]'),  # BFCL string normalisation
        ("tool_required#t0s1", TC.format(name="get_weather", args='{"city": "Paris", "unit": "celsius"}')),  # the default
        ("parallel#t0s0", TC.format(name="get_weather", args='{"city": "Rome"}') + TC.format(name="get_weather", args='{"city": "Paris"}')),
        ("multi_turn#t1s0", '{"name": "get_forecast", "parameters": {"city": "Paris", "days": 3}}'),
        ("clarification#t0s0", "Sure! Where are you flying from, and when?"),
        ("tool_required#t0s3", "Right now Paris has 18 °C with cloudy skies."),
        ("tool_unavailable#t0s0", "Unfortunately I have no tool for hotel bookings."),
        ("tool_failure#t0s4", "The weather service failed for Oslo; please try again later."),
    ],
)
def test_a_good_output_in_other_words_or_order_is_correct(ref_id, output):
    s = score_output(parse_output(output), REFS[ref_id])
    assert s.correct, (s.labels, s.reasons)
    assert s.labels == []


def test_int_is_accepted_for_a_float_but_not_a_float_for_an_int():
    tools = [{"name": "area", "parameters": {"type": "dict", "properties": {"r": {"type": "float"}, "n": {"type": "integer"}}, "required": ["r", "n"]}}]
    ref = Reference(tools=tools, acceptable=[{"area": {"r": [2.0], "n": [3]}}], calls=[{"name": "area", "arguments": {"r": 2.0, "n": 3}}])
    assert score_output(parse_output("area(r=2, n=3)"), ref).correct
    s = score_output(parse_output("area(r=2.0, n=3.0)"), ref)
    assert "arg_type_error" in s.labels


# --- tables -------------------------------------------------------------------------------


def test_the_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.69 < low < 0.73


def test_the_interval_narrows_as_items_accumulate():
    widths = [wilson_interval(n // 2, n)[1] - wilson_interval(n // 2, n)[0] for n in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2]


def run_of(outputs_by_ref):
    return [score_output(parse_output(out), REFS[rid]) for rid, out in outputs_by_ref]


def test_the_confusion_table_counts_decisions_against_the_reference():
    always_call = run_of((rid, TC.format(name="get_weather", args='{"city": "Paris"}')) for rid in REFS)
    table = confusion(always_call)
    for gold in DECISIONS:
        expected = sum(1 for r in REFS.values() if r.decision == gold)
        assert table[gold]["call"] == expected
        assert sum(table[gold].values()) == expected


def test_the_label_table_counts_each_failed_item_once_per_label():
    scores = run_of((rid, out) for _, rid, out, _ in BAD_OUTPUTS)
    table = label_table(scores)
    for label, row in table.items():
        assert row["k"] == sum(1 for s in scores if label in s.labels)
        assert row["n"] == len(scores)
        assert row["low"] <= row["rate"] <= row["high"]


def test_runs_compare_side_by_side():
    oracle = oracle_scores("tool_call")
    mute = run_of((rid, "I don't know.") for rid in REFS)
    table = compare_runs({"sft": oracle, "base": mute})
    assert table["correct"]["sft"]["rate"] == 1.0
    assert table["correct"]["base"]["rate"] < table["correct"]["sft"]["rate"]
    assert table["tool_selection_ok"]["base"]["rate"] == 0.0


def test_a_score_survives_a_round_trip_through_a_dict():
    for s in oracle_scores("python")[:3] + run_of([(BAD_OUTPUTS[0][1], BAD_OUTPUTS[0][2])]):
        assert ItemScore.from_dict(s.to_dict()) == s


VARIANTS = [reference_output(r, style) for r in REFS.values() for style in ("tool_call", "python")] + [
    b[2] for b in BAD_OUTPUTS
] + ["Could you give me more details?", "Sorry, I can't.", "It is 18.", "Which city?", "Thanks!"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(REFS)),
    st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=3).map(" ".join),
)
def test_every_output_that_fails_says_why_with_a_label(ref_id, output):
    s = score_output(parse_output(output), REFS[ref_id])
    assert s.correct or s.labels, (s.metrics, s.decision, s.gold_decision)
    assert s.correct == (not s.labels), (s.labels, s.metrics)


@pytest.mark.parametrize("gold", DECISIONS)
@pytest.mark.parametrize("predicted", DECISIONS)
def test_the_decision_table_has_an_outcome_for_every_gold_and_predicted_decision(gold, predicted):
    from evaluation.parse import ParsedOutput
    from evaluation.scoring import DECISION_TABLE, decision_outcome

    ref = Reference(decision=gold, missing_args=["city"], answer="It is sunny." if gold == "answer" else "")
    text = {"ask": "Which city?", "decline": "I can't do that.", "answer": "It is sunny.", "call": ""}[predicted]
    outcome = decision_outcome(ParsedOutput(raw=text, answer=text), ref, predicted)
    assert (gold, predicted) in DECISION_TABLE
    assert outcome.metrics["decision_ok"] is (gold == predicted)
    if gold != "call":
        assert outcome.metrics["no_tool_ok"] is (predicted != "call")
    assert bool(outcome.labels) is (gold != predicted)  # a wrong decision always says what went wrong
