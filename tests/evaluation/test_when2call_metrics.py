"""When2Call's metrics on an eval set imported from When2Call: the four-way confusion table, macro-F1
over the four categories and the tool-hallucination rate, in the summary, on the dashboard and in the API.

The records are in When2Call's test format (``when2call_test_mcq.jsonl``): the README's own example
(``tests/fixtures/when2call``) and one made here for each other category.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.urls import reverse

from annotate.formats.when2call import read_mcq
from evaluation import jobs
from evaluation.generate import GenerationSettings
from evaluation.items import items_from_prompt_rows, rows_from_trajectory
from evaluation.models import EvalRun, EvalSet, EvalSetItem
from evaluation.parse import parse_output
from evaluation.scoring import Reference, references_from_trajectory, score_output, when2call_table
from tests.conftest import PASSWORD
from tests.evaluation.runs_harness import fill_run
from tests.training.jobs_harness import fast_users

README_RECORD = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "when2call"
                            / "when2call_test_mcq_readme.jsonl").read_text().splitlines()[0])
WEATHER = json.dumps({"name": "get_weather", "description": "Current weather in a city.", "parameters": {
    "type": "dict", "properties": {"city": {"type": "string", "description": "The city."}}, "required": ["city"]}})
ANSWERS = {"direct": "It is probably mild.", "tool_call": '{"name": "get_weather", "arguments": {"city": "Oslo"}}',
           "request_for_info": "Which city do you mean?", "cannot_answer": "I'm sorry, I can't check that."}


def record(uuid: str, question: str, correct: str, tools: list[str], **extra) -> dict:
    return {"uuid": uuid, "source": "BFCL v2 Live Simple", "source_id": f"live_simple_{uuid}", "question": question,
            "orig_question": question, "correct_answer": correct, "answers": ANSWERS, "target_tool": None,
            "tools": tools, "orig_tools": [WEATHER], "held_out_param": extra.get("held_out_param")}


RECORDS = [
    record("w1", "What is the weather in Oslo right now?", "tool_call", [WEATHER]),
    record("w2", "What is the weather right now?", "request_for_info", [WEATHER], held_out_param="city"),
    record("w3", "Book me a table for two tonight.", "cannot_answer", []),
    README_RECORD,  # cannot_answer, no tools
    record("w5", "What is the capital of France?", "direct", [WEATHER]),
]
# What a model said for each, and the category that makes it.
OUTPUTS = [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>', "tool_call"),
    ("Which city would you like the weather for?", "request_for_info"),
    ('<tool_call>\n{"name": "book_table", "arguments": {"people": 2}}\n</tool_call>', "tool_call"),  # no tools offered
    ("I'm sorry, I cannot look up service identifiers.", "cannot_answer"),
    ("The capital of France is Paris.", "direct"),
]


def references():
    refs = []
    for r in RECORDS:
        [ref] = references_from_trajectory(read_mcq(r))
        refs.append(ref)
    return refs


def test_items_imported_from_when2call_take_their_gold_decision_from_the_correct_answer():
    refs = references()
    assert [r.source for r in refs] == ["when2call"] * 5
    assert [r.decision for r in refs] == ["call", "ask", "decline", "decline", "answer"]
    assert [len(r.tools) for r in refs] == [1, 1, 0, 0, 1]
    assert refs[1].missing_args == ["city"]


def test_the_confusion_table_macro_f1_and_tool_hallucination_as_when2call_reports_them():
    scores = [score_output(parse_output(text), ref) for (text, _), ref in zip(OUTPUTS, references())]
    table = when2call_table(scores)
    assert table["confusion"] == {
        "direct": {"direct": 1, "tool_call": 0, "request_for_info": 0, "cannot_answer": 0},
        "tool_call": {"direct": 0, "tool_call": 1, "request_for_info": 0, "cannot_answer": 0},
        "request_for_info": {"direct": 0, "tool_call": 0, "request_for_info": 1, "cannot_answer": 0},
        "cannot_answer": {"direct": 0, "tool_call": 1, "request_for_info": 0, "cannot_answer": 1},
    }
    # F1 per category: direct 1, tool_call 2·1/(2·1+1) = 2/3, request_for_info 1, cannot_answer 2·1/(2·1+1) = 2/3.
    assert table["f1"] == pytest.approx({"direct": 1, "tool_call": 2 / 3, "request_for_info": 1, "cannot_answer": 2 / 3})
    assert table["macro_f1"] == pytest.approx((1 + 2 / 3 + 1 + 2 / 3) / 4)
    assert (table["accuracy"]["k"], table["accuracy"]["n"]) == (4, 5)
    # Of the two cannot_answer items that offer no tool, one called a tool anyway.
    th = table["tool_hallucination"]
    assert (th["k"], th["n"], th["rate"]) == (1, 2, 0.5)


def test_a_category_nobody_has_or_predicts_does_not_count_in_the_macro_f1():
    refs = references()
    scores = [score_output(parse_output(OUTPUTS[i][0]), refs[i]) for i in (0, 4)]  # tool_call and direct, both right
    table = when2call_table(scores)
    assert table["f1"] == {"direct": 1.0, "tool_call": 1.0} and table["macro_f1"] == 1.0
    assert table["tool_hallucination"]["n"] == 0


def test_runs_without_when2call_items_have_no_when2call_table():
    ref = Reference(tools=[json.loads(WEATHER)], calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    assert when2call_table([score_output(parse_output(OUTPUTS[0][0]), ref)]) is None


# --- the dashboard and the API -----------------------------------------------------------------------


@pytest.fixture
def when2call_run(settings, tmp_path, monkeypatch, project):
    fast_users(settings)
    settings.EVAL_RUNS_DIR = tmp_path / "eval-runs"
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tmp_path]
    monkeypatch.setattr("evaluation.tasks.eval_run.delay", lambda pk: None)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    items = items_from_prompt_rows([row for r in RECORDS for row in rows_from_trajectory(read_mcq(r), r["uuid"])])
    es = EvalSet.objects.create(project=project, name="when2call", source=EvalSet.TRAJECTORIES, item_count=len(items))
    EvalSetItem.objects.bulk_create([EvalSetItem(eval_set=es, position=i, item_id=it.id, document=it.to_dict())
                                     for i, it in enumerate(items)])
    run = jobs.launch_eval(project=project, eval_set=es, model_source=EvalRun.FOLDER, name="w2c",
                           model_path=str(model), gen=GenerationSettings(), enqueue=False)
    return fill_run(run, {i: text for i, (text, _) in enumerate(OUTPUTS)})


def test_the_dashboard_and_the_api_show_when2calls_metrics(client, lead, when2call_run):
    assert client.login(username=lead.username, password=PASSWORD)
    html = client.get(reverse("evaluation:run-detail", args=[when2call_run.pk])).content.decode()
    section = re.search(r'<table class="metrics" id="when2call">.*?</table>', html, re.S).group(0)
    assert re.search(r'data-metric="macro_f1">.*?0\.833<', section, re.S)
    assert re.search(r'data-metric="tool_hallucination">.*?50\.0 %.*?1/2', section, re.S)
    row = re.search(r'<tr data-gold="cannot_answer">.*?</tr>', html.split('id="when2call-confusion"')[1], re.S).group(0)
    assert 'data-category="tool_call">1<' in row and 'data-category="cannot_answer">1<' in row and ">0.667<" in row

    api = client.get(reverse("evaluation:api-eval-run", args=[when2call_run.pk])).json()
    assert api["summary"]["when2call"]["macro_f1"] == pytest.approx(5 / 6)
    assert api["summary"]["when2call"]["tool_hallucination"]["k"] == 1
