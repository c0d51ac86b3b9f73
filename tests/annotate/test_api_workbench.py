"""The workbench API: step and document edits with optimistic locking (409 + what changed),
workflow, history and revert, argument checks, the queue, next and assignment, the schema."""

from __future__ import annotations

import json

import pytest

from annotate.models import Trajectory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api(client, lead):
    client.force_login(lead)

    def call(method: str, url: str, body=None):
        kwargs = {} if body is None else {"data": json.dumps(body), "content_type": "application/json"}
        return getattr(client, method)(url, **kwargs)

    return call


@pytest.fixture
def weather(demo_trajectories):
    return next(t for t in demo_trajectories if t.external_id == "demo-weather")


def steps(response) -> list[dict]:
    return response.json()["document"]["turns"][0]["steps"]


def test_a_step_patch_changes_only_the_fields_sent(api, weather):
    r = api("patch", f"/api/trajectories/{weather.pk}/turns/0/steps/3/",
            {"base_version": 1, "labels": ["ungrounded_answer"], "note": "check the unit"})
    assert r.status_code == 200, r.content
    answer = steps(r)[3]
    assert (answer["text"], answer["labels"], answer["note"]) == (
        "It is 18 °C and cloudy in Paris right now.", ["ungrounded_answer"], "check the unit")
    assert r.json()["version"] == 2


def test_a_stale_patch_is_409_with_their_changes_and_the_current_document(api, client, annotator, weather):
    api("patch", f"/api/trajectories/{weather.pk}/turns/0/steps/3/", {"base_version": 1, "text": "Lead's text."})
    r = api("patch", f"/api/trajectories/{weather.pk}/turns/0/steps/3/", {"base_version": 1, "note": "mine"})
    assert r.status_code == 409
    body = r.json()
    assert (body["base_version"], body["current_version"], body["authors"]) == (1, 2, ["lena"])
    assert body["changes"][0]["where"] == "turn 1 · step 4 · answer"
    assert body["document"]["turns"][0]["steps"][3]["text"] == "Lead's text."
    merged = api("patch", f"/api/trajectories/{weather.pk}/turns/0/steps/3/",
                 {"base_version": 1, "note": "mine", "resolution": "merge", "seen_version": 2})
    assert merged.status_code == 200 and (steps(merged)[3]["text"], steps(merged)[3]["note"]) == ("Lead's text.", "mine")


@pytest.mark.parametrize("edit, kinds", [
    ({"op": "insert_step", "turn": 0, "step": 0, "fields": {"kind": "think", "text": "Plan."}},
     ["think", "think", "tool_call", "tool_result", "answer"]),
    ({"op": "add_parallel_call", "turn": 0, "step": 1},
     ["think", "tool_call", "tool_call", "tool_result", "tool_result", "answer"]),
    ({"op": "move_step", "turn": 0, "step": 0, "fields": {"by": 1}}, ["tool_call", "think", "tool_result", "answer"]),
])
def test_edits_apply_and_answer_with_the_new_document(api, weather, edit, kinds):
    r = api("post", f"/api/trajectories/{weather.pk}/edits/", {"base_version": 1, **edit})
    assert r.status_code == 200 and [s["kind"] for s in steps(r)] == kinds


@pytest.mark.parametrize("edit, field", [
    ({"op": "delete_step", "turn": 0, "step": 9}, "step"),
    ({"op": "update_step", "turn": 0, "step": 0, "fields": {"labels": ["made_up"]}}, "labels"),
    ({"op": "update_meta", "fields": {"split": "holdout"}}, "split"),
])
def test_an_edit_that_cannot_apply_is_400_naming_the_field(api, weather, edit, field):
    r = api("post", f"/api/trajectories/{weather.pk}/edits/", {"base_version": 1, **edit})
    assert r.status_code == 400 and r.json()["field"] == field
    weather.refresh_from_db()
    assert weather.version == 1


def test_a_whole_document_put_is_checked_and_versioned(api, weather):
    doc = api("get", f"/api/trajectories/{weather.pk}/").json()["document"]
    doc["turns"][0]["steps"][0]["kind"] = "monologue"
    bad = api("put", f"/api/trajectories/{weather.pk}/", {"base_version": 1, "document": doc})
    assert bad.status_code == 400 and bad.json()["field"] == "document.turns[0].steps[0].kind"
    doc["turns"][0]["steps"][0]["kind"] = "think"
    doc["turns"][0]["steps"][0]["text"] = "Replaced by a script."
    ok = api("put", f"/api/trajectories/{weather.pk}/", {"base_version": 1, "document": doc, "summary": "bulk fix"})
    assert ok.status_code == 200 and steps(ok)[0]["text"] == "Replaced by a script."
    assert api("put", f"/api/trajectories/{weather.pk}/", {"base_version": 1, "document": doc}).status_code == 409


def test_workflow_through_the_api(api, client, annotator, weather):
    api("patch", f"/api/trajectories/{weather.pk}/turns/0/steps/1/", {"base_version": 1, "arguments": {}})
    blocked = api("post", f"/api/trajectories/{weather.pk}/status/", {"action": "submit"})
    assert blocked.status_code == 400 and blocked.json()["blockers"][0]["code"] == "schema_violation"
    api("patch", f"/api/trajectories/{weather.pk}/turns/0/steps/1/",
        {"base_version": 2, "arguments": {"city": "Paris"}})
    assert api("post", f"/api/trajectories/{weather.pk}/status/", {"action": "submit"}).json()["status"] == "submitted"
    no_comment = api("post", f"/api/trajectories/{weather.pk}/status/", {"action": "reject"})
    assert no_comment.status_code == 400 and "comment" in no_comment.json()["detail"]
    done = api("post", f"/api/trajectories/{weather.pk}/status/", {"action": "approve", "comment": "good"})
    assert done.json()["status"] == "approved"
    again = api("post", f"/api/trajectories/{weather.pk}/status/", {"action": "approve"})
    assert again.status_code == 400 and "approved" in again.json()["detail"]


def test_history_lists_revisions_with_their_changes_and_revert_restores(api, weather):
    api("patch", f"/api/trajectories/{weather.pk}/turns/0/steps/0/", {"base_version": 1, "text": "Changed."})
    history = api("get", f"/api/trajectories/{weather.pk}/revisions/").json()["results"]
    assert [(h["version"], h["author"], h["summary"]) for h in history] == [
        (2, "lena", "edited turn 1, step 1"), (1, None, "imported")]
    detail = api("get", f"/api/trajectories/{weather.pk}/revisions/2/").json()
    assert detail["changes"][0]["fields"][0] == {"field": "text", "old": "The user wants current weather for Paris; "
                                                 "get_weather does that.", "new": "Changed."}
    back = api("post", f"/api/trajectories/{weather.pk}/revert/", {"version": 1, "base_version": 2})
    assert back.status_code == 200 and steps(back)[0]["text"].startswith("The user wants")
    assert api("post", f"/api/trajectories/{weather.pk}/revert/", {"version": 9, "base_version": 3}).status_code == 400


def test_check_arguments_reports_each_field(api, weather):
    r = api("post", f"/api/trajectories/{weather.pk}/check-arguments/",
            {"tool": "get_weather", "arguments": {"unit": "kelvin"}})
    assert {e["path"] for e in r.json()} == {"city", "unit"}
    assert api("post", f"/api/trajectories/{weather.pk}/check-arguments/",
               {"tool": "teleport", "arguments": {}}).json() == [{"path": "", "message": "'teleport' is not a known tool"}]


def test_the_queue_api_filters_and_rejects_unknown_values(api, project, demo_trajectories):
    r = api("get", f"/api/projects/{project.slug}/trajectories/?q=HAT145&case_type=multi_turn")
    assert [t["external_id"] for t in r.json()["results"]] == ["demo-multi-turn"]
    r = api("get", f"/api/projects/{project.slug}/trajectories/?label=unexpected_arg")
    assert [t["external_id"] for t in r.json()["results"]] == ["demo-needs-fixing"]
    assert api("get", f"/api/projects/{project.slug}/trajectories/?sort=password").status_code == 400


def test_next_claims_then_answers_204_when_nothing_is_left(client, annotator, project, demo_trajectories):
    client.force_login(annotator)
    first = client.post(f"/api/projects/{project.slug}/next/")
    assert first.status_code == 200 and first.json()["assignee"] == annotator.pk
    Trajectory.objects.filter(project=project).update(status="approved")
    assert client.post(f"/api/projects/{project.slug}/next/").status_code == 204


def test_assignment_only_to_members(api, project, outsider, annotator, demo_trajectories):
    ids = [t.pk for t in demo_trajectories[:2]]
    before = list(Trajectory.objects.filter(pk__in=ids).order_by("pk").values_list("assignee_id", flat=True))
    assert api("post", f"/api/projects/{project.slug}/assign/", {"ids": ids, "assignee": outsider.pk}).status_code == 400
    assert list(Trajectory.objects.filter(pk__in=ids).order_by("pk").values_list("assignee_id", flat=True)) == before
    r = api("post", f"/api/projects/{project.slug}/assign/", {"ids": ids, "assignee": annotator.pk})
    assert r.json() == {"assigned": 2}


def test_a_token_client_edits_a_step(client, lead, weather):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=lead)
    r = client.patch(f"/api/trajectories/{weather.pk}/turns/0/steps/0/", json.dumps({"base_version": 1, "note": "x"}),
                     content_type="application/json", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert r.status_code == 200 and steps(r)[0]["note"] == "x"


def test_the_openapi_schema_describes_the_workbench_endpoints(api):
    schema = api("get", "/api/schema/?format=json").json()
    for path in ("/api/trajectories/{id}/edits/", "/api/trajectories/{id}/turns/{turn}/steps/{step}/",
                 "/api/trajectories/{id}/status/", "/api/trajectories/{id}/revisions/", "/api/trajectories/{id}/revert/",
                 "/api/projects/{slug}/dashboard/", "/api/projects/{slug}/next/", "/api/projects/{slug}/assign/"):
        assert path in schema["paths"], path
    assert "409" in schema["paths"]["/api/trajectories/{id}/edits/"]["post"]["responses"]
