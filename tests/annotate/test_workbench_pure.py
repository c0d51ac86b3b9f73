"""The workbench's pure core: edits, diffs and merges, argument forms, step forms, workflow, search.

No database: tables of example records in, what the annotator would see out.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest

from annotate.findings import validate
from annotate.search import fts_query, search_terms, search_text
from annotate.trajectory import Trajectory
from annotate.workbench.argument_form import EXTRA, argument_fields, read_value
from annotate.workbench.editing import Edit, EditError, apply_edit
from annotate.workbench.revisions import diff_documents, locate_step, merge_fields, rebase_edit, word_diff
from annotate.workbench.step_forms import argument_state, read_step_form
from annotate.workbench.workflow import WorkflowError, allowed_actions, next_status, submission_blockers

ROOT = Path(__file__).resolve().parents[2]
PURE_MODULES = ["annotate/workbench/editing.py", "annotate/workbench/revisions.py", "annotate/workbench/argument_form.py",
                "annotate/workbench/step_forms.py", "annotate/workbench/workflow.py", "annotate/search.py"]

WEATHER = {"name": "get_weather", "description": "Current weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                     "days": {"type": "integer"}, "unit": {"type": "string", "enum": ["c", "f"]},
                                     "detailed": {"type": "boolean"}, "where": {"type": "object"}},
    "required": ["city"]}}


def doc(steps=None, turns=None) -> Trajectory:
    return Trajectory.from_dict({
        "tools": [WEATHER],
        "turns": turns or [{"user": "Weather in Paris?", "steps": steps if steps is not None else [
            {"kind": "think", "text": "Look it up."},
            {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1"},
            {"kind": "tool_result", "name": "get_weather", "text": "18C", "call_id": "c1"},
            {"kind": "answer", "text": "It is 18 °C."},
        ]}],
    })


def kinds(d: Trajectory, turn: int = 0) -> list[str]:
    return [s.kind for s in d.turns[turn].steps]


def test_the_pure_modules_import_no_django():
    for rel in PURE_MODULES:
        tree = ast.parse((ROOT / rel).read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m.split(".")[0] in ("django", "rest_framework")], rel


# --- edits ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, expected_kinds", [
    (Edit("insert_step", 0, 0, {"kind": "think"}), ["think", "think", "tool_call", "tool_result", "answer"]),
    (Edit("insert_step", 0, None, {"kind": "answer"}), ["think", "tool_call", "tool_result", "answer", "answer"]),
    (Edit("delete_step", 0, 0), ["tool_call", "tool_result", "answer"]),
    (Edit("duplicate_step", 0, 3), ["think", "tool_call", "tool_result", "answer", "answer"]),
    (Edit("move_step", 0, 3, {"by": -1}), ["think", "tool_call", "answer", "tool_result"]),
    (Edit("move_step", 0, 0, {"by": 1}), ["tool_call", "think", "tool_result", "answer"]),
    (Edit("add_parallel_call", 0, 1), ["think", "tool_call", "tool_call", "tool_result", "tool_result", "answer"]),
])
def test_structure_edits_change_the_steps_as_asked(edit, expected_kinds):
    before = doc()
    after = apply_edit(before, edit)
    assert kinds(after) == expected_kinds
    assert kinds(before) == ["think", "tool_call", "tool_result", "answer"]  # the input is left alone


def test_a_parallel_call_gets_its_own_id_and_a_matching_result():
    after = apply_edit(doc(), Edit("add_parallel_call", 0, 1))
    calls = [s for s in after.turns[0].steps if s.kind == "tool_call"]
    results = [s for s in after.turns[0].steps if s.kind == "tool_result"]
    assert len({c.call_id for c in calls}) == 2
    assert [r.call_id for r in results] == [c.call_id for c in calls]


def test_a_duplicated_call_is_a_new_call():
    after = apply_edit(doc(), Edit("duplicate_step", 0, 1))
    assert after.turns[0].steps[1].call_id != after.turns[0].steps[2].call_id
    assert after.turns[0].steps[2].arguments == {"city": "Paris"}


def test_adding_and_editing_turns():
    after = apply_edit(doc(), Edit("add_turn", fields={"user": "And tomorrow?"}))
    assert [t.user for t in after.turns] == ["Weather in Paris?", "And tomorrow?"]
    assert kinds(after, 1) == ["answer"]
    after = apply_edit(after, Edit("update_turn", 1, fields={"user": "And in Rome?"}))
    assert after.turns[1].user == "And in Rome?"
    assert len(apply_edit(after, Edit("delete_turn", 0)).turns) == 1


def test_metadata_edits_set_case_types_split_and_tags():
    after = apply_edit(doc(), Edit("update_meta", fields={"case_types": ["tool_required", "tool_required"],
                                                          "split": "eval", "tags": [" hard ", ""]}))
    assert (after.meta.case_types, after.meta.split, after.meta.tags) == (["tool_required"], "eval", ["hard"])


@pytest.mark.parametrize("edit, field", [
    (Edit("update_step", 0, 9, {"text": "x"}), "step"),
    (Edit("update_step", 3, 0, {"text": "x"}), "turn"),
    (Edit("update_step", 0, 0, {"arguments": {}}), "arguments"),  # a think step has no arguments
    (Edit("update_step", 0, 0, {"train": "yes"}), "train"),
    (Edit("update_step", 0, 0, {"labels": "format_error"}), "labels"),
    (Edit("insert_step", 0, 0, {"kind": "shout"}), "kind"),
    (Edit("move_step", 0, 0, {"by": -1}), "by"),
    (Edit("delete_turn", 0), "turn"),
    (Edit("update_meta", fields={"split": "holdout"}), "split"),
    (Edit("update_meta", fields={"case_types": ["made_up"]}), "case_types"),
])
def test_an_edit_that_cannot_apply_names_the_field(edit, field):
    with pytest.raises(EditError) as e:
        apply_edit(doc(), edit)
    assert e.value.field == field


def test_an_edit_reads_back_from_its_dict_form():
    edit = Edit("update_step", 0, 2, {"text": "x"})
    assert Edit.from_dict(edit.to_dict()) == edit
    with pytest.raises(EditError):
        Edit.from_dict({"op": "drop_table"})


# --- diffs, merges, rebasing ----------------------------------------------------------------------------

def test_the_diff_names_each_changed_step_and_field():
    old = doc()
    new = apply_edit(old, Edit("update_step", 0, 3, {"text": "It is 19 °C.", "labels": ["ungrounded_answer"]}))
    new = apply_edit(new, Edit("delete_step", 0, 0))
    changes = diff_documents(old, new)
    assert [(c.kind, c.where) for c in changes] == [("removed", "turn 1 · step 1 · think"),
                                                    ("changed", "turn 1 · step 3 · answer")]
    assert {f.field for f in changes[1].fields} == {"text", "labels"}


def test_the_diff_of_identical_documents_is_empty():
    assert diff_documents(doc(), doc().to_dict()) == []


def test_word_diff_runs_join_back_into_both_texts():
    runs = word_diff("the quick brown fox", "the slow brown dog")
    assert "".join(t for op, t in runs if op != "insert") == "the quick brown fox"
    assert "".join(t for op, t in runs if op != "delete") == "the slow brown dog"


@pytest.mark.parametrize("base, mine, theirs, merged, both", [
    ({"text": "a", "note": ""}, {"text": "b", "note": ""}, {"text": "a", "note": "n"}, {"text": "b", "note": "n"}, []),
    ({"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "b"}, ["text"]),
    ({"text": "a"}, {"text": "b"}, {"text": "b"}, {"text": "b"}, []),
    ({"labels": []}, {"labels": []}, {"labels": ["x"]}, {"labels": ["x"]}, []),
])
def test_merge_keeps_their_change_where_i_changed_nothing(base, mine, theirs, merged, both):
    assert merge_fields(base, mine, theirs) == (merged, both)


def test_a_step_edit_follows_its_step_after_someone_inserted_steps_before_it():
    base = doc()
    theirs = apply_edit(base, Edit("insert_step", 0, 0, {"kind": "think", "text": "First thought."}))
    theirs = apply_edit(theirs, Edit("update_step", 0, 4, {"note": "n"}))
    mine = Edit("update_step", 0, 3, {"text": "It is 18 degrees.", "labels": [], "note": "", "train": True})
    rebased = rebase_edit(mine, base, theirs)
    assert (rebased.edit.turn, rebased.edit.step) == (0, 4)
    merged = apply_edit(theirs, rebased.edit)
    answer = merged.turns[0].steps[4]
    assert (answer.text, answer.note) == ("It is 18 degrees.", "n")  # mine, and theirs kept
    assert merged.turns[0].steps[0].text == "First thought."


def test_a_step_they_deleted_cannot_be_found_again():
    base = doc()
    theirs = apply_edit(base, Edit("delete_step", 0, 3))
    assert locate_step(base, theirs, 0, 3) is None
    assert rebase_edit(Edit("update_step", 0, 3, {"text": "x"}), base, theirs).edit is None


# --- argument forms ---------------------------------------------------------------------------------------

def test_each_schema_type_gets_its_widget():
    fields = {f.name: f for f in argument_fields(WEATHER["parameters"], {"city": "Paris", "days": 3, "unit": "c",
                                                                          "detailed": True, "where": {"lat": 1}})}
    assert {n: f.widget for n, f in fields.items()} == {
        "city": "text", "days": "integer", "unit": "enum", "detailed": "boolean", "where": "json"}
    assert fields["city"].required and not fields["days"].required
    assert fields["unit"].choices == ["c", "f"]
    assert fields["days"].value == "3" and fields["detailed"].value == "true"


def test_bfcl_type_names_get_the_same_widgets():
    schema = {"type": "dict", "properties": {"n": {"type": "int"}, "x": {"type": "float"}, "ok": {"type": "bool"}}}
    assert [f.widget for f in argument_fields(schema, {})] == ["integer", "number", "boolean"]


def test_a_value_of_the_wrong_type_is_shown_as_json_not_silently_converted():
    fields = {f.name: f for f in argument_fields(WEATHER["parameters"], {"city": "Paris", "days": "3"})}
    assert (fields["days"].widget, fields["days"].value) == ("json", '"3"')


def test_arguments_the_schema_does_not_define_are_kept_in_other_arguments():
    fields = argument_fields(WEATHER["parameters"], {"location": "Tokyo"})
    assert fields[-1].name == EXTRA and '"location": "Tokyo"' in fields[-1].value


@pytest.mark.parametrize("widget, text, value", [
    ("integer", "3", 3), ("integer", "-12", -12), ("number", "2.5", 2.5), ("number", "7", 7),
    ("boolean", "true", True), ("boolean", "false", False), ("json", '{"a": [1]}', {"a": [1]}),
    ("text", "  spaced  ", "  spaced  "),
])
def test_inputs_read_back_as_their_types(widget, text, value):
    assert read_value(widget, text) == value


@pytest.mark.parametrize("widget, text, message", [
    ("integer", "two", "Enter a whole number."), ("integer", "1.5", "Enter a whole number."),
    ("number", "abc", "Enter a number."), ("number", "inf", "Enter a finite number."),
    ("boolean", "maybe", "Choose true or false."), ("json", "{", "Not valid JSON"),
])
def test_unreadable_inputs_say_what_is_wrong(widget, text, message):
    with pytest.raises(ValueError) as e:
        read_value(widget, text)
    assert message in str(e.value)


# --- step forms -------------------------------------------------------------------------------------------

SCHEMAS = {"get_weather": WEATHER["parameters"]}


def call_form(**inputs) -> dict:
    data = {"name": ["get_weather"], "call_id": ["c1"], "args_mode": ["form"], "args_tool": ["get_weather"],
            "train": ["on"], "note": [""]}
    for k, v in inputs.items():
        data[k] = [v] if isinstance(v, str) else v
    return data


def test_a_required_field_left_empty_is_an_error_on_that_field():
    step = doc().turns[0].steps[1]
    form = read_step_form(step, call_form(**{"arg:city": ""}), SCHEMAS)
    assert form.ok  # saving is allowed: the finding stays next to the step
    assert form.args.errors_for("city") == ["'city' is a required property"]


def test_a_number_field_with_letters_refuses_to_save_and_keeps_the_text():
    step = doc().turns[0].steps[1]
    form = read_step_form(step, call_form(**{"arg:city": "Paris", "arg:days": "two", "argw:days": "integer"}), SCHEMAS)
    assert not form.ok and "arguments" in form.errors
    assert form.args.errors_for("days") == ["Enter a whole number."]
    assert next(f.value for f in form.args.fields if f.name == "days") == "two"


def test_a_valid_form_gives_typed_arguments_in_their_original_order():
    step = copy.deepcopy(doc().turns[0].steps[1])
    step.arguments = {"unit": "c", "city": "Paris"}
    form = read_step_form(step, call_form(**{"arg:city": "Oslo", "arg:unit": "f", "arg:days": "2",
                                             "argw:days": "integer", "labels": ["wrong_tool", ""]}), SCHEMAS)
    assert form.ok
    assert list(form.fields["arguments"].items()) == [("unit", "f"), ("city", "Oslo"), ("days", 2)]
    assert form.fields["labels"] == ["wrong_tool"] and form.fields["train"] is True
    assert form.args.error_count == 0


def test_raw_json_mode_reads_any_json_and_reports_broken_json():
    step = doc().turns[0].steps[1]
    ok = read_step_form(step, call_form(args_mode="raw", arguments_json='{"city": 3}'), SCHEMAS)
    assert ok.fields["arguments"] == {"city": 3}
    assert ok.args.other_errors == ["city: 3 is not of type 'string'"]
    broken = read_step_form(step, call_form(args_mode="raw", arguments_json='{"city": '), SCHEMAS)
    assert not broken.ok and broken.args.raw == '{"city": '


def test_an_unknown_tool_is_edited_as_raw_json():
    state = argument_state("teleport", None, {"to": "Mars"})
    assert state.mode == "raw" and '"to": "Mars"' in state.raw


def test_a_tool_result_takes_its_tool_name_from_the_call_it_answers():
    d = doc()
    form = read_step_form(d.turns[0].steps[2], {"call_id": ["c1"], "ok": ["error"], "text": ["boom"]}, SCHEMAS, d)
    assert form.fields["name"] == "get_weather" and form.fields["ok"] is False and form.fields["train"] is False


# --- workflow ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role, status, may_edit, actions", [
    ("annotator", "draft", True, ["submit"]),
    ("annotator", "draft", False, []),
    ("annotator", "rejected", True, ["submit"]),
    ("annotator", "submitted", True, []),
    ("lead", "submitted", True, ["approve", "reject", "reopen"]),
    ("lead", "approved", True, ["reopen"]),
    ("admin", "draft", True, ["submit"]),
    (None, "draft", True, []),
])
def test_who_may_move_a_trajectory(role, status, may_edit, actions):
    assert allowed_actions(role, status, may_edit) == actions


def test_a_move_from_the_wrong_status_is_refused():
    with pytest.raises(WorkflowError):
        next_status("approve", "draft")


def test_unlabelled_errors_block_submission_and_labelled_ones_do_not():
    d = doc()
    d.turns[0].steps[1].arguments = {}
    assert [f.code for f in submission_blockers(d, validate(d))] == ["schema_violation"]
    d.turns[0].steps[1].labels = ["missing_required_arg"]
    assert submission_blockers(d, validate(d)) == []


# --- search ------------------------------------------------------------------------------------------------

def test_search_text_holds_user_messages_steps_arguments_and_notes():
    d = doc()
    d.turns[0].steps[0].note = "reviewer note"
    text = search_text(d)
    for expected in ("Weather in Paris?", "Look it up.", '"city":"Paris"', "18C", "reviewer note"):
        assert expected in text


@pytest.mark.parametrize("query, fts", [
    ("paris", '"paris"*'),
    ("HAT1 2024-05-20", '"HAT1"* AND "2024"* AND "05"* AND "20"*'),
    ('x" OR 1=1 --', '"x"* AND "OR"* AND "1"* AND "1"*'),
    ("  ", ""),
])
def test_a_search_query_becomes_quoted_prefix_terms(query, fts):
    assert fts_query(query) == fts
    assert len(search_terms("w " * 50)) == 12


def test_an_argument_change_is_shown_per_argument():
    old = doc()
    new = apply_edit(old, Edit("update_step", 0, 1, {"arguments": {"city": "Rome", "unit": "c"}}))
    fields = [(f.field, f.old, f.new) for f in diff_documents(old, new)[0].fields]
    assert fields == [("arguments.city", "Paris", "Rome"), ("arguments.unit", "", "c")]


def test_each_side_of_a_field_change_reads_whole_with_its_changed_words_marked():
    from annotate.workbench.revisions import FieldChange, word_diff

    old, new = "It is 18 °C and cloudy in Paris.", "Paris: 18 °C, cloudy, light wind."
    f = FieldChange("text", old, new, word_diff(old, new))
    assert "".join(text for _, text in f.before) == old
    assert "".join(text for _, text in f.after) == new
    assert any(changed for changed, _ in f.before) and any(changed for changed, _ in f.after)


def test_a_conflict_quotes_only_the_fields_both_changed():
    from annotate.workbench.revisions import conflicting_values

    base = Trajectory.from_dict({"turns": [{"user": "q", "steps": [{"kind": "answer", "text": "Hi.", "note": ""}]}]})
    theirs = Trajectory.from_dict({"turns": [{"user": "q", "steps": [
        {"kind": "answer", "text": "Hello there.", "note": "too short"}]}]})
    mine = Edit("update_step", 0, 0, {"text": "Hi.", "note": "fine"})
    assert [(f.field, f.old, f.new) for f in conflicting_values(mine, base, theirs)] == [("note", "too short", "fine")]
    mine_meta = Edit("update_meta", fields={"tags": ["a"]})
    assert conflicting_values(mine_meta, base, theirs) == []


def test_a_status_change_reads_as_one_and_a_locked_trajectory_says_why():
    from annotate.workbench.workflow import status_change, why_not_editable

    assert status_change("submitted", "approved", "lena") == "Approved by lena"
    assert status_change("submitted", "rejected", "lena") == "Rejected by lena"
    assert status_change("draft", "submitted", "ann") == "Submitted for review by ann"
    assert "reopen it as a draft" in why_not_editable("approved", "annotator", "ann", "ann")
    assert why_not_editable("draft", "annotator", "bob", "ann").startswith("It is assigned to bob")
