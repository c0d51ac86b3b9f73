"""Pairs suggested by corrections: an annotator's revision of an assistant step → a pair for a lead to accept."""

from __future__ import annotations

import pytest

from annotate.models import Pair, PairSuggestion
from annotate.pairs.services import refresh_suggestions
from annotate.workbench.documents import replace_document
from annotate.trajectory import Step

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def by_external_id(trajectories, external_id):
    return next(t for t in trajectories if t.external_id == external_id)


def save(trajectory, user, edit, summary="edit"):
    """One editor save: load the current document, change it, save it (a new revision)."""
    trajectory.refresh_from_db()
    doc = trajectory.to_canonical()
    edit(doc)
    return replace_document(trajectory, doc, user=user, base_version=trajectory.version, summary=summary)


def fix_city(doc):
    call = doc.turns[0].steps[0]
    call.arguments = {"city": "Tokyo", "unit": "fahrenheit"}
    call.labels = []


def fix_answer(doc):
    doc.turns[0].steps[1] = Step(kind="tool_result", name="get_weather", call_id="c1",
                                 text='{"temperature": 64, "condition": "sunny"}')
    doc.turns[0].steps[2].text = "It is 64 °F and sunny in Tokyo."


@pytest.fixture
def tokyo(demo_trajectories):
    return by_external_id(demo_trajectories, "demo-needs-fixing")


def test_a_correction_suggests_a_pair_with_the_original_as_rejected(client, lead, annotator, tokyo, project):
    save(tokyo, annotator, fix_city)
    client.force_login(lead)
    r = client.get("/p/weather/pairs/suggestions/")
    assert r.status_code == 200 and "Weather in Tokyo in fahrenheit?" in r.content.decode()
    s = PairSuggestion.objects.get()
    assert (s.trajectory, s.cut_turn, s.cut_step, s.base_version, s.version) == (tokyo, 0, 0, 1, 2)
    assert s.corrected_by == annotator and s.category == "format"
    assert s.context["turns"] == [{"user": "Weather in Tokyo in fahrenheit?", "steps": []}]
    assert s.chosen[0]["arguments"] == {"city": "Tokyo", "unit": "fahrenheit"}
    assert s.rejected[0]["arguments"] == {"location": "Tokyo", "unit": "fahrenheit"}
    assert [x["kind"] for x in s.rejected] == [x["kind"] for x in s.chosen] == ["tool_call", "tool_result", "answer"]


def test_intermediate_saves_give_one_suggestion_for_the_net_correction(lead, annotator, tokyo, project):
    save(tokyo, annotator, fix_city)
    refresh_suggestions(project)
    save(tokyo, annotator, fix_answer)
    refresh_suggestions(project)
    s = PairSuggestion.objects.get()
    assert s.version == 3 and s.chosen[2]["text"] == "It is 64 °F and sunny in Tokyo."
    assert s.rejected[2]["text"] == "It's sunny in Tokyo."


def test_only_trajectories_saved_since_the_last_look_are_scanned(annotator, tokyo, project):
    save(tokyo, annotator, fix_city)
    assert refresh_suggestions(project) == 1
    assert refresh_suggestions(project) == 0


def test_a_label_only_save_suggests_nothing(annotator, demo_trajectories, project):
    t = by_external_id(demo_trajectories, "demo-unnecessary-call")
    save(t, annotator, lambda d: setattr(d.turns[0].steps[0], "labels", ["unnecessary_tool_call"]))
    refresh_suggestions(project)
    assert PairSuggestion.objects.count() == 0


def test_accepting_makes_an_approved_correction_pair_and_it_is_not_suggested_again(client, lead, annotator, tokyo,
                                                                                  project):
    save(tokyo, annotator, fix_city)
    client.force_login(lead)
    client.get("/p/weather/pairs/suggestions/")
    s = PairSuggestion.objects.get()
    r = client.post("/p/weather/pairs/suggestions/", {"ids": [s.pk], "action": "accept"}, follow=True)
    assert "Accepted 1 suggestion as approved pairs" in r.content.decode()
    pair = Pair.objects.get()
    assert (pair.source, pair.status, pair.reviewer, pair.author, pair.category) == (
        "correction", "approved", lead, annotator, "format")
    assert (pair.trajectory, pair.revision.version, pair.cut_turn, pair.cut_step) == (tokyo, 2, 0, 0)
    assert pair.chosen == s.chosen and pair.rejected == s.rejected
    save(tokyo, lead, lambda d: d.meta.tags.append("checked"))
    client.get("/p/weather/pairs/suggestions/")
    assert PairSuggestion.objects.filter(status="pending").count() == 0
    assert Pair.objects.count() == 1


def test_a_dismissed_suggestion_stays_dismissed(client, lead, annotator, tokyo, project):
    save(tokyo, annotator, fix_city)
    client.force_login(lead)
    client.get("/p/weather/pairs/suggestions/")
    s = PairSuggestion.objects.get()
    client.post("/p/weather/pairs/suggestions/", {"ids": [s.pk], "action": "dismiss"})
    save(tokyo, lead, lambda d: d.meta.tags.append("checked"))
    r = client.get("/p/weather/pairs/suggestions/")
    assert "No pending suggestions" in r.content.decode()
    assert Pair.objects.count() == 0


def test_leads_accept_suggestions_in_bulk(client, lead, annotator, tokyo, demo_trajectories, project):
    save(tokyo, annotator, fix_city)
    multi = by_external_id(demo_trajectories, "demo-multi-turn")
    save(multi, annotator, lambda d: setattr(d.turns[1].steps[3], "text", "HAT145 costs €174.05."))
    client.force_login(lead)
    client.get("/p/weather/pairs/suggestions/")
    ids = list(PairSuggestion.objects.values_list("id", flat=True))
    assert len(ids) == 2
    client.post("/p/weather/pairs/suggestions/", {"ids": ids, "action": "accept"})
    assert sorted(Pair.objects.values_list("category", flat=True)) == ["format", "tool_result"]
    multi_pair = Pair.objects.get(trajectory=multi)
    assert [s["kind"] for s in multi_pair.context["turns"][0]["steps"]] == ["tool_call", "tool_result", "answer"]


def test_annotators_do_not_see_the_suggestions(client, annotator, project):
    client.force_login(annotator)
    assert client.get("/p/weather/pairs/suggestions/").status_code == 403


def test_the_annotator_keeps_the_credit_after_a_lead_approves(lead, annotator, tokyo, project):
    from annotate.workbench.transitions import transition

    save(tokyo, annotator, fix_city)
    transition(tokyo, "submit", user=annotator)
    transition(tokyo, "approve", user=lead)
    refresh_suggestions(project)
    s = PairSuggestion.objects.get()
    assert s.version == 4 and s.corrected_by == annotator
