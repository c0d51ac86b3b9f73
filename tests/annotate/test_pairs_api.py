"""The pairs API and CLI: create (fork + starter), list, update, review, suggestions, import, permissions."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotate.models import Pair, PairSuggestion
from annotate.workbench.documents import replace_document
from tests.annotate.test_pairs_pages import CANDIDATES

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def api_for(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


@pytest.fixture
def multi(demo_trajectories):
    return next(t for t in demo_trajectories if t.external_id == "demo-multi-turn")


def test_a_lead_forks_with_a_starter_and_gets_a_draft_pair(lead, multi):
    r = api_for(lead).post("/api/projects/weather/pairs/", {"trajectory": multi.pk, "turn": 1, "step": 1,
                                                            "starter": "tool_needed", "category": "tool_needed"},
                           format="json")
    assert r.status_code == 201, r.data
    assert r.data["cut"] == {"turn": 1, "step": 1} and r.data["status"] == "draft" and r.data["author"] == "lena"
    assert [s["kind"] for s in r.data["rejected"]] == ["answer"]
    assert [s["kind"] for s in r.data["chosen"]] == ["tool_call", "tool_result", "answer"]


def test_a_pair_from_a_context_document_and_explicit_sides(lead, project):
    context = {"tools": [], "turns": [{"user": "What does IATA stand for?"}]}
    r = api_for(lead).post("/api/projects/weather/pairs/", {
        "context": context, "category": "other",
        "chosen": [{"kind": "answer", "text": "International Air Transport Association."}],
        "rejected": [{"kind": "answer", "text": "International Airline Travel Agency."}]}, format="json")
    assert r.status_code == 201 and Pair.objects.get().trajectory is None


def test_a_pair_from_an_evaluation_failure_keeps_its_source(lead, multi):
    r = api_for(lead).post("/api/projects/weather/pairs/", {
        "trajectory": multi.pk, "turn": 1, "step": 1, "starter": "cost", "category": "cost",
        "source": "evaluation", "note": "eval run 7: repeated the conversion"}, format="json")
    assert r.status_code == 201 and (r.data["source"], r.data["category"]) == ("evaluation", "cost")
    d = api_for(lead).get("/api/projects/weather/pairs/dashboard/").data
    assert next(s["n"] for s in d["by_source"] if s["source"] == "evaluation") == 1


BAD_CREATES = [
    ("identical sides", {"turn": 1, "step": 1, "category": "other"}, "rejected", "identical"),
    ("cut past the end", {"turn": 4, "step": 0}, "cut.turn", "past the end"),
    ("step past the end", {"turn": 1, "step": 7}, "cut.step", "past the end"),
    ("schema-invalid chosen", {"turn": 1, "step": 1, "category": "cost",
                               "chosen": [{"kind": "tool_call", "name": "convert_currency", "call_id": "z",
                                           "arguments": {"amount": "a lot"}}]},
     "chosen[0].arguments", "chosen side must be valid"),
    ("unknown category", {"turn": 1, "step": 1, "category": "vibes", "starter": "tool_needed"}, "category",
     "unknown category"),
    ("malformed step", {"turn": 1, "step": 1, "rejected": [{"kind": "scream"}]}, "rejected[0].kind", "kind must be"),
    ("starter that does not apply", {"turn": 1, "step": 3, "starter": "format"}, "chosen", "no call"),
]


@pytest.mark.parametrize("why, body, field, words", BAD_CREATES, ids=[b[0] for b in BAD_CREATES])
def test_bad_input_gets_a_400_naming_the_field(lead, multi, why, body, field, words):
    r = api_for(lead).post("/api/projects/weather/pairs/", {"trajectory": multi.pk, **body}, format="json")
    assert r.status_code == 400
    assert any(e["field"].startswith(field) and words in e["message"] for e in r.data["errors"]), r.data
    assert Pair.objects.count() == 0


def test_a_schema_invalid_rejected_side_is_saved_with_its_problems_as_labels(lead, multi):
    bad = [{"kind": "tool_call", "name": "convert_currency", "call_id": "z", "arguments": {"amount": "a lot"}},
           {"kind": "tool_call", "name": "book_flight", "call_id": "y", "arguments": {}}]
    r = api_for(lead).post("/api/projects/weather/pairs/", {"trajectory": multi.pk, "turn": 1, "step": 1,
                                                            "category": "cost", "rejected": bad}, format="json")
    assert r.status_code == 201, r.data
    assert [s.get("labels") for s in r.data["rejected"]] == [["arg_type_error", "missing_required_arg"],
                                                             ["hallucinated_tool"]]


def test_a_lead_keeps_an_invalid_chosen_side_with_a_recorded_reason(lead, multi):
    chosen = [{"kind": "tool_call", "name": "convert_currency", "call_id": "z", "arguments": {"amount": "a lot"}}]
    body = {"trajectory": multi.pk, "turn": 1, "step": 1, "category": "cost", "chosen": chosen,
            "starter": "tool_needed"}
    assert api_for(lead).post("/api/projects/weather/pairs/", body, format="json").status_code == 400
    r = api_for(lead).post("/api/projects/weather/pairs/", {**body, "override": "the API takes words; schema is stale"},
                           format="json")
    assert r.status_code == 201, r.data
    row = Pair.objects.get(pk=r.data["id"])
    assert row.override == "the API takes words; schema is stale"
    assert row.to_core().to_document()["meta"]["override"] == row.override
    r = api_for(lead).post(f"/api/pairs/{row.pk}/review/", {"status": "approved"}, format="json")
    assert r.status_code == 200, r.data


@pytest.fixture
def pair(lead, multi):
    r = api_for(lead).post("/api/projects/weather/pairs/", {"trajectory": multi.pk, "turn": 1, "step": 1,
                                                            "starter": "tool_needed", "category": "tool_needed"},
                           format="json")
    return Pair.objects.get(pk=r.data["id"])


def test_list_update_and_review(lead, pair):
    c = api_for(lead)
    r = c.get("/api/projects/weather/pairs/?status=draft")
    assert [p["id"] for p in r.data["results"]] == [pair.pk]
    r = c.patch(f"/api/pairs/{pair.pk}/", {"rejected": [{"kind": "answer", "text": "About 150 euros."}]}, format="json")
    assert r.status_code == 200 and r.data["rejected"][0]["text"] == "About 150 euros."
    r = c.post(f"/api/pairs/{pair.pk}/review/", {"status": "approved", "note": "clear case"}, format="json")
    assert (r.data["status"], r.data["reviewer"], r.data["note"]) == ("approved", "lena", "clear case")
    assert c.get(f"/api/pairs/{pair.pk}/").data["errors"] == []


def test_an_update_that_breaks_the_pair_is_refused(lead, pair):
    r = api_for(lead).patch(f"/api/pairs/{pair.pk}/", {"rejected": pair.chosen}, format="json")
    assert r.status_code == 400 and "identical" in r.data["errors"][0]["message"]
    pair.refresh_from_db()
    assert pair.rejected[0]["kind"] == "answer"


@pytest.mark.parametrize("method, url, body", [
    ("post", "/api/projects/weather/pairs/", {"turn": 1, "step": 1}),
    ("patch", "/api/pairs/{pk}/", {"note": "x"}),
    ("post", "/api/pairs/{pk}/review/", {"status": "approved"}),
    ("post", "/api/projects/weather/pair-suggestions/decide/", {"ids": [1], "action": "accept"}),
    ("post", "/api/projects/weather/pairs/export/", {}),
])
def test_annotators_may_read_but_not_change_pairs(annotator, outsider, pair, method, url, body):
    url = url.format(pk=pair.pk)
    before = list(Pair.objects.values()), list(PairSuggestion.objects.values())
    assert getattr(api_for(annotator), method)(url, body, format="json").status_code == 403
    assert getattr(api_for(outsider), method)(url, body, format="json").status_code == 404
    assert (list(Pair.objects.values()), list(PairSuggestion.objects.values())) == before  # nothing changed
    assert api_for(annotator).get(f"/api/pairs/{pair.pk}/").status_code == 200
    assert api_for(outsider).get(f"/api/pairs/{pair.pk}/").status_code == 404


def test_anonymous_clients_get_401_or_403_not_a_login_page(pair):
    assert APIClient().get("/api/projects/weather/pairs/").status_code in (401, 403)


def test_suggestions_are_listed_and_decided_over_the_api(lead, annotator, demo_trajectories):
    t = next(x for x in demo_trajectories if x.external_id == "demo-needs-fixing")
    doc = t.to_canonical()
    doc.turns[0].steps[0].arguments = {"city": "Tokyo"}
    replace_document(t, doc, user=annotator, base_version=1)
    c = api_for(lead)
    [s] = c.get("/api/projects/weather/pair-suggestions/").data
    assert s["cut"] == {"turn": 0, "step": 0} and s["corrected_by"] == "ann"
    r = c.post("/api/projects/weather/pair-suggestions/decide/", {"ids": [s["id"]], "action": "accept"}, format="json")
    assert len(r.data["accepted"]) == 1 and Pair.objects.get().status == "approved"
    assert PairSuggestion.objects.get().status == "accepted"


def test_import_over_the_api(lead, project):
    f = SimpleUploadedFile("prefs.jsonl", (json.dumps(CANDIDATES) + "\n").encode())
    r = api_for(lead).post("/api/projects/weather/pairs/import/", {"file": f}, format="multipart")
    assert r.status_code == 201 and r.data["created"] == 2
    f = SimpleUploadedFile("prefs.jsonl", (json.dumps(CANDIDATES) + "\n").encode())
    r = api_for(lead).post("/api/projects/weather/pairs/import/", {"file": f}, format="multipart")
    assert (r.data["created"], r.data["duplicates"]) == (0, 2)


def test_the_dashboard_over_the_api(lead, pair):
    d = api_for(lead).get("/api/projects/weather/pairs/dashboard/").data
    assert d["total"] == 1 and "tool_needed" in d["missing"]  # a draft is not yet an approved pair
    row = next(r for r in d["categories"] if r["key"] == "tool_needed")
    assert (row["draft"], row["approved"]) == (1, 0)


def test_export_without_approved_pairs_is_a_clear_error(lead, pair):
    r = api_for(lead).post("/api/projects/weather/pairs/export/", {}, format="json")
    assert r.status_code == 400 and "no approved pairs" in r.data["errors"][0]["message"]


# The CLI -------------------------------------------------------------------------------------


def test_the_cli_creates_lists_and_reviews_pairs(multi, capsys, tmp_path):
    rejected = tmp_path / "rejected.json"
    rejected.write_text(json.dumps([{"kind": "answer", "text": "About 150 euros."}]))
    call_command("pairs", "create", "--project", "weather", "--trajectory", str(multi.pk), "--turn", "1",
                 "--step", "1", "--category", "tool_needed", "--rejected", str(rejected))
    pk = Pair.objects.get().pk
    assert f"Created draft pair {pk}" in capsys.readouterr().out
    call_command("pairs", "review", str(pk), "--status", "approved")
    call_command("pairs", "list", "--project", "weather", "--status", "approved", "--json")
    out = capsys.readouterr().out.strip().splitlines()
    doc = json.loads(out[-1])
    assert doc["id"] == pk and doc["meta"]["status"] == "approved"
    assert doc["rejected"] == [{"kind": "answer", "text": "About 150 euros."}]


def test_the_cli_reports_bad_pairs(multi, capsys):
    with pytest.raises(CommandError, match="not saved"):
        call_command("pairs", "create", "--project", "weather", "--trajectory", str(multi.pk), "--turn", "1",
                     "--step", "1")
    assert "identical" in capsys.readouterr().err
    with pytest.raises(CommandError, match="past the end"):
        call_command("pairs", "create", "--project", "weather", "--trajectory", str(multi.pk), "--turn", "3",
                     "--step", "0")


def test_the_cli_imports_candidates_and_accepts_suggestions(project, annotator, demo_trajectories, tmp_path, capsys):
    f = tmp_path / "prefs.jsonl"
    f.write_text(json.dumps(CANDIDATES) + "\n")
    call_command("pairs", "import", "--project", "weather", str(f))
    assert "Imported 2 pairs" in capsys.readouterr().out
    t = next(x for x in demo_trajectories if x.external_id == "demo-needs-fixing")
    doc = t.to_canonical()
    doc.turns[0].steps[0].arguments = {"city": "Tokyo"}
    replace_document(t, doc, user=annotator, base_version=1)
    call_command("pairs", "suggestions", "--project", "weather", "--accept", "all")
    assert "Accepted 1 suggestions" in capsys.readouterr().out
    assert Pair.objects.filter(source="correction", status="approved").count() == 1


def test_the_cli_names_the_bad_line_of_an_import(project, tmp_path, capsys):
    f = tmp_path / "prefs.jsonl"
    f.write_text(json.dumps(CANDIDATES) + "\n" + json.dumps({**CANDIDATES, "question": ""}) + "\n")
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("pairs", "import", "--project", "weather", str(f))
    assert "prefs.jsonl:2: question:" in capsys.readouterr().err
