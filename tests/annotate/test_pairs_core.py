"""The pure pair core: forking, validation, starters, diffs, suggestions from corrections, candidates."""

from __future__ import annotations

import ast
import copy
import doctest
import importlib
import json
from pathlib import Path

import pytest

from annotate import pairs
from annotate.demo import TOOLS
from annotate.pairs import Pair, PairError, StarterError
from annotate.trajectory import Step, Trajectory

ROOT = Path(__file__).resolve().parents[2]


def call(name, args, cid="c1"):
    return {"kind": "tool_call", "name": name, "arguments": args, "call_id": cid}


def result(name, text, cid="c1", ok=True):
    return {"kind": "tool_result", "name": name, "text": text, "call_id": cid, "ok": ok}


def think(text):
    return {"kind": "think", "text": text}


def answer(text):
    return {"kind": "answer", "text": text}


def traj(*turns, tools=TOOLS):
    return Trajectory.from_dict({"system": "You are a travel assistant.", "tools": tools,
                                 "turns": [{"user": u, "steps": s} for u, s in turns]})


WEATHER = traj(("Weather in Paris?", [think("Use the tool."), call("get_weather", {"city": "Paris"}),
                                      result("get_weather", '{"temp": 18}'), answer("It is 18 °C in Paris.")]))
MULTI_TURN = traj(
    ("Flights JFK to SEA on 2024-05-20?", [call("search_flights", {"origin": "JFK", "destination": "SEA",
                                                                   "date": "2024-05-20"}),
                                            result("search_flights", '[{"flight": "HAT145", "price": 189}]'),
                                            answer("HAT145 for $189.")]),
    ("And in euros?", [call("convert_currency", {"amount": 189, "from_currency": "USD", "to_currency": "EUR"}, "c2"),
                       result("convert_currency", '{"amount": 174.05}', "c2"), answer("About €174.05.")]),
)
DIRECT = traj(("What does IATA stand for?", [answer("The International Air Transport Association.")]))
CLARIFY = traj(("Find me a flight to Seattle.", [answer("Where from, and on which date?")]))


def sides(chosen, rejected, context=WEATHER, category="other") -> Pair:
    last = len(context.turns) - 1
    p = pairs.fork(context, last, len(context.turns[last].steps), category=category)
    p.chosen = [Step.from_dict(s) for s in chosen]
    p.rejected = [Step.from_dict(s) for s in rejected]
    return p


# Forking -----------------------------------------------------------------------------------------


def test_forking_a_later_turn_keeps_the_earlier_turns_tool_calls_and_results_as_context():
    p = pairs.fork(MULTI_TURN, 1, 0)
    assert [t.user for t in p.context.turns] == ["Flights JFK to SEA on 2024-05-20?", "And in euros?"]
    assert [s.kind for s in p.context.turns[0].steps] == ["tool_call", "tool_result", "answer"]
    assert p.context.turns[1].steps == []
    assert [s.kind for s in p.chosen] == ["tool_call", "tool_result", "answer"]
    assert p.cut == (1, 0)
    assert p.context.tools == MULTI_TURN.tools


def test_forking_mid_turn_puts_the_steps_before_the_cut_into_the_context():
    p = pairs.fork(WEATHER, 0, 1)
    assert [s.kind for s in p.context.turns[0].steps] == ["think"]
    assert [s.kind for s in p.chosen] == ["tool_call", "tool_result", "answer"]
    assert p.cut == (0, 1)


def test_forking_leaves_the_source_trajectory_untouched():
    before = copy.deepcopy(WEATHER)
    p = pairs.fork(WEATHER, 0, 1)
    p.chosen[0].arguments["city"] = "Rome"
    p.context.turns[0].steps.clear()
    assert WEATHER == before


@pytest.mark.parametrize("turn, step, field, words", [
    (2, 0, "cut.turn", "turn 2 is past the end: the trajectory has 2 turns"),
    (-1, 0, "cut.turn", "past the end"),
    (0, 4, "cut.step", "step 4 is past the end of turn 0, which has 3 steps"),
    (1, 9, "cut.step", "past the end of turn 1"),
])
def test_a_cut_point_past_the_end_is_a_clear_error(turn, step, field, words):
    with pytest.raises(PairError) as e:
        pairs.fork(MULTI_TURN, turn, step)
    assert e.value.field == field and words in e.value.message


def test_a_cut_after_the_last_step_gives_empty_sides_to_write_by_hand():
    p = pairs.fork(DIRECT, 0, 1)
    assert p.chosen == [] and p.rejected == []
    assert {e.field for e in pairs.pair_errors(p)} == {"chosen", "rejected"}


# Validation --------------------------------------------------------------------------------------

GOOD = [call("get_weather", {"city": "Paris"}), result("get_weather", "18"), answer("18 °C.")]

ERROR_CASES = [
    # (why, chosen, rejected, category, expected error fields)
    ("identical sides", GOOD, GOOD, "tool_needed", ["rejected"]),
    ("identical but for call ids", GOOD, [call("get_weather", {"city": "Paris"}, "x9"), result("get_weather", "18", "x9"),
                                          answer("18 °C.")], "other", ["rejected"]),
    ("empty rejected side", GOOD, [], "tool_needed", ["rejected"]),
    ("rejected starts with a tool result", GOOD, [result("get_weather", "18"), answer("x")], "other",
     ["rejected[0].kind"]),
    ("chosen side is malformed even in the format category", [call("get_weather", {"town": "Paris"})],
     [call("get_weather", '{"city": ')], "format", ["chosen[0].arguments.city"]),
    ("unknown category", GOOD, [answer("18 °C.")], "vibes", ["category"]),
]


@pytest.mark.parametrize("why, chosen, rejected, category, fields", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_bad_pairs_are_refused_naming_the_field(why, chosen, rejected, category, fields):
    errors = pairs.pair_errors(sides(chosen, rejected, category=category))
    assert sorted(e.field for e in errors) == sorted(fields)
    assert all(e.message for e in errors)


def test_the_error_for_identical_sides_says_so():
    [e] = pairs.pair_errors(sides(GOOD, GOOD))
    assert "identical" in e.message


REJECTED_PROBLEMS = [
    # (why, rejected side, the labels its steps get)
    ("a required argument is missing", [call("get_weather", {})], [["missing_required_arg"]]),
    ("a tool that does not exist", [call("book_hotel", {"city": "Paris"})], [["hallucinated_tool"]]),
    ("arguments that are not JSON", [call("get_weather", '{"city": "Paris"')], [["format_error"]]),
    ("an argument of the wrong type", [call("get_weather", {"city": 42})], [["arg_type_error"]]),
    ("a valid wrong answer", [answer("It is sunny.")], [[]]),
]


@pytest.mark.parametrize("why, rejected, labels", REJECTED_PROBLEMS, ids=[c[0] for c in REJECTED_PROBLEMS])
def test_a_rejected_side_may_be_wrong_in_any_way_and_its_problems_become_labels(why, rejected, labels):
    p = sides(GOOD, rejected, category="tool_needed")
    assert pairs.pair_errors(p) == []
    assert [s.labels for s in pairs.label_rejected(p).rejected] == labels


def test_an_invalid_chosen_side_needs_a_recorded_reason():
    p = sides([call("get_weather", {"city": 42})], [answer("It is sunny.")], category="tool_needed")
    [e] = pairs.pair_errors(p)
    assert e.field == "chosen[0].arguments.city" and "chosen side must be valid" in e.message
    p.override = "the service takes zip codes as numbers"
    assert pairs.pair_errors(p) == []
    assert pairs.Pair.from_document(p.to_document()).override == p.override


def test_a_project_category_is_accepted_when_the_project_defines_it():
    p = sides(GOOD, [answer("18 °C.")], category="politeness")
    assert [e.field for e in pairs.pair_errors(p)] == ["category"]
    custom = {**pairs.CATEGORIES, "politeness": pairs.Category("politeness", "Politeness", "", "")}
    assert pairs.pair_errors(p, custom) == []


def test_check_pair_raises_with_every_problem_in_the_message():
    with pytest.raises(PairError) as e:
        pairs.check_pair(sides(GOOD, GOOD, category="vibes"))
    assert e.value.field == "category" and "identical" in str(e.value)


def test_a_pair_document_round_trips():
    p = sides(GOOD, [answer("Probably sunny.")], context=MULTI_TURN, category="tool_needed")
    p.note, p.source, p.status = "made up", "manual", "approved"
    doc = p.to_document()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["meta"]["cut"] == {"turn": 1, "step": 3}
    assert Pair.from_document(doc) == p


def test_a_malformed_document_names_the_field():
    with pytest.raises(PairError) as e:
        Pair.from_document({"context": WEATHER.to_dict(), "chosen": [{"kind": "shout"}], "rejected": []})
    assert e.value.field == "chosen[0].kind"


# Starters ---------------------------------------------------------------------------------------

STARTER_CASES = [
    # (category, trajectory, cut step, expected rejected kinds, what the user would notice)
    ("tool_needed", WEATHER, 1, ["answer"], "the call is gone; the answer stays, now unfounded"),
    ("tool_not_needed", DIRECT, 0, ["tool_call"], "a call appears where none was needed"),
    ("missing_argument", CLARIFY, 0, ["tool_call"], "a call replaces the clarifying question"),
    ("missing_argument", WEATHER, 1, ["tool_call"], "the required city is blanked"),
    ("irrelevant_tools", DIRECT, 0, ["tool_call"], "a forced call"),
    ("tool_result", WEATHER, 1, ["tool_call", "tool_result", "answer"], "the answer ignores the result"),
    ("cost", WEATHER, 1, ["tool_call", "tool_result", "tool_call", "tool_result", "answer"], "the call is repeated"),
    ("format", WEATHER, 1, ["tool_call"], "the call's JSON is broken"),
    ("other", WEATHER, 1, ["tool_call", "tool_result", "answer"], "a copy to edit"),
]


@pytest.mark.parametrize("category, source, step, kinds, _", STARTER_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(STARTER_CASES)])
def test_each_starter_fills_the_rejected_side_with_a_typical_bad_variant(category, source, step, kinds, _):
    p = pairs.fork(source, 0, step, category=category)
    p.rejected = pairs.starter_steps(category, p.chosen, p.context)
    assert [s.kind for s in p.rejected] == kinds
    errors = pairs.pair_errors(p)
    if category == "other":
        assert [e.field for e in errors] == ["rejected"]  # a copy: the lead still has to change it
    else:
        assert errors == [], [str(e) for e in errors]
        assert not pairs.same_content(p.chosen, p.rejected)


def test_the_blank_argument_starter_blanks_the_required_argument():
    p = pairs.fork(WEATHER, 0, 1)
    [c] = pairs.starter_steps("missing_argument", p.chosen, p.context)
    assert c.arguments == {"city": ""}


def test_the_format_starter_leaves_arguments_that_do_not_parse():
    p = pairs.fork(WEATHER, 0, 1)
    [c] = pairs.starter_steps("format", p.chosen, p.context)
    with pytest.raises(json.JSONDecodeError):
        json.loads(c.arguments)


def test_the_repeat_starter_gives_the_repeated_call_its_own_id():
    p = pairs.fork(WEATHER, 0, 1)
    steps = pairs.starter_steps("cost", p.chosen, p.context)
    ids = [s.call_id for s in steps if s.kind == "tool_call"]
    assert len(set(ids)) == 2 and steps[3].call_id == ids[1]


def test_the_insert_starter_prefers_a_tool_the_chosen_side_does_not_call():
    p = pairs.fork(WEATHER, 0, 1)
    [c] = pairs.starter_steps("tool_not_needed", p.chosen, p.context)
    assert c.name != "get_weather" and c.name in {t["name"] for t in TOOLS}


@pytest.mark.parametrize("category, source", [("format", DIRECT), ("tool_needed", DIRECT), ("cost", CLARIFY),
                                              ("tool_result", DIRECT)])
def test_a_starter_that_does_not_apply_says_why(category, source):
    p = pairs.fork(source, 0, 0)
    with pytest.raises(StarterError) as e:
        pairs.starter_steps(category, p.chosen, p.context)
    assert "chosen side" in e.value.message


def test_a_starter_needing_a_tool_fails_clearly_when_the_trajectory_has_none():
    t = traj(("hi", [answer("hello")]), tools=[])
    p = pairs.fork(t, 0, 0)
    with pytest.raises(StarterError, match="no tools"):
        pairs.starter_steps("tool_not_needed", p.chosen, p.context)


# Diff ------------------------------------------------------------------------------------------

DIFF_CASES = [
    ("same", [answer("a")], [answer("a")], [("same", ())]),
    ("changed text", [think("t"), answer("a")], [think("t"), answer("b")], [("same", ()), ("changed", ("text",))]),
    ("changed arguments", [call("get_weather", {"city": "Paris"})], [call("get_weather", {"city": "Rome"})],
     [("changed", ("arguments",))]),
    ("inserted call", [answer("a")], [call("get_weather", {"city": "X"}), answer("a")],
     [("rejected_only", ()), ("same", ())]),
    ("dropped calls", GOOD, [answer("18 °C.")], [("chosen_only", ()), ("chosen_only", ()), ("same", ())]),
]


@pytest.mark.parametrize("why, a, b, expected", DIFF_CASES, ids=[c[0] for c in DIFF_CASES])
def test_the_diff_marks_where_the_sides_differ(why, a, b, expected):
    rows = pairs.diff_sides([Step.from_dict(s) for s in a], [Step.from_dict(s) for s in b])
    assert [(r.op, r.fields) for r in rows] == expected


# Suggestions from corrections ----------------------------------------------------------------------

NEEDS_FIXING = traj(("Weather in Tokyo in fahrenheit?", [
    {**call("get_weather", {"location": "Tokyo", "unit": "fahrenheit"}), "labels": ["unexpected_arg"]},
    result("get_weather", "Error: missing required argument 'city'", ok=False),
    answer("It's sunny in Tokyo.")]))


def corrected(t: Trajectory, edit) -> Trajectory:
    out = copy.deepcopy(t)
    edit(out)
    return out


def fix_tokyo(t):
    t.turns[0].steps[0].arguments = {"city": "Tokyo", "unit": "fahrenheit"}
    t.turns[0].steps[0].labels = []
    t.turns[0].steps[1] = Step.from_dict(result("get_weather", '{"temperature": 64}'))
    t.turns[0].steps[2].text = "It is 64 °F in Tokyo."


def test_a_corrected_call_suggests_the_original_continuation_as_rejected():
    [p] = pairs.suggest_from_revisions(NEEDS_FIXING, corrected(NEEDS_FIXING, fix_tokyo))
    assert p.cut == (0, 0) and p.source == "correction"
    assert p.chosen[0].arguments == {"city": "Tokyo", "unit": "fahrenheit"}
    assert p.rejected[0].arguments == {"location": "Tokyo", "unit": "fahrenheit"}
    assert [s.text for s in p.rejected[1:]] == ["Error: missing required argument 'city'", "It's sunny in Tokyo."]
    assert p.category == "format"  # the original call fails the schema: only "format" may hold it
    assert pairs.pair_errors(p) == []


def test_a_correction_in_a_later_turn_keeps_the_earlier_turns_as_context():
    def fix(t):
        t.turns[1].steps[2].text = "HAT145 costs about €174.05 (at today's rate)."

    [p] = pairs.suggest_from_revisions(MULTI_TURN, corrected(MULTI_TURN, fix))
    assert p.cut == (1, 2)
    assert [s.kind for s in p.context.turns[0].steps] == ["tool_call", "tool_result", "answer"]
    assert [s.kind for s in p.context.turns[1].steps] == ["tool_call", "tool_result"]
    assert p.chosen[0].text.endswith("(at today's rate).") and p.rejected[0].text == "About €174.05."
    assert p.category == "tool_result"


def test_an_added_tool_call_is_a_tool_needed_suggestion():
    t = traj(("Weather in Oslo?", [answer("Probably cold.")]))

    def fix(x):
        x.turns[0].steps = [Step.from_dict(s) for s in [call("get_weather", {"city": "Oslo"}),
                                                         result("get_weather", "3"), answer("3 °C.")]]

    [p] = pairs.suggest_from_revisions(t, corrected(t, fix))
    assert p.category == "tool_needed" and [s.kind for s in p.rejected] == ["answer"]


@pytest.mark.parametrize("why, edit", [
    ("labels and notes only", lambda t: setattr(t.turns[0].steps[0], "labels", ["wrong_tool"])),
    ("a changed tool result (the environment's)", lambda t: setattr(t.turns[0].steps[2], "text", "19")),
    ("a changed user message", lambda t: setattr(t.turns[0], "user", "Weather in Rome?")),
    ("nothing", lambda t: None),
])
def test_changes_that_are_not_assistant_corrections_suggest_nothing(why, edit):
    assert pairs.suggest_from_revisions(WEATHER, corrected(WEATHER, edit)) == []


# Imported candidates -----------------------------------------------------------------------------

SEATTLE = {
    "id": "flight-17", "system": "You are a travel assistant.", "tools": TOOLS,
    "question": "Find me a flight to Seattle.",
    "candidates": [
        {"id": "direct", "type": "direct", "answer": "Flight AS12 leaves at 9:00."},
        {"id": "call", "type": "tool_call", "tool_calls": [{"name": "search_flights", "arguments": {
            "origin": "JFK", "destination": "SEA", "date": "2024-05-20"}}]},
        {"id": "clarify", "type": "clarify", "answer": "Where are you flying from, and on which date?"},
        {"id": "refuse", "type": "refusal", "answer": "I can't search flights."},
    ],
    "correct": "clarify",
}


def test_candidates_become_the_correct_one_against_each_wrong_one():
    got = pairs.pairs_from_candidates(SEATTLE)
    assert len(got) == 3
    assert all(p.chosen[0].text.startswith("Where are you flying from") for p in got)
    assert [p.rejected[0].kind for p in got] == ["answer", "tool_call", "answer"]
    assert [p.category for p in got] == ["other", "missing_argument", "other"]
    assert [p.external_id for p in got] == ["flight-17:clarify>direct", "flight-17:clarify>call",
                                            "flight-17:clarify>refuse"]
    assert all(p.source == "imported" and p.context.turns[-1].user == SEATTLE["question"] for p in got)


@pytest.mark.parametrize("correct, expected", [
    ("call", ["tool_needed", "tool_needed", "tool_needed"]),
    (0, ["tool_not_needed", "other", "other"]),
    ("refuse", ["other", "irrelevant_tools", "other"]),
])
def test_the_category_is_inferred_from_the_candidate_types(correct, expected):
    assert [p.category for p in pairs.pairs_from_candidates({**SEATTLE, "correct": correct})] == expected


def test_a_stated_category_wins_over_inference():
    got = pairs.pairs_from_candidates({**SEATTLE, "category": "missing_argument"})
    assert {p.category for p in got} == {"missing_argument"}


def test_candidates_can_carry_earlier_turns_and_canonical_steps():
    rec = {"tools": TOOLS, "history": [MULTI_TURN.turns[0].to_dict()], "question": "And in euros?",
           "candidates": [{"steps": [call("convert_currency", {"amount": 189, "from_currency": "USD",
                                                               "to_currency": "EUR"})]},
                          {"answer": "About 150 euros."}],
           "correct": 0}
    [p] = pairs.pairs_from_candidates(rec)
    assert p.cut == (1, 0) and p.category == "tool_needed"
    assert [s.kind for s in p.context.turns[0].steps] == ["tool_call", "tool_result", "answer"]


BAD_RECORDS = [
    ("no question", {**SEATTLE, "question": ""}, "question"),
    ("one candidate", {**SEATTLE, "candidates": SEATTLE["candidates"][:1]}, "candidates"),
    ("unknown correct id", {**SEATTLE, "correct": "best"}, "correct"),
    ("index out of range", {**SEATTLE, "correct": 7}, "correct"),
    ("no correct", {k: v for k, v in SEATTLE.items() if k != "correct"}, "correct"),
    ("bad step kind", {**SEATTLE, "candidates": [{"steps": [{"kind": "yell"}]}, {"answer": "x"}], "correct": 1},
     "candidates[0].steps[0].kind"),
    ("bad type", {**SEATTLE, "candidates": [{"type": "rude", "answer": "x"}, {"answer": "y"}]}, "candidates[0].type"),
    ("correct candidate fails the schema", {**SEATTLE, "candidates": [
        {"answer": "Where from?"}, {"tool_calls": [{"name": "search_flights", "arguments": {"origin": 3}}]}],
        "correct": 1}, "candidates[1].steps[0].arguments"),
    ("identical candidates", {**SEATTLE, "candidates": [{"answer": "x"}, {"answer": "x"}], "correct": 0},
     "candidates[1]"),
    ("unknown category", {**SEATTLE, "category": "vibes"}, "category"),
]


@pytest.mark.parametrize("why, record, field", BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_a_malformed_candidate_record_names_the_field(why, record, field):
    with pytest.raises(PairError) as e:
        pairs.pairs_from_candidates(record)
    assert e.value.field.startswith(field), e.value.field


def test_a_wrong_candidate_that_breaks_the_schema_or_calls_a_missing_tool_is_kept_with_labels():
    rec = {**SEATTLE, "candidates": [
        {"answer": "Where from?"}, {"tool_calls": [{"name": "search_flights", "arguments": {"origin": 3}}]},
        {"tool_calls": [{"name": "book_hotel", "arguments": {}}]}], "correct": 0}
    got = pairs.pairs_from_candidates(rec)
    assert [p.rejected[0].labels for p in got] == [["arg_type_error", "missing_required_arg"], ["hallucinated_tool"]]


def test_a_candidates_file_reports_every_bad_line_and_imports_nothing():
    lines = [json.dumps(SEATTLE), "{oops", json.dumps({**SEATTLE, "correct": "best"})]
    r = pairs.parse_candidates("\n".join(lines).encode(), "prefs.jsonl")
    assert r.pairs == []
    assert [(e["line"], e["field"]) for e in r.errors] == [(2, ""), (3, "correct")]


def test_a_candidates_file_as_a_json_array_is_read_too():
    r = pairs.parse_candidates(json.dumps([SEATTLE, {**SEATTLE, "id": "x"}]).encode(), "prefs.json")
    assert r.errors == [] and [line for line, _ in r.pairs] == [1, 1, 1, 2, 2, 2]


# Audit of a rendered pair ----------------------------------------------------------------------

AUDIT_CASES = [
    ("fine", "<p>", "<p>yes", "<p>no", 10, 10, 20, []),
    ("identical", "<p>", "<p>yes", "<p>yes", 10, 10, 20, ["identical_sides"]),
    ("rejected prompt differs", "<p>", "<p>yes", "<q>no", 10, 10, 20, ["prompt_differs"]),
    ("too long", "<p>", "<p>yes", "<p>no", 30, 10, 20, ["too_long"]),
    ("no max length", "<p>", "<p>yes", "<p>no", 30, 10, None, []),
]


@pytest.mark.parametrize("why, prompt, c, r, nc, nr, max_length, codes", AUDIT_CASES, ids=[a[0] for a in AUDIT_CASES])
def test_the_rendered_pair_audit(why, prompt, c, r, nc, nr, max_length, codes):
    got = pairs.audit_rendered_pair(prompt, c, r, tokens_chosen=nc, tokens_rejected=nr, max_length=max_length)
    assert [p.code for p in got] == codes


PURE_PAIR_MODULES = ("__init__", "core", "starters", "corrections", "candidates", "records", "audit")


@pytest.mark.parametrize("module", PURE_PAIR_MODULES)
def test_the_pair_core_imports_no_django(module):
    tree = ast.parse((ROOT / "annotate" / "pairs" / f"{module}.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(n.split(".")[0] in ("django", "rest_framework") for n in names)


@pytest.mark.parametrize("module", ["annotate.pairs", "annotate.pairs.core", "annotate.pairs.records",
                                    "annotate.pairs.audit"])
def test_the_examples_in_the_pair_cores_docstrings_hold(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_the_pairs_package_and_its_command_import_nothing_from_training_or_evaluation():
    """The data flows annotate -> training -> evaluation: training wires the DPO export in (``training.dpo_pairs``)."""
    files = [*sorted((ROOT / "annotate" / "pairs").glob("*.py")), ROOT / "annotate/management/commands/pairs.py"]
    reversed_ = []
    for path in files:
        for n in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else (
                [n.module] if isinstance(n, ast.ImportFrom) and n.module else [])
            reversed_ += [f"{path.name}: {name}" for name in names if name.split(".")[0] in ("training", "evaluation")]
    assert len(files) > 10 and reversed_ == []


def test_a_side_that_ends_in_a_call_is_not_warned_about_the_missing_result():
    p = sides(GOOD, [call("get_weather", {"city": "Rome"}, "c9")])
    assert pairs.side_findings(p, "rejected") == []
    p.rejected.append(Step.from_dict(answer("done")))
    assert [f.code for _, f in pairs.side_findings(p, "rejected")] == ["call_without_result"]


def test_a_trajectory_record_given_to_pairs_import_is_refused_with_a_hint():
    r = pairs.parse_candidates(b'{"turns": [{"user": "hi"}]}\n', "t.jsonl")
    [e] = r.errors
    assert e["line"] == 1 and "import it as trajectories" in e["message"] and r.pairs == []
