"""The editor page: step saves (htmx and plain), argument forms, conflicts, structure edits,
metadata, history and revert, the review workflow, and escaping of untrusted text."""

from __future__ import annotations

import re

import pytest

from annotate.models import Revision, Trajectory
from annotate.workbench.documents import current_document

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The role fixtures create users with passwords; the default hasher costs ~0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def by_id(demo_trajectories):
    return {t.external_id: t for t in demo_trajectories}


@pytest.fixture
def as_lead(client, lead):
    client.force_login(lead)
    return client


def doc_of(t: Trajectory):
    t.refresh_from_db()
    return current_document(t)


def step_form(t: Trajectory, turn: int, step: int, **changes) -> dict:
    """The form the editor draws for a step, as a browser would submit it, with ``changes``."""
    t.refresh_from_db()
    s = current_document(t).turns[turn].steps[step]
    data = {"base_version": t.version, "note": s.note, "labels": list(s.labels), "call_id": s.call_id}
    if s.train:
        data["train"] = "on"
    if s.kind in ("think", "answer", "tool_result"):
        data["text"] = s.text
    if s.kind == "tool_result":
        data["ok"] = "ok" if s.ok else "error"
    if s.kind == "tool_call":
        data.update({"name": s.name, "args_mode": "raw", "args_tool": s.name,
                     "arguments_json": __import__("json").dumps(s.arguments)})
    data.update(changes)
    return data


def text(response) -> str:
    return response.content.decode()


def test_the_editor_shows_each_argument_as_a_field_with_its_error(as_lead, by_id):
    t = by_id["demo-needs-fixing"]
    r = as_lead.get(f"/t/{t.pk}/")
    html = text(r)
    assert r.status_code == 200
    assert 'name="arg:city"' in html and 'name="arg:unit"' in html
    errors = re.search(r'id="argerr-0-0-0">(.*?)</ul>', html).group(1)
    assert "&#x27;city&#x27; is a required property" in errors
    assert "&quot;location&quot;: &quot;Tokyo&quot;" in html  # the argument the schema lacks is kept
    assert 'value="missing_required_arg" checked' in html


def test_saving_a_step_with_htmx_swaps_that_step_and_moves_the_version(as_lead, by_id):
    t = by_id["demo-weather"]
    r = as_lead.post(f"/t/{t.pk}/steps/0/0/", step_form(t, 0, 0, text="Paris weather: call get_weather."), **HTMX)
    html = text(r)
    assert r.status_code == 200
    assert html.lstrip().startswith('<section class="step think')
    assert "Paris weather: call get_weather." in html and "saved · v2" in html
    assert 'hx-swap-oob=\'outerHTML:.base-version[value="1"]\'' in html and 'value="2" class="base-version"' in html
    assert doc_of(t).turns[0].steps[0].text == "Paris weather: call get_weather."
    assert list(t.revisions.values_list("version", "author__username")) == [(2, "lena"), (1, None)]


def test_without_javascript_a_save_redirects_back_to_the_step(as_lead, by_id):
    t = by_id["demo-weather"]
    r = as_lead.post(f"/t/{t.pk}/steps/0/3/", step_form(t, 0, 3, text="18 °C, cloudy."))
    assert r.status_code == 302 and r.url == f"/t/{t.pk}/#step-0-3"
    assert doc_of(t).turns[0].steps[3].text == "18 °C, cloudy."


def test_labels_note_and_train_flag_are_saved(as_lead, by_id):
    t = by_id["demo-unnecessary-call"]
    data = step_form(t, 0, 0, labels=["unnecessary_tool_call"], note="nothing asked for weather")
    data.pop("train")
    as_lead.post(f"/t/{t.pk}/steps/0/0/", data, **HTMX)
    step = doc_of(t).turns[0].steps[0]
    assert (step.labels, step.note, step.train) == (["unnecessary_tool_call"], "nothing asked for weather", False)
    assert t.step_labels.get().label == "unnecessary_tool_call"


def test_a_label_outside_the_taxonomy_is_refused_but_one_a_step_already_has_stays(as_lead, by_id, project):
    t = by_id["demo-needs-fixing"]
    project.error_labels = [{"name": "wrong_tool", "description": ""}]
    project.save()
    kept = as_lead.post(f"/t/{t.pk}/steps/0/0/", step_form(t, 0, 0, note="kept"), **HTMX)
    assert kept.status_code == 200
    assert set(doc_of(t).turns[0].steps[0].labels) == {"unexpected_arg", "missing_required_arg"}
    refused = as_lead.post(f"/t/{t.pk}/steps/0/0/", step_form(t, 0, 0, labels=["made_up"]), **HTMX)
    assert refused.status_code == 422 and "not in the project&#x27;s taxonomy: made_up" in text(refused)


def test_arguments_from_the_form_are_typed_by_the_schema(as_lead, by_id):
    t = by_id["demo-failure"]
    data = step_form(t, 0, 0, args_mode="form", **{"arg:amount": "250.5", "argw:amount": "number",
                                                   "arg:from_currency": "USD", "argw:from_currency": "text",
                                                   "arg:to_currency": "JPY", "argw:to_currency": "text"})
    assert as_lead.post(f"/t/{t.pk}/steps/0/0/", data, **HTMX).status_code == 200
    assert doc_of(t).turns[0].steps[0].arguments == {"amount": 250.5, "from_currency": "USD", "to_currency": "JPY"}


def test_an_unreadable_number_is_refused_and_the_typed_text_stays(as_lead, by_id):
    t = by_id["demo-failure"]
    data = step_form(t, 0, 0, args_mode="form", **{"arg:amount": "a hundred", "argw:amount": "number",
                                                   "arg:from_currency": "USD", "arg:to_currency": "EUR"})
    r = as_lead.post(f"/t/{t.pk}/steps/0/0/", data, **HTMX)
    assert r.status_code == 422
    assert 'value="a hundred"' in text(r) and "Enter a number." in text(r)
    t.refresh_from_db()
    assert t.version == 1


def test_a_missing_required_argument_is_saved_and_shown_next_to_its_field(as_lead, by_id):
    t = by_id["demo-weather"]
    data = step_form(t, 0, 1, args_mode="form", **{"arg:city": "", "arg:unit": "celsius"})
    r = as_lead.post(f"/t/{t.pk}/steps/0/1/", data, **HTMX)
    assert r.status_code == 200
    assert re.search(r'id="argerr-0-1-0"><li>&#x27;city&#x27; is a required property', text(r))
    assert doc_of(t).turns[0].steps[1].arguments == {"unit": "celsius"}
    t.refresh_from_db()
    assert t.finding_count == 1


def test_live_validation_answers_with_errors_for_each_field(as_lead, by_id):
    t = by_id["demo-weather"]
    data = step_form(t, 0, 1, args_mode="form", **{"arg:city": "", "arg:unit": "kelvin"})
    r = as_lead.post(f"/t/{t.pk}/steps/0/1/check/", data, **HTMX)
    html = text(r)
    assert re.search(r'id="argerr-0-1-0" hx-swap-oob="true"><li>&#x27;city&#x27; is a required property', html)
    assert re.search(r'id="argerr-0-1-1" hx-swap-oob="true"><li>&#x27;kelvin&#x27; is not one of', html)
    assert "2 problems" in html
    fixed = as_lead.post(f"/t/{t.pk}/steps/0/1/check/", {**data, "arg:city": "Paris", "arg:unit": "celsius"}, **HTMX)
    assert "✓ matches the schema" in text(fixed) and "<li>" not in text(fixed)
    t.refresh_from_db()
    assert t.version == 1  # checking saves nothing


def test_switching_to_raw_json_and_back_keeps_what_was_typed(as_lead, by_id):
    t = by_id["demo-weather"]
    data = step_form(t, 0, 1, args_mode="form", **{"arg:city": "Lyon", "arg:unit": ""})
    raw = as_lead.post(f"/t/{t.pk}/steps/0/1/arguments/?mode=raw", data, **HTMX)
    assert 'name="arguments_json"' in text(raw) and "&quot;city&quot;: &quot;Lyon&quot;" in text(raw)
    back = as_lead.post(f"/t/{t.pk}/steps/0/1/arguments/?mode=form",
                        {**data, "args_mode": "raw", "arguments_json": '{"city": "Nice", "unit": "fahrenheit"}'}, **HTMX)
    assert 'name="arg:city" value="Nice"' in text(back)
    assert '<option value="fahrenheit" selected>' in text(back)


def test_choosing_another_tool_redraws_the_fields_for_its_schema(as_lead, by_id):
    t = by_id["demo-weather"]
    data = step_form(t, 0, 1, args_mode="form", name="search_flights", args_tool="get_weather",
                     **{"arg:city": "Paris", "arg:unit": "celsius"})
    r = as_lead.post(f"/t/{t.pk}/steps/0/1/arguments/?mode=form", data, **HTMX)
    html = text(r)
    for field in ("origin", "destination", "date", "cabin"):
        assert f'name="arg:{field}"' in html
    assert "&quot;city&quot;: &quot;Paris&quot;" in html  # carried over as another argument, not dropped


# --- conflicts ------------------------------------------------------------------------------------------

@pytest.fixture
def second(client, annotator, django_user_model):
    from django.test import Client

    c = Client()
    c.force_login(annotator)
    return c


def test_a_stale_save_gets_the_conflict_view_with_their_change_and_keeps_my_text(as_lead, second, by_id):
    t = by_id["demo-weather"]
    mine = step_form(t, 0, 3, text="My answer: 18 degrees.")
    as_lead.post(f"/t/{t.pk}/steps/0/3/", step_form(t, 0, 3, text="Their answer: 18 °C and cloudy."), **HTMX)
    r = second.post(f"/t/{t.pk}/steps/0/3/", mine, **HTMX)
    html = text(r)
    assert r.status_code == 409
    assert "lena saved version 2 while you were editing version 1" in html
    assert "<ins>Their " in html or "Their" in re.sub(r"<[^>]+>", "", html)
    assert "My answer: 18 degrees." in html  # nothing typed is lost
    assert 'name="merge_base" value="1"' in html and 'name="seen_version" value="2"' in html
    assert doc_of(t).turns[0].steps[3].text == "Their answer: 18 °C and cloudy."


def test_without_javascript_the_conflict_is_a_page_of_its_own(as_lead, second, by_id):
    t = by_id["demo-weather"]
    mine = step_form(t, 0, 3, text="Mine.")
    as_lead.post(f"/t/{t.pk}/steps/0/3/", step_form(t, 0, 3, text="Theirs."), **HTMX)
    r = second.post(f"/t/{t.pk}/steps/0/3/", mine)
    assert r.status_code == 409 and "your save was not applied" in text(r) and ">Mine.</textarea>" in text(r)


def test_merge_applies_my_fields_on_top_of_their_version(as_lead, second, by_id):
    t = by_id["demo-weather"]
    mine = step_form(t, 0, 3, note="answer is fine")
    as_lead.post(f"/t/{t.pk}/steps/0/3/", step_form(t, 0, 3, text="Their answer."), **HTMX)
    as_lead.post(f"/t/{t.pk}/structure/?op=insert_step&turn=0&step=0", {"kind": "think", "base_version": 2}, **HTMX)
    r = second.post(f"/t/{t.pk}/steps/0/3/", {**mine, "resolution": "merge", "merge_base": 1, "seen_version": 3}, **HTMX)
    assert r.status_code == 200 and r["HX-Retarget"] == "#document"
    answer = doc_of(t).turns[0].steps[4]  # their inserted step moved it down
    assert (answer.text, answer.note) == ("Their answer.", "answer is fine")
    assert t.revisions.get(version=4).summary.endswith("(merged over version 3)")


def test_overwrite_replaces_their_version_and_the_history_keeps_theirs(as_lead, second, by_id):
    t = by_id["demo-weather"]
    mine = step_form(t, 0, 3, text="Mine wins.")
    as_lead.post(f"/t/{t.pk}/steps/0/0/", step_form(t, 0, 0, text="Their thought."), **HTMX)
    second.post(f"/t/{t.pk}/steps/0/3/", {**mine, "resolution": "overwrite", "merge_base": 1, "seen_version": 2})
    d = doc_of(t)
    assert d.turns[0].steps[3].text == "Mine wins." and d.turns[0].steps[0].text != "Their thought."
    assert t.revisions.get(version=2).document["turns"][0]["steps"][0]["text"] == "Their thought."


def test_a_resolution_based_on_an_outdated_view_is_refused_again(as_lead, second, by_id):
    t = by_id["demo-weather"]
    mine = step_form(t, 0, 3, text="Mine.")
    as_lead.post(f"/t/{t.pk}/steps/0/3/", step_form(t, 0, 3, text="Theirs 1."), **HTMX)
    as_lead.post(f"/t/{t.pk}/steps/0/3/", step_form(t, 0, 3, text="Theirs 2."), **HTMX)
    r = second.post(f"/t/{t.pk}/steps/0/3/", {**mine, "resolution": "overwrite", "merge_base": 1, "seen_version": 2},
                    **HTMX)
    assert r.status_code == 409 and "saved version 3" in text(r)
    assert doc_of(t).turns[0].steps[3].text == "Theirs 2."


# --- structure, turns, metadata ----------------------------------------------------------------------------

@pytest.mark.parametrize("query, kinds", [
    ("op=insert_step&turn=0&kind=think", ["think", "tool_call", "tool_result", "answer", "think"]),
    ("op=duplicate_step&turn=0&step=0", ["think", "think", "tool_call", "tool_result", "answer"]),
    ("op=delete_step&turn=0&step=0", ["tool_call", "tool_result", "answer"]),
    ("op=move_step&turn=0&step=3&by=-1", ["think", "tool_call", "answer", "tool_result"]),
    ("op=add_parallel_call&turn=0&step=1", ["think", "tool_call", "tool_call", "tool_result", "tool_result", "answer"]),
])
def test_structure_buttons_change_the_steps(as_lead, by_id, query, kinds):
    t = by_id["demo-weather"]
    r = as_lead.post(f"/t/{t.pk}/structure/?{query}", {"base_version": 1}, **HTMX)
    assert r.status_code == 200 and 'id="document"' in text(r)
    assert [s.kind for s in doc_of(t).turns[0].steps] == kinds
    assert t.version == 2


def test_adding_a_turn_without_javascript(as_lead, by_id):
    t = by_id["demo-no-tool"]
    r = as_lead.post(f"/t/{t.pk}/structure/?op=add_turn", {"base_version": 1, "user": "And ICAO?"})
    assert r.status_code == 302
    assert [turn.user for turn in doc_of(t).turns] == ["What does IATA stand for?", "And ICAO?"]


def test_a_stale_structure_edit_is_not_applied_and_offers_to_redo_it(as_lead, second, by_id):
    t = by_id["demo-weather"]
    as_lead.post(f"/t/{t.pk}/steps/0/0/", step_form(t, 0, 0, text="Theirs."), **HTMX)
    r = second.post(f"/t/{t.pk}/structure/?op=delete_step&turn=0&step=3", {"base_version": 1}, **HTMX)
    assert r.status_code == 409 and "was not applied" in text(r) and "Do it on the latest version" in text(r)
    assert len(doc_of(t).turns[0].steps) == 4
    redo = second.post(f"/t/{t.pk}/structure/", {"op": "delete_step", "turn": 0, "step": 3, "resolution": "merge",
                                                 "merge_base": 1, "seen_version": 2}, **HTMX)
    assert redo.status_code == 200 and [s.kind for s in doc_of(t).turns[0].steps][-1] == "tool_result"


def test_without_javascript_a_stale_structure_edit_gets_a_conflict_page(as_lead, second, by_id):
    t = by_id["demo-weather"]
    as_lead.post(f"/t/{t.pk}/steps/0/0/", step_form(t, 0, 0, text="Theirs."), **HTMX)
    r = second.post(f"/t/{t.pk}/structure/?op=duplicate_step&turn=0&step=1", {"base_version": 1})
    html = text(r)
    assert r.status_code == 409 and "your save was not applied" in html and "Do it on the latest version" in html
    assert "Theirs." in html  # the page shows the latest version


def test_a_stale_metadata_save_keeps_what_was_ticked_and_merges_field_by_field(as_lead, second, by_id):
    t = by_id["demo-clarify"]
    as_lead.post(f"/t/{t.pk}/meta/", {"base_version": 1, "case_types": ["clarification"], "split": "eval",
                                      "tags": "", "system": "Ask first."}, **HTMX)
    mine = {"base_version": 1, "case_types": ["clarification", "no_tool"], "split": "eval", "tags": "hard",
            "system": current_document(t).system}
    r = second.post(f"/t/{t.pk}/meta/", mine, **HTMX)
    html = text(r)
    assert r.status_code == 409 and "lena saved version 2" in html
    assert 'value="no_tool" checked' in html and 'name="tags" value="hard"' in html
    second.post(f"/t/{t.pk}/meta/", {**mine, "resolution": "merge", "merge_base": 1, "seen_version": 2}, **HTMX)
    d = doc_of(t)
    assert (d.system, d.meta.case_types, d.meta.tags) == ("Ask first.", ["clarification", "no_tool"], ["hard"])


def test_the_user_message_and_metadata_are_saved(as_lead, by_id):
    t = by_id["demo-clarify"]
    as_lead.post(f"/t/{t.pk}/turns/0/", {"base_version": 1, "user": "Find me a flight to Seattle, please."}, **HTMX)
    r = as_lead.post(f"/t/{t.pk}/meta/", {"base_version": 2, "case_types": ["clarification", "no_tool"],
                                          "split": "test", "tags": "hard, seattle", "system": "Be brief."}, **HTMX)
    assert r.status_code == 200
    t.refresh_from_db()
    d = current_document(t)
    assert d.turns[0].user == "Find me a flight to Seattle, please."
    assert (d.meta.case_types, d.meta.split, d.meta.tags, d.system) == (
        ["clarification", "no_tool"], "test", ["hard", "seattle"], "Be brief.")
    assert (t.case_types_index, t.split) == ("|clarification|no_tool|", "test")


# --- history and revert ----------------------------------------------------------------------------------

def test_history_shows_who_changed_which_step_and_revert_brings_a_version_back(as_lead, by_id):
    t = by_id["demo-weather"]
    as_lead.post(f"/t/{t.pk}/steps/0/3/", step_form(t, 0, 3, text="It is 18 °C and cloudy."), **HTMX)
    page = text(as_lead.get(f"/t/{t.pk}/history/"))
    assert "Version 2" in page and "lena" in page and "turn 1 · step 4 · answer" in page
    assert "<ins>cloudy.</ins>" in page or "<ins>" in page
    r = as_lead.post(f"/t/{t.pk}/revert/", {"version": 1, "base_version": 2})
    assert r.status_code == 302
    t.refresh_from_db()
    assert t.version == 3 and doc_of(t).turns[0].steps[3].text == "It is 18 °C and cloudy in Paris right now."
    assert t.revisions.get(version=3).summary == "reverted to version 1"


# --- workflow ----------------------------------------------------------------------------------------------

def test_the_review_round_trip(client, as_lead, second, annotator, by_id):
    t = by_id["demo-weather"]
    url = f"/t/{t.pk}/status/"
    # Submitting with an unlabelled schema error is refused, with the step named.
    second.post(f"/t/{t.pk}/steps/0/1/", step_form(t, 0, 1, arguments_json="{}"), **HTMX)
    r = second.post(url, {"action": "submit"}, follow=True)
    assert "Fix these errors" in text(r) and "Turn 1, step 2" in text(r)
    second.post(f"/t/{t.pk}/steps/0/1/", step_form(t, 0, 1, labels=["missing_required_arg"]), **HTMX)
    assert second.post(url, {"action": "submit"}).status_code == 302
    t.refresh_from_db()
    assert (t.status, t.assignee) == ("submitted", annotator)
    # In review the annotator may not edit; a lead must say why when rejecting.
    before = (current_document(t).to_dict(), Trajectory.objects.get(pk=t.pk).version, Revision.objects.count())
    assert second.post(f"/t/{t.pk}/steps/0/0/", step_form(t, 0, 0, text="x"), **HTMX).status_code == 403
    assert (current_document(t).to_dict(), Trajectory.objects.get(pk=t.pk).version, Revision.objects.count()) == before
    assert "needs a comment" in text(as_lead.post(url, {"action": "reject"}, follow=True))
    as_lead.post(url, {"action": "reject", "comment": "Ask for the unit <b>first</b>."})
    t.refresh_from_db()
    assert t.status == "rejected"
    assert "Ask for the unit &lt;b&gt;first&lt;/b&gt;." in text(second.get(f"/t/{t.pk}/"))
    second.post(url, {"action": "submit"})
    as_lead.post(url, {"action": "approve"})
    t.refresh_from_db()
    assert t.status == "approved"
    assert list(t.revisions.order_by("version").values_list("status", flat=True))[-4:] == [
        "submitted", "rejected", "submitted", "approved"]


def test_a_stale_submit_is_refused(as_lead, second, by_id):
    t = by_id["demo-no-tool"]
    as_lead.post(f"/t/{t.pk}/steps/0/1/", step_form(t, 0, 1, text="IATA: International Air Transport Association."),
                 **HTMX)
    r = second.post(f"/t/{t.pk}/status/", {"action": "submit", "base_version": 1}, follow=True)
    assert "Someone saved this trajectory" in text(r)
    t.refresh_from_db()
    assert t.status == "draft"


# --- untrusted text ------------------------------------------------------------------------------------------

PAYLOAD = '<script>alert(1)</script><img src=x onerror=alert(2)>'


def test_untrusted_text_is_escaped_in_the_editor_history_queue_and_conflict_view(as_lead, second, project):
    from annotate.ingest.writer import write_trajectories
    from annotate.trajectory import Trajectory as Doc

    t = write_trajectories(project, [Doc.from_dict({"turns": [{"user": PAYLOAD, "steps": [
        {"kind": "tool_call", "name": "t", "arguments": {"q": PAYLOAD}, "call_id": "c1"},
        {"kind": "tool_result", "name": "t", "text": PAYLOAD, "call_id": "c1", "note": PAYLOAD},
        {"kind": "answer", "text": "ok"}]}]})])[0]
    as_lead.post(f"/t/{t.pk}/steps/0/2/", step_form(t, 0, 2, text=PAYLOAD + "!"), **HTMX)
    pages = [as_lead.get(f"/t/{t.pk}/"), as_lead.get(f"/t/{t.pk}/history/"),
             as_lead.get(f"/p/{project.slug}/trajectories/?q=script"),
             second.post(f"/t/{t.pk}/steps/0/1/", step_form(t, 0, 1) | {"base_version": 1}, **HTMX)]
    for r in pages:
        html = text(r)
        assert "<script>alert" not in html and "<img src=x" not in html, r.request["PATH_INFO"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text(pages[0])


def test_reverting_to_a_version_with_the_current_document_is_refused_and_changes_nothing(as_lead, by_id):
    t = by_id["demo-weather"]
    as_lead.post(f"/t/{t.pk}/steps/0/3/", step_form(t, 0, 3, text="It is 18 °C and cloudy."), **HTMX)
    as_lead.post(f"/t/{t.pk}/status/", {"action": "submit"})  # v3: a status change, the same document as v2
    t.refresh_from_db()
    assert t.version == 3
    page = text(as_lead.get(f"/t/{t.pk}/history/"))
    assert "Revert to version 1" in page and "Revert to version 2" not in page and "nothing to revert" in page
    r = as_lead.post(f"/t/{t.pk}/revert/", {"version": 2, "base_version": 3}, follow=True)
    assert "same document as the current version" in text(r)
    t.refresh_from_db()
    assert t.version == 3
