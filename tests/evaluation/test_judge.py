"""A model as one more annotator: a judge run against the tests' chat server proposes labels that
are suggestions (never labels) until an annotator accepts or dismisses them; the judge-vs-human
figures per label; the API's permissions leave everything unchanged when they refuse."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from annotate.ingest.writer import write_trajectories
from annotate.models import Revision, StepLabel, StepSuggestion
from annotate.trajectory import Step, Trajectory, Turn
from evaluation.judge import judge_vs_humans, launch_judge, run_judge_job
from evaluation.generate import GenerationSettings
from evaluation.judge_models import JudgeRun
from tests.evaluation.runs_harness import ChatServer

pytestmark = pytest.mark.django_db

REPLY = {"steps": [{"turn": 1, "step": 1, "labels": ["wrong_tool"], "note": "should look up the forecast"},
                   {"turn": 1, "step": 3, "labels": ["ungrounded_answer", "made_up_label"]}]}


def weather_doc() -> Trajectory:
    return Trajectory(system="You help with weather.", turns=[Turn(user="Rain in Paris tomorrow?", steps=[
        Step(kind="tool_call", name="get_time", arguments={"city": "Paris"}, call_id="c1"),
        Step(kind="tool_result", text="10:00", call_id="c1"),
        Step(kind="answer", text="It will rain."),
    ])])


def api_for(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


@pytest.fixture
def trajectory(project, annotator):
    t = write_trajectories(project, [weather_doc()])[0]
    t.assignee = annotator
    t.save(update_fields=["assignee"])
    return t


@pytest.fixture
def server():
    with ChatServer(lambda body: {"content": "```json\n" + json.dumps(REPLY) + "\n```"}) as s:
        yield s


@pytest.fixture
def judged(project, lead, trajectory, server):
    server.allow(lead)
    run = launch_judge(project=project, trajectory_ids=[trajectory.pk], model_source="endpoint",
                       endpoint_url=server.url, endpoint_model="judge-1", gen=GenerationSettings(), user=lead,
                       enqueue=False)
    assert run_judge_job(run.pk) == "succeeded"
    run.refresh_from_db()
    return run


def test_the_judge_proposes_suggestions_not_labels(judged, trajectory, server):
    rows = list(StepSuggestion.objects.filter(trajectory=trajectory).order_by("step_index", "label"))
    assert [(r.turn_index, r.step_index, r.label, r.status) for r in rows] == [
        (0, 0, "wrong_tool", "pending"), (0, 2, "ungrounded_answer", "pending")]
    assert rows[0].note == "should look up the forecast" and rows[0].step_kind == "tool_call"
    assert not StepLabel.objects.filter(trajectory=trajectory).exists()  # never labels by themselves
    trajectory.refresh_from_db()
    assert trajectory.version == 1
    # The judge saw the steps numbered and the taxonomy; the unknown label is a problem on the run.
    asked = server.requests[0]["body"]["messages"]
    assert "step 1 [tool_call] get_time" in asked[1]["content"] and "- wrong_tool" in asked[0]["content"]
    assert judged.suggestion_count == 2 and judged.done_items == 1
    assert judged.problems == [{"trajectory": trajectory.pk,
                                "problem": "steps[2].labels: 'made_up_label' is not one of the project's labels"}]


def test_accepting_makes_a_revision_by_the_annotator_naming_the_judge(judged, trajectory, annotator):
    s = StepSuggestion.objects.get(trajectory=trajectory, label="wrong_tool")
    r = api_for(annotator).post(f"/api/trajectories/{trajectory.pk}/suggestions/{s.pk}/accept/")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "accepted"
    doc = api_for(annotator).get(f"/api/trajectories/{trajectory.pk}/").json()
    step = doc["document"]["turns"][0]["steps"][0]
    assert step["labels"] == ["wrong_tool"] and step["note"] == "should look up the forecast"
    rev = Revision.objects.get(trajectory=trajectory, version=2)
    assert rev.author == annotator
    assert f"from judge run #{judged.pk}" in rev.summary and "judge-1" in rev.summary
    # Accepting twice is refused, and names the field.
    again = api_for(annotator).post(f"/api/trajectories/{trajectory.pk}/suggestions/{s.pk}/accept/")
    assert again.status_code == 400 and again.json()["field"] == "suggestion"


def test_dismissing_changes_nothing_in_the_trajectory(judged, trajectory, annotator):
    s = StepSuggestion.objects.get(trajectory=trajectory, label="ungrounded_answer")
    r = api_for(annotator).post(f"/api/trajectories/{trajectory.pk}/suggestions/{s.pk}/dismiss/")
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    trajectory.refresh_from_db()
    assert trajectory.version == 1 and not StepLabel.objects.filter(trajectory=trajectory).exists()
    left = api_for(annotator).get(f"/api/trajectories/{trajectory.pk}/suggestions/?status=pending").json()
    assert [x["label"] for x in left] == ["wrong_tool"]


def test_a_suggestion_for_a_step_that_moved_is_refused(judged, trajectory, annotator):
    # Someone inserts a step in front: the judged tool call is no longer step 1.
    r = api_for(annotator).post(f"/api/trajectories/{trajectory.pk}/edits/", {
        "op": "insert_step", "turn": 0, "step": 0, "fields": {"kind": "think", "text": "hm"}, "base_version": 1},
        format="json")
    assert r.status_code == 200, r.content
    s = StepSuggestion.objects.get(trajectory=trajectory, label="wrong_tool")
    r = api_for(annotator).post(f"/api/trajectories/{trajectory.pk}/suggestions/{s.pk}/accept/")
    assert r.status_code == 400 and "no longer the tool_call step" in r.json()["detail"]
    assert not StepLabel.objects.filter(trajectory=trajectory).exists()


def test_judge_vs_human_agreement_per_label(judged, trajectory, annotator):
    # The annotator accepts one and dismisses the other: on wrong_tool they agree on all 3 steps;
    # on ungrounded_answer the judge said yes on step 3 and the human no (2 of 3 agree, κ 0).
    for label, verb in (("wrong_tool", "accept"), ("ungrounded_answer", "dismiss")):
        s = StepSuggestion.objects.get(trajectory=trajectory, label=label)
        api_for(annotator).post(f"/api/trajectories/{trajectory.pk}/suggestions/{s.pk}/{verb}/")
    rows = {r["label"]: r for r in judge_vs_humans(judged)}
    assert (rows["wrong_tool"]["both"], rows["wrong_tool"]["agreement"], rows["wrong_tool"]["kappa"]) == (1, 1.0, 1.0)
    ua = rows["ungrounded_answer"]
    assert (ua["judge"], ua["human"], ua["both"], round(ua["agreement"], 3)) == (1, 0, 0, 0.667)
    assert ua["kappa"] == pytest.approx(0.0, abs=1e-12)
    # Krippendorff's α by hand: 6 ratings (five 0s, one 1), one disagreeing unit: 1 - (6-1)·2 / (2·5·1) = 0.
    assert ua["alpha"] == pytest.approx(0.0, abs=1e-12) and rows["wrong_tool"]["alpha"] == pytest.approx(1.0)
    assert rows["format_error"]["kappa"] is None  # neither side ever used it: undefined, not "perfect"


def test_the_judge_run_page_shows_agreement_per_label(judged, client, lead):
    client.force_login(lead)
    page = client.get(f"/evaluation/judge/{judged.pk}/").content.decode()
    assert 'data-label="wrong_tool"' in page and "made_up_label" in page


def test_launching_needs_the_lead_role_and_creates_nothing_otherwise(project, annotator, outsider, trajectory, server):
    body = {"trajectories": [trajectory.pk], "model_source": "endpoint", "endpoint_url": server.url}
    assert api_for(annotator).post("/api/projects/weather/judge-runs/", body, format="json").status_code == 403
    assert api_for(outsider).post("/api/projects/weather/judge-runs/", body, format="json").status_code == 404
    assert not JudgeRun.objects.exists()


def test_a_launch_names_the_field_at_fault(project, lead, trajectory, server):
    server.allow(lead)
    r = api_for(lead).post("/api/projects/weather/judge-runs/", {
        "trajectories": [trajectory.pk, 999999], "model_source": "endpoint", "endpoint_url": server.url}, format="json")
    assert r.status_code == 400 and "999999" in r.json()["trajectories"][0]
    assert not JudgeRun.objects.exists()


def test_deciding_needs_the_right_to_edit_and_changes_nothing_otherwise(judged, trajectory, outsider, make_user, project):
    other = make_user("bea", "annotator", project)  # an annotator, but not this trajectory's
    s = StepSuggestion.objects.get(trajectory=trajectory, label="wrong_tool")
    assert api_for(other).post(f"/api/trajectories/{trajectory.pk}/suggestions/{s.pk}/accept/").status_code == 403
    assert api_for(outsider).post(f"/api/trajectories/{trajectory.pk}/suggestions/{s.pk}/dismiss/").status_code == 404
    s.refresh_from_db()
    trajectory.refresh_from_db()
    assert s.status == "pending" and trajectory.version == 1


def test_the_editor_box_lists_pending_suggestions_and_accepting_reloads_the_editor(judged, trajectory, client, annotator):
    client.force_login(annotator)
    editor = client.get(f"/t/{trajectory.pk}/").content.decode()
    assert f'hx-get="/t/{trajectory.pk}/suggestions/"' in editor
    box = client.get(f"/t/{trajectory.pk}/suggestions/").content.decode()
    assert 'data-label="wrong_tool"' in box and 'data-label="ungrounded_answer"' in box
    s = StepSuggestion.objects.get(trajectory=trajectory, label="wrong_tool")
    r = client.post(f"/t/{trajectory.pk}/suggestions/{s.pk}/accept/", HTTP_HX_REQUEST="true")
    assert r.status_code == 204 and r["HX-Refresh"] == "true"
    assert StepLabel.objects.filter(trajectory=trajectory, label="wrong_tool").count() == 1
    assert client.post(f"/t/{trajectory.pk}/suggestions/{s.pk}/frobnicate/").status_code == 404


def test_the_cli_runs_the_tiny_model_as_a_judge(project, trajectory, tiny_model_dir):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("judge", project="weather", model=str(tiny_model_dir), trajectories=str(trajectory.pk),
                 max_new_tokens=16, stdout=out)
    run = JudgeRun.objects.get()
    assert run.status == "succeeded" and run.done_items == 1, run.error
    # A random tiny model writes no usable JSON: that is said per trajectory, not dropped.
    assert run.suggestion_count == StepSuggestion.objects.filter(judge_run_id=run.pk).count()
    assert run.suggestion_count or all(p["trajectory"] == trajectory.pk for p in run.problems) and run.problems
    assert f"Judge run #{run.pk}" in out.getvalue()
    trajectory.refresh_from_db()
    assert trajectory.version == 1


def test_the_cli_prints_agreement_per_label(judged, trajectory):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("judge", agreement=judged.pk, stdout=out)
    lines = {line.split()[0]: line.split() for line in out.getvalue().splitlines()[1:]}
    assert lines["wrong_tool"][1:4] == ["1", "0", "0"]  # judge 1, humans 0 (nothing accepted yet), both 0


def test_a_duplicate_delivery_does_nothing_and_a_restart_keeps_each_suggestion_once(judged, server):
    assert run_judge_job(judged.pk) == "not claimed"  # already finished: the claim fails
    JudgeRun.objects.filter(pk=judged.pk).update(status="queued")  # as the sweep re-queues a dead worker's run
    assert run_judge_job(judged.pk) == "succeeded"
    judged.refresh_from_db()
    assert len(server.requests) == 2 and judged.suggestion_count == 2
    assert StepSuggestion.objects.filter(judge_run_id=judged.pk).count() == 2


def test_the_judge_run_page_is_hidden_from_outsiders(judged, client, outsider):
    client.force_login(outsider)
    assert client.get(f"/evaluation/judge/{judged.pk}/").status_code == 404
    assert api_for(outsider).get(f"/api/judge-runs/{judged.pk}/").status_code == 404


def test_a_lead_launches_a_judge_run_from_the_page(project, lead, annotator, trajectory, server, client,
                                                   django_capture_on_commit_callbacks, monkeypatch):
    from jobs import queue

    sent = []
    monkeypatch.setattr(queue, "send", lambda model, pk: sent.append((model.__name__, pk)))
    server.allow(lead)
    client.force_login(lead)
    bad = client.post("/evaluation/p/weather/judge/", {"model_source": "endpoint", "endpoint_url": "http://10.9.9.9/v1",
                                                      "limit": 10, "max_new_tokens": 64})
    assert bad.status_code == 200 and bad.context["form"].errors["endpoint_url"]
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/evaluation/p/weather/judge/", {"model_source": "endpoint", "endpoint_url": server.url,
                                                        "endpoint_model": "judge-1", "limit": 10, "max_new_tokens": 64})
    run = JudgeRun.objects.get()
    assert r.status_code == 302 and r.url == f"/evaluation/judge/{run.pk}/"
    assert run.trajectory_ids == [trajectory.pk] and sent == [("JudgeRun", run.pk)]
    client.force_login(annotator)
    assert client.post("/evaluation/p/weather/judge/", {"model_source": "endpoint"}).status_code == 403
    assert JudgeRun.objects.count() == 1
