"""The pure adjudication logic: aligned steps with their differences, and the adjudicated document
built from a lead's per-step choices, with provenance; refusals name the step."""

import pytest

from annotate.adjudication.compare import AdjudicationError, adjudicate, compare
from annotate.trajectory import Step, Trajectory, Turn


def version(labels_on_call=(), answer="It rains.", extra_step=False, args=None):
    steps = [Step(kind="tool_call", name="forecast", arguments=args or {"city": "Paris"}, call_id="c1",
                  labels=list(labels_on_call)),
             Step(kind="tool_result", text="rain", call_id="c1"),
             Step(kind="answer", text=answer)]
    if extra_step:
        steps.insert(0, Step(kind="think", text="look it up"))
    return Trajectory(turns=[Turn(user="Rain?", steps=steps)])


def test_compare_marks_the_fields_that_differ_and_nothing_else():
    rows = compare({"ann": version(["wrong_tool"]), "bob": version(args={"city": "paris"})})
    assert [(r.turn, r.step, r.fields) for r in rows] == [(0, 0, ["arguments", "labels"]), (0, 1, []), (0, 2, [])]


def test_perfect_agreement_needs_no_choice_and_is_recorded_as_agreed():
    doc, prov = adjudicate({"ann": version(), "bob": version()}, {})
    assert doc == version()
    assert [p["from"] for p in prov] == ["agreed"] * 3


def test_a_difference_without_a_choice_is_refused_naming_the_step():
    with pytest.raises(AdjudicationError) as e:
        adjudicate({"ann": version(["wrong_tool"]), "bob": version()}, {})
    assert e.value.field == "turn 1 step 1"


def test_picking_per_step_keeps_each_choice_s_provenance():
    a, b = version(["wrong_tool"], answer="It rains."), version(answer="Rain, 80 %.")
    doc, prov = adjudicate({"ann": a, "bob": b}, {(0, 0): {"pick": "ann"}, (0, 2): {"pick": "bob"}})
    steps = doc.turns[0].steps
    assert steps[0].labels == ["wrong_tool"] and steps[2].text == "Rain, 80 %."
    assert [(p["step"], p["from"]) for p in prov] == [(0, "ann"), (1, "agreed"), (2, "bob")]


def test_merging_labels_takes_the_union_of_every_version():
    three = {"ann": version(["wrong_tool"]), "bob": version(["arg_value_error"]), "cy": version()}
    doc, prov = adjudicate(three, {(0, 0): {"pick": "cy", "merge_labels": True}})
    assert doc.turns[0].steps[0].labels == ["arg_value_error", "wrong_tool"]
    assert prov[0] == {"turn": 0, "step": 0, "from": "cy", "merged_labels": True}


def test_a_step_only_one_version_has_is_a_gap_to_keep_or_drop():
    versions = {"ann": version(extra_step=True), "bob": version()}
    rows = compare(versions)
    assert rows[0].fields != [] and len(rows) == 4  # aligned by position: every later step differs too
    assert rows[3].versions["bob"] is None and rows[3].fields == ["missing"]
    with pytest.raises(AdjudicationError) as e:
        adjudicate(versions, {(0, 0): {"pick": "ann"}, (0, 1): {"pick": "ann"}, (0, 2): {"pick": "ann"},
                              (0, 3): {"pick": "bob"}})
    assert "bob's version has no step here" in e.value.message and e.value.field == "turn 1 step 4"
    doc, prov = adjudicate(versions, {(0, 0): {"pick": "bob"}, (0, 1): {"pick": "bob"}, (0, 2): {"pick": "bob"},
                                      (0, 3): {"drop": True}})
    assert doc == version() and prov[-1]["dropped"]


def test_choices_for_unknown_steps_or_people_are_refused():
    with pytest.raises(AdjudicationError) as e:
        adjudicate({"ann": version()}, {(0, 9): {"pick": "ann"}})
    assert e.value.field == "turn 1 step 10"
    with pytest.raises(AdjudicationError) as e:
        adjudicate({"ann": version(["wrong_tool"]), "bob": version()}, {(0, 0): {"pick": "zed"}})
    assert "ann, bob" in e.value.message


def test_versions_whose_turns_differ_are_refused():
    other = version()
    other.turns[0].user = "Snow?"
    with pytest.raises(AdjudicationError) as e:
        adjudicate({"ann": version(), "bob": other}, {})
    assert e.value.field == "turns"
