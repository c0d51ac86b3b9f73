"""Pair pages: fork here, the builder (starters, add / remove steps, diff), save, review, list, dashboard, import."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate.models import Pair, PairCategory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # PBKDF2 costs ~1 s a user on a busy 2-core machine; these tests are not about passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(client, user):
    client.force_login(user)
    return client


def by_external_id(trajectories, external_id):
    return next(t for t in trajectories if t.external_id == external_id)


def form_from(pair_doc: dict, category: str, **extra) -> dict:
    """The builder's POST fields for a pair document's sides (what the browser would send)."""
    data = {"category": category, "note": "", **extra}
    for side in ("chosen", "rejected"):
        steps = pair_doc[side]
        data[f"{side}-count"] = str(len(steps))
        for i, s in enumerate(steps):
            p = f"{side}-{i}-"
            data[p + "kind"] = s["kind"]
            data[p + "text"] = s.get("text", "")
            data[p + "name"] = s.get("name", "")
            data[p + "call_id"] = s.get("call_id", "")
            if s["kind"] == "tool_call":
                args = s.get("arguments")
                data[p + "arguments"] = args if isinstance(args, str) else json.dumps(args)
            if s["kind"] == "tool_result" and s.get("ok", True):
                data[p + "ok"] = "on"
    return data


@pytest.fixture
def multi(demo_trajectories):
    return by_external_id(demo_trajectories, "demo-multi-turn")


def test_fork_here_shows_the_context_and_both_sides_as_the_trajectorys_continuation(client, lead, multi):
    r = client_for(client, lead).get(f"/t/{multi.pk}/fork/1/1/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "Shared context" in html and "HAT145" in html  # the earlier turn's tool result is in the context
    assert html.count('data-testid="chosen-step"') == 3 and html.count('data-testid="rejected-step"') == 3
    assert "The two sides are identical" in html


@pytest.mark.parametrize("turn, step, words", [(5, 0, "turn 5 is past the end"), (1, 9, "step 9 is past the end")])
def test_forking_past_the_end_is_a_clear_error(client, lead, multi, turn, step, words):
    r = client_for(client, lead).get(f"/t/{multi.pk}/fork/{turn}/{step}/")
    assert r.status_code == 400 and words in r.content.decode()


def test_annotators_may_not_build_pairs_and_outsiders_do_not_see_them(client, annotator, outsider, multi):
    assert client_for(client, annotator).get(f"/t/{multi.pk}/fork/1/1/").status_code == 403
    client.logout()
    assert client_for(client, outsider).get(f"/t/{multi.pk}/fork/1/1/").status_code == 404


def test_a_starter_fills_the_rejected_side_and_the_diff_shows_it(client, lead, multi):
    c = client_for(client, lead)
    doc = {"chosen": multi.to_canonical().turns[1].to_dict()["steps"][1:], "rejected": []}
    doc["rejected"] = doc["chosen"]
    r = c.post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "other", action="starter", starter="tool_needed"))
    html = r.content.decode()
    assert r.status_code == 200
    assert html.count('data-testid="rejected-step"') == 1  # the calls dropped; a direct answer remains
    assert 'value="tool_needed" selected' in html  # the category follows the starter
    assert "only on this side" in html and "The two sides are identical" not in html


def test_saving_a_pair_creates_a_draft_with_the_right_context_and_sides(client, lead, multi):
    c = client_for(client, lead)
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = {"chosen": steps[1:], "rejected": [{"kind": "answer", "text": "About 150 euros, I think."}]}
    r = c.post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "tool_needed", action="save"))
    pair = Pair.objects.get()
    assert r.status_code == 302 and r.url == pair.get_absolute_url()
    assert (pair.status, pair.category, pair.source, pair.author) == ("draft", "tool_needed", "manual", lead)
    assert (pair.cut_turn, pair.cut_step, pair.trajectory, pair.revision.version) == (1, 1, multi, 1)
    assert [s["kind"] for s in pair.context["turns"][0]["steps"]] == ["tool_call", "tool_result", "answer"]
    assert [s["kind"] for s in pair.context["turns"][1]["steps"]] == ["think"]
    assert pair.chosen[0]["arguments"] == {"amount": 189, "from_currency": "USD", "to_currency": "EUR"}
    assert pair.rejected == [{"kind": "answer", "text": "About 150 euros, I think."}]


BAD_SAVES = [
    ("identical sides", lambda d: d, "other", "identical"),
    ("a schema-invalid chosen call",
     lambda d: {**d, "chosen": [{"kind": "tool_call", "name": "convert_currency", "arguments": {"amount": "lots"},
                                 "call_id": "x"}], "rejected": [{"kind": "answer", "text": "No idea."}]},
     "tool_needed", "the chosen side must be valid"),
    ("broken JSON on the chosen side",
     lambda d: {**d, "chosen": [{"kind": "tool_call", "name": "convert_currency", "arguments": '{"amount": 1',
                                 "call_id": "x"}], "rejected": [{"kind": "answer", "text": "No idea."}]},
     "cost", "arguments must be a JSON object"),
]


@pytest.mark.parametrize("why, change, category, words", BAD_SAVES, ids=[b[0] for b in BAD_SAVES])
def test_a_bad_pair_is_not_saved_and_the_error_is_shown(client, lead, multi, why, change, category, words):
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = change({"chosen": steps[1:], "rejected": steps[1:]})
    r = client_for(client, lead).post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, category, action="save"))
    assert r.status_code == 400 and words in r.content.decode()
    assert Pair.objects.count() == 0


def test_broken_json_is_kept_in_the_format_category(client, lead, multi):
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = {"chosen": steps[1:], "rejected": [{"kind": "tool_call", "name": "convert_currency",
                                              "arguments": '{"amount": 189, "from_currency": "USD"', "call_id": "x"}]}
    r = client_for(client, lead).post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "format", action="save"))
    assert r.status_code == 302
    assert Pair.objects.get().rejected[0]["arguments"] == '{"amount": 189, "from_currency": "USD"'


def test_a_schema_invalid_rejected_call_is_saved_in_any_category_and_its_labels_are_shown(client, lead, multi):
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = {"chosen": steps[1:], "rejected": [{"kind": "tool_call", "name": "convert_currency",
                                              "arguments": {"amount": "lots"}, "call_id": "x"}]}
    c = client_for(client, lead)
    r = c.post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "tool_not_needed", action="save"))
    assert r.status_code == 302
    pair = Pair.objects.get()
    assert "arg_type_error" in pair.rejected[0]["labels"]
    html = c.get(pair.get_absolute_url()).content.decode()
    assert 'data-testid="rejected-labels"' in html and "arg_type_error" in html


def test_a_lead_keeps_an_invalid_chosen_side_with_a_reason_written_on_the_page(client, lead, multi):
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = {"chosen": [{"kind": "tool_call", "name": "convert_currency", "arguments": {"amount": "lots"},
                       "call_id": "x"}], "rejected": [{"kind": "answer", "text": "No idea."}]}
    form = {**form_from(doc, "tool_needed", action="save"), "override": "the service accepts words"}
    r = client_for(client, lead).post(f"/t/{multi.pk}/fork/1/1/", form)
    assert r.status_code == 302 and Pair.objects.get().override == "the service accepts words"


def test_add_and_remove_step_buttons_edit_one_side(client, lead, multi):
    c = client_for(client, lead)
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = {"chosen": steps[1:], "rejected": steps[1:]}
    r = c.post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "other", action="add-rejected-tool_call"))
    assert r.content.decode().count('data-testid="rejected-step"') == 4
    r = c.post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "other", action="remove-rejected-0"))
    html = r.content.decode()
    assert html.count('data-testid="rejected-step"') == 2 and html.count('data-testid="chosen-step"') == 3


def test_the_htmx_diff_refresh_returns_only_the_diff(client, lead, multi):
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = {"chosen": steps[1:], "rejected": steps[1:2]}
    r = client_for(client, lead).post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "other", action="diff"),
                                      HTTP_HX_REQUEST="true")
    html = r.content.decode()
    assert 'class="pair-diff"' in html and "<form" not in html and "diff-chosen_only" in html


@pytest.fixture
def draft_pair(client, lead, multi):
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = {"chosen": steps[1:], "rejected": [{"kind": "answer", "text": "About 150 euros."}]}
    client_for(client, lead).post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "tool_needed", action="save"))
    return Pair.objects.get()


def test_a_lead_approves_a_pair_and_an_edit_sends_it_back_to_draft(client, lead, multi, draft_pair):
    r = client.post(f"/pairs/{draft_pair.pk}/review/", {"status": "approved"}, follow=True)
    draft_pair.refresh_from_db()
    assert draft_pair.status == "approved" and draft_pair.reviewer == lead
    assert "is now approved" in r.content.decode()
    doc = {"chosen": draft_pair.chosen, "rejected": [{"kind": "answer", "text": "Roughly 150 euros."}]}
    client.post(f"/pairs/{draft_pair.pk}/edit/", form_from(doc, "tool_needed", action="save"))
    draft_pair.refresh_from_db()
    assert draft_pair.status == "draft" and draft_pair.reviewer is None
    assert draft_pair.rejected[0]["text"] == "Roughly 150 euros."


def test_annotators_read_pairs_but_may_not_review_them(client, annotator, draft_pair):
    c = client_for(client, annotator)
    r = c.get(f"/pairs/{draft_pair.pk}/")
    assert r.status_code == 200 and "Approve" not in r.content.decode()
    assert c.post(f"/pairs/{draft_pair.pk}/review/", {"status": "approved"}).status_code == 403
    draft_pair.refresh_from_db()
    assert draft_pair.status == "draft"


def test_the_list_filters_by_status_and_category(client, lead, draft_pair):
    c = client_for(client, lead)
    assert "How much is the cheaper one" in c.get("/p/weather/pairs/?category=tool_needed").content.decode()
    assert "No pairs match" in c.get("/p/weather/pairs/?status=approved").content.decode()


def test_the_dashboard_counts_pairs_and_names_the_missing_categories(client, lead, draft_pair):
    c = client_for(client, lead)
    c.post(f"/pairs/{draft_pair.pk}/review/", {"status": "approved"})
    html = c.get("/p/weather/pairs/dashboard/").content.decode()
    assert "Categories with no approved pair yet" in html
    missing = html.split('id="missing-categories"')[1].split("</div>")[0]
    assert "Tool not needed" in missing and "Tool needed<" not in missing


def test_a_lead_adds_a_project_category_and_can_use_it(client, lead, multi):
    c = client_for(client, lead)
    c.post("/p/weather/pairs/categories/", {"name": "Politeness", "description": "Chosen: polite. Rejected: rude."})
    assert PairCategory.objects.get().key == "politeness"
    steps = multi.to_canonical().turns[1].to_dict()["steps"]
    doc = {"chosen": steps[1:], "rejected": [{"kind": "answer", "text": "Look it up yourself."}]}
    r = c.post(f"/t/{multi.pk}/fork/1/1/", form_from(doc, "politeness", action="save"))
    assert r.status_code == 302 and Pair.objects.get().category == "politeness"


CANDIDATES = {
    "id": "q1", "tools": [{"name": "search_flights", "parameters": {"type": "object", "properties": {
        "origin": {"type": "string"}, "destination": {"type": "string"}, "date": {"type": "string"}},
        "required": ["origin", "destination", "date"]}}],
    "question": "Find me a flight to Seattle.",
    "candidates": [{"id": "direct", "type": "direct", "answer": "AS12 at 9:00."},
                   {"id": "call", "type": "tool_call", "tool_calls": [{"name": "search_flights", "arguments": {
                       "origin": "JFK", "destination": "SEA", "date": "2024-05-20"}}]},
                   {"id": "clarify", "type": "clarify", "answer": "From where, and when?"}],
    "correct": "clarify",
}


def test_a_lead_imports_candidates_and_gets_draft_pairs(client, lead, project):
    c = client_for(client, lead)
    f = SimpleUploadedFile("prefs.jsonl", (json.dumps(CANDIDATES) + "\n").encode())
    r = c.post("/p/weather/pairs/import/", {"file": f}, follow=True)
    assert "Imported 2 pairs from prefs.jsonl" in r.content.decode()
    assert sorted(Pair.objects.values_list("category", "source", "status")) == [
        ("missing_argument", "imported", "draft"), ("other", "imported", "draft")]


def test_a_bad_candidates_file_imports_nothing_and_names_the_line(client, lead, project):
    f = SimpleUploadedFile("prefs.jsonl", (json.dumps(CANDIDATES) + "\n" + json.dumps({**CANDIDATES, "correct": "x"})
                                           + "\n").encode())
    r = client_for(client, lead).post("/p/weather/pairs/import/", {"file": f})
    html = r.content.decode()
    assert r.status_code == 400 and "Nothing was imported" in html and "no candidate has id" in html
    assert "<td>2</td>" in html and Pair.objects.count() == 0


def test_the_editor_offers_fork_here_on_every_step_to_leads_only(client, lead, annotator, multi):
    html = client_for(client, lead).get(f"/t/{multi.pk}/").content.decode()
    assert html.count('class="small fork-here"') == 7
    assert f'href="/t/{multi.pk}/fork/1/1/"' in html
    client.logout()
    assert "fork-here" not in client_for(client, annotator).get(f"/t/{multi.pk}/").content.decode()
