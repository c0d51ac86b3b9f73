"""When2Call (NVIDIA/When2Call): test questions, SFT rows and preference rows; as trajectories, pairs and an eval set.

The samples under tests/fixtures/when2call are the records the project publishes in its README (see
tests/fixtures/README.md); the variants below are derived from them, one field changed, and say so.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from annotate import formats
from annotate.formats import when2call
from annotate.ingest.reader import parse_file
from annotate.pairs import PairError, parse_candidates
from annotate.trajectory import Trajectory

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "when2call"
MCQ_FILE = HERE / "when2call_test_mcq_readme.jsonl"
SFT_FILE = HERE / "when2call_train_sft_readme.jsonl"
PREF_FILE = HERE / "when2call_train_pref_readme.jsonl"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


MCQ = records(MCQ_FILE)[0]
PREF = records(PREF_FILE)[0]


def imported(data: bytes, name: str):
    r = parse_file(data, name)
    assert r.errors == [], [str(e) for e in r.errors]
    return r


# Conservation helpers (shared with the ToolBench tests) ------------------------------------------

STRUCTURE_KEYS = ("role",)  # a message's role is mapped to where its content goes (turn, step kind)


def leaves(value) -> list:
    """Every string and number in ``value`` (not the roles); a string holding a JSON object or list, or
    a ``<TOOLCALL>[...]</TOOLCALL>`` block, counts as its leaves (the parsed call lands in the export)."""
    out, stack = [], [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(x for k, x in v.items() if k not in STRUCTURE_KEYS)
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, str) and "<TOOLCALL>" in v:
            stack.extend(m.group(1) for m in when2call.TOOLCALL.finditer(v))
            rest = when2call.TOOLCALL.sub("", v).strip()
            if rest:
                out.append(rest)
        elif isinstance(v, str) and v.lstrip()[:1] in ("{", "["):
            try:
                stack.append(json.loads(v))
            except json.JSONDecodeError:
                out.append(v)
        else:
            out.append(v)
    return out


def missing_from_export(record: dict, traj: Trajectory) -> list:
    exported = set(map(repr, leaves(formats.FORMATS["raw"].write(traj))))
    return [v for v in leaves(record) if repr(v) not in exported]


def raw_round_trip(traj: Trajectory) -> Trajectory:
    raw = formats.FORMATS["raw"]
    return raw.read(json.loads(json.dumps(raw.write(traj))), source=traj.meta.source)


# Test questions (MCQ) ------------------------------------------------------------------------------

def test_a_test_question_is_detected_and_imported_with_its_correct_behaviour():
    r = imported(MCQ_FILE.read_bytes(), MCQ_FILE.name)
    assert r.format == "when2call" and len(r.trajectories) == len(records(MCQ_FILE))
    t = r.trajectories[0][1]
    assert t.turns[0].user == MCQ["question"]
    correct = MCQ["correct_answer"]
    assert [(s.kind, s.text) for s in t.turns[0].steps] == [("answer", MCQ["answers"][correct])]
    assert t.meta.case_types == [when2call.CASE_TYPES[correct]] == ["tool_unavailable"]
    assert t.meta.reference == {"correct_answer": correct, "target_tool": MCQ["target_tool"]}
    assert t.meta.external_id == MCQ["uuid"]
    assert t.tools == [json.loads(s) for s in MCQ["tools"]]
    assert t.meta.extra["answers"] == MCQ["answers"] and t.meta.extra["orig_tools"] == MCQ["orig_tools"]
    assert t.meta.extra["source_id"] == MCQ["source_id"]


def _as(correct: str, **changes) -> dict:
    """The README question with another kind marked correct (derived: one field changed)."""
    rec = copy.deepcopy(MCQ)
    rec.update(correct_answer=correct, **changes)
    return rec


@pytest.mark.parametrize("correct, case_type, kinds", [
    ("direct", "no_tool", ["answer"]),
    ("tool_call", "tool_required", ["tool_call"]),
    ("request_for_info", "clarification", ["answer"]),
    ("cannot_answer", "tool_unavailable", ["answer"]),
])
def test_each_kind_maps_to_its_case_type(correct, case_type, kinds):
    rec = _as(correct, tools=MCQ["orig_tools"], held_out_param="province_id")
    t = when2call.read_mcq(rec)
    assert t.meta.case_types == [case_type]
    assert [s.kind for s in t.turns[0].steps] == kinds
    if correct == "tool_call":
        call = json.loads(MCQ["answers"]["tool_call"])
        assert (t.turns[0].steps[0].name, t.turns[0].steps[0].arguments) == (call["name"], call["arguments"])
    if correct == "request_for_info":
        assert t.meta.extra["missing_args"] == ["province_id"] and t.meta.extra["held_out_param"] == "province_id"


def test_a_question_without_a_known_correct_kind_is_refused_naming_the_field():
    r = parse_file(json.dumps(_as("guess")).encode(), "q.jsonl")
    assert [(e.line, e.field) for e in r.errors] == [(1, "correct_answer")] and r.trajectories == []
    bad = _as("tool_call", answers={**MCQ["answers"], "tool_call": "{\"name\": \"get_service_id\", "})
    [e] = parse_file(json.dumps(bad).encode(), "q.jsonl").errors
    assert e.field == "answers.tool_call" and "not valid JSON" in e.message


def test_a_test_question_keeps_every_value_and_round_trips_through_the_raw_export():
    t = when2call.read_mcq(MCQ)
    assert missing_from_export(MCQ, t) == []
    assert raw_round_trip(t) == t


def test_a_test_question_gives_the_correct_answer_against_each_wrong_one():
    pairs = when2call.mcq_pairs(MCQ)
    assert len(pairs) == len(MCQ["answers"]) - 1 == 3
    correct = MCQ["correct_answer"]
    assert all([s.text for s in p.chosen] == [MCQ["answers"][correct]] for p in pairs)
    by_kind = {p.external_id.split(">")[1]: p for p in pairs}
    assert set(by_kind) == set(MCQ["answers"]) - {correct}
    # The README question offers no tools: its wrong tool call is made up, which is what it teaches.
    call = by_kind["tool_call"].rejected[0]
    assert (call.kind, call.name, call.labels) == ("tool_call", "get_service_id", ["hallucinated_tool"])
    assert by_kind["tool_call"].category == "irrelevant_tools"
    assert by_kind["direct"].rejected[0].text == MCQ["answers"]["direct"]


def test_a_wrong_tool_call_that_is_not_json_is_kept_as_written_and_labelled():
    rec = copy.deepcopy(MCQ)
    rec["answers"]["tool_call"] = "{\"name\": \"get_service_id\", \"arguments\": {"
    p = next(p for p in when2call.mcq_pairs(rec) if p.external_id.endswith(">tool_call"))
    assert (p.rejected[0].kind, p.rejected[0].text, p.rejected[0].labels) == (
        "answer", rec["answers"]["tool_call"], ["format_error"])


def test_an_imported_test_question_is_an_eval_item_with_its_gold():
    from evaluation.items import items_from_prompt_rows, rows_from_trajectory

    for correct, decision in (("tool_call", "call"), ("cannot_answer", None)):
        t = when2call.read_mcq(_as(correct, tools=MCQ["orig_tools"]))
        [item] = items_from_prompt_rows(rows_from_trajectory(t, t.meta.external_id))
        assert item.messages[-1] == {"role": "user", "content": MCQ["question"]}
        assert item.case_types == [when2call.CASE_TYPES[correct]]
        if decision == "call":
            assert item.reference["decision"] == "call"
            assert item.reference["calls"] == [json.loads(MCQ["answers"]["tool_call"])]
        else:
            assert item.reference["answer"] == MCQ["answers"][correct]


def test_a_file_of_test_questions_is_an_eval_set_from_candidates():
    from evaluation.eval_sets import items_from_candidates

    [item] = items_from_candidates(MCQ_FILE.read_bytes(), MCQ_FILE.name)
    assert item.id.startswith(MCQ["uuid"]) and item.case_types == ["tool_unavailable"]
    assert item.messages[-1]["content"] == MCQ["question"] and item.tools == []
    assert item.reference["answer"] == MCQ["answers"]["cannot_answer"]


# SFT rows ---------------------------------------------------------------------------------------------

def test_an_sft_row_without_a_tool_call_reads_as_plain_messages():
    r = imported(SFT_FILE.read_bytes(), SFT_FILE.name)
    row = records(SFT_FILE)[0]
    t = r.trajectories[0][1]
    assert [(s.kind, s.text) for s in t.turns[0].steps] == [("answer", row["messages"][1]["content"])]
    assert t.tools[0]["name"] == row["tools"][0]["name"]


def test_an_sft_row_with_toolcall_becomes_tool_call_steps():
    # The README's preference row with its <TOOLCALL> response as the assistant message (derived).
    row = {"tools": PREF["tools"], "messages": PREF["messages"] + [PREF["rejected_response"]]}
    r = imported(json.dumps(row).encode(), "sft.jsonl")
    assert r.format == "when2call_sft"
    [step] = r.trajectories[0][1].turns[0].steps
    assert (step.kind, step.name, step.arguments) == ("tool_call", "get_company_by_domain", {"domain": "www.apple.com"})
    t = r.trajectories[0][1]
    assert missing_from_export(row, t) == [] and raw_round_trip(t) == t


@pytest.mark.parametrize("content, words", [
    ("<TOOLCALL>[{\"name\": \"get_company_by_domain\", \"arguments\": {]</TOOLCALL>", "not valid JSON"),
    ("<TOOLCALL>[{\"name\": \"get_company_by_domain\"}]", "not closed"),
    ("<TOOLCALL>[{\"arguments\": {}}]</TOOLCALL>", "name"),
])
def test_a_malformed_toolcall_in_an_sft_row_is_refused_naming_the_message(content, words):
    row = {"tools": PREF["tools"], "messages": PREF["messages"] + [{"role": "assistant", "content": content}]}
    [e] = parse_file(json.dumps(row).encode(), "sft.jsonl").errors
    assert e.field.startswith("messages[1].content") and words in e.message, (e.field, e.message)


# Preference rows ---------------------------------------------------------------------------------------

def test_a_preference_row_imports_as_its_prompt_and_chosen_response():
    r = imported(PREF_FILE.read_bytes(), PREF_FILE.name)
    assert r.format == "when2call_pref"
    t = r.trajectories[0][1]
    assert [(s.kind, s.text) for s in t.turns[0].steps] == [("answer", PREF["chosen_response"]["content"])]
    assert t.meta.extra["rejected_response"] == PREF["rejected_response"]
    assert missing_from_export(PREF, t) == [] and raw_round_trip(t) == t


def test_a_preference_row_is_one_pair_with_the_rejected_call_parsed():
    r = parse_candidates(PREF_FILE.read_bytes(), PREF_FILE.name)
    assert r.errors == [] and r.formats == {"when2call_pref": None}
    [(line, p)] = r.pairs
    assert line == 1 and p.context.turns[-1].user == PREF["messages"][0]["content"]
    assert [s.text for s in p.chosen] == [PREF["chosen_response"]["content"]]
    assert [(s.kind, s.name, s.arguments) for s in p.rejected] == [
        ("tool_call", "get_company_by_domain", {"domain": "www.apple.com"})]
    assert p.category == "missing_argument"  # a clarifying question chosen over a guessed call


def test_a_rejected_response_calling_a_missing_tool_is_kept_with_a_label():
    row = copy.deepcopy(PREF)
    row["tools"] = []
    row["chosen_response"]["content"] = "Sorry, I can't look up company details."
    [p] = when2call.pref_pairs(row)
    assert p.rejected[0].labels == ["hallucinated_tool"] and p.category == "irrelevant_tools"


def test_a_malformed_chosen_response_is_refused_naming_it():
    row = copy.deepcopy(PREF)
    row["chosen_response"]["content"] = "<TOOLCALL>[{\"name\": 1}]</TOOLCALL>"
    with pytest.raises(PairError) as e:
        when2call.pref_pairs(row)
    assert e.value.field.startswith("chosen_response.content")


@pytest.mark.parametrize("name", ["toolbench", "when2call", "when2call_pref", "when2call_sft"])
def test_each_new_formats_documented_example_is_detected_and_read(name):
    fmt = formats.FORMATS[name]
    assert formats.detect(fmt.example) == name and fmt.rule
    assert fmt.read(fmt.example, source="doc").turns[0].steps


def test_a_correct_call_that_breaks_its_schema_is_refused_for_pairs_naming_the_answer():
    # The README question with its call marked correct and its original tools offered (derived):
    # BFCL's schema says integers from the enum ["1", "2", "3"], the call gives 2.
    with pytest.raises(PairError) as e:
        when2call.mcq_pairs(_as("tool_call", tools=MCQ["orig_tools"]))
    assert e.value.field == "answers.tool_call.arguments.province_id" and "chosen side must be valid" in e.value.message
    assert len(when2call.mcq_pairs(_as("tool_call", tools=MCQ["orig_tools"]), override="BFCL's enum is loose")) == 3
