"""`pairs import` (CLI, API, page) of When2Call and ToolBench files: rejected sides kept with labels,
the project created when missing, all or nothing unless --skip-invalid."""

from __future__ import annotations

import copy
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotate.models import Pair, Project
from tests.annotate.test_format_toolbench import branched
from tests.annotate.test_format_when2call import MCQ, MCQ_FILE, PREF_FILE

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("pairs", "import", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_when2call_questions_import_as_pairs_into_a_new_project_with_the_made_up_call_labelled():
    out = run("--project", "when2call", str(MCQ_FILE))
    project = Project.objects.get(slug="when2call")
    assert "Created project 'when2call'" in out and "Imported 3 pairs" in out and "(when2call)" in out
    rows = list(project.pairs.order_by("external_id"))
    assert len(rows) == len(MCQ["answers"]) - 1
    assert {r.source for r in rows} == {"imported"} and {r.status for r in rows} == {"draft"}
    call = next(r for r in rows if r.external_id.endswith(">tool_call"))
    assert call.rejected[0]["name"] == "get_service_id" and call.rejected[0]["labels"] == ["hallucinated_tool"]
    assert call.context["tools"] == []
    # Imported again: nothing new.
    assert "Imported 0 pairs" in run("--project", "when2call", str(MCQ_FILE)) and project.pairs.count() == 3


def test_a_toolbench_tree_imports_one_pair_per_abandoned_branch(tmp_path):
    path = tmp_path / "82217_ChatGPT_DFS_woFilter_w2.json"
    path.write_text(json.dumps(branched(), indent=2))
    assert "Imported 2 pairs" in run("--project", "toolbench", str(path))
    rows = list(Project.objects.get(slug="toolbench").pairs.order_by("cut_step"))
    assert [(r.cut_turn, r.cut_step) for r in rows] == [(0, 0), (0, 2)]
    assert rows[0].rejected[0]["labels"] == ["hallucinated_tool"]


def _mixed(tmp_path):
    bad = copy.deepcopy(MCQ)
    bad["correct_answer"] = "maybe"
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(MCQ) + "\n" + json.dumps(bad) + "\n" + PREF_FILE.read_text())
    return path


def test_a_bad_record_imports_nothing_unless_skip_invalid(tmp_path):
    path = _mixed(tmp_path)
    with pytest.raises(CommandError, match="--skip-invalid"):
        run("--project", "mixed", str(path))
    assert Pair.objects.count() == 0
    out = run("--project", "mixed", "--skip-invalid", str(path))
    assert "mixed.jsonl:2: correct_answer:" in out and "Imported 4 pairs" in out and "skipped 1 invalid record" in out
    assert Pair.objects.count() == 4


def test_the_api_takes_skip_invalid_too(tmp_path, lead, project):
    c = APIClient()
    c.force_authenticate(lead)
    data = _mixed(tmp_path).read_bytes()
    r = c.post("/api/projects/weather/pairs/import/", {"file": SimpleUploadedFile("mixed.jsonl", data)},
               format="multipart")
    assert r.status_code == 400 and [e["line"] for e in r.data["errors"]] == [2] and Pair.objects.count() == 0
    r = c.post("/api/projects/weather/pairs/import/",
               {"file": SimpleUploadedFile("mixed.jsonl", data), "skip_invalid": "true"}, format="multipart")
    assert r.status_code == 201, r.data
    assert (r.data["created"], r.data["skipped"], r.data["formats"]) == (4, 1, ["when2call", "when2call_pref"])


def test_the_import_page_takes_skip_invalid_too(client, tmp_path, lead, project):
    client.force_login(lead)
    data = _mixed(tmp_path).read_bytes()
    r = client.post("/p/weather/pairs/import/", {"file": SimpleUploadedFile("mixed.jsonl", data)})
    assert r.status_code == 400 and "correct_answer" in r.content.decode() and Pair.objects.count() == 0
    r = client.post("/p/weather/pairs/import/", {"file": SimpleUploadedFile("mixed.jsonl", data), "skip_invalid": "on"})
    assert r.status_code == 302 and Pair.objects.count() == 4


def test_an_invalid_chosen_side_is_refused_unless_a_lead_records_why(tmp_path):
    rec = dict(MCQ, correct_answer="tool_call")  # the call to a tool the question does not offer is now "correct"
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    with pytest.raises(CommandError):
        run("--project", "w2c", str(path))
    out = run("--project", "w2c", "--override", "gold from the benchmark, tools list trimmed", str(path))
    assert "Imported 3 pairs" in out
    assert set(Pair.objects.values_list("override", flat=True)) == {"gold from the benchmark, tools list trimmed"}


def test_the_new_formats_import_as_trajectories_through_the_cli(tmp_path):
    from io import StringIO

    from tests.annotate.test_format_toolbench import FILE

    out = StringIO()
    for path in (MCQ_FILE, FILE):
        call_command("import_trajectories", str(path), "--project", "bench", stdout=out, stderr=out)
    rows = {t.source.split(":")[0]: t for t in Project.objects.get(slug="bench").trajectories.all()}
    assert set(rows) == {"when2call", "toolbench"}, out.getvalue()
    q = rows["when2call"]
    assert (q.external_id, q.reference, q.case_types) == (
        MCQ["uuid"], {"correct_answer": "cannot_answer", "target_tool": None}, ["tool_unavailable"])
    assert q.extra["answers"] == MCQ["answers"]
    tb = rows["toolbench"].to_canonical()
    assert [s.kind for s in tb.turns[0].steps][-1] == "answer" and "tree" in tb.meta.extra


def test_a_long_question_id_is_kept_whole_in_its_pairs_external_ids(tmp_path):
    record = copy.deepcopy(MCQ)
    record["uuid"] = "q-" + "x" * 400  # longer than any column width we once had (300)
    path = tmp_path / "long_id.jsonl"
    path.write_text(json.dumps(record) + "\n")
    run("--project", "long-ids", str(path))
    ids = sorted(Project.objects.get(slug="long-ids").pairs.values_list("external_id", flat=True))
    assert len(ids) == 3 and all(i.startswith(record["uuid"] + ":") for i in ids)
