"""Adjudication through the API and the page: two people's versions of a trajectory, compared step
by step; the lead's choices become the adjudicated version with provenance; refusals change nothing."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.adjudication.models import Adjudication
from annotate.ingest.writer import write_trajectories
from annotate.models import Revision, StepLabel
from annotate.trajectory import Step, Trajectory, Turn

pytestmark = pytest.mark.django_db


def api_for(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def doc() -> Trajectory:
    return Trajectory(turns=[Turn(user="Rain in Paris?", steps=[
        Step(kind="tool_call", name="forecast", arguments={"city": "Paris"}, call_id="c1"),
        Step(kind="tool_result", text="rain", call_id="c1"),
        Step(kind="answer", text="It rains.")])])


@pytest.fixture
def two_versions(project, lead, annotator, make_user):
    """ann labels step 1 wrong_tool; bea labels step 3 ungrounded_answer (each a revision)."""
    bea = make_user("bea", "annotator", project)
    t = write_trajectories(project, [doc()])[0]
    version = 1
    for who, step, label in ((annotator, 0, "wrong_tool"), (bea, 2, "ungrounded_answer")):
        t.assignee = who
        t.save(update_fields=["assignee"])
        # Each labels only their step, starting from the original: blind versions of the same trajectory.
        r = api_for(who).post(f"/api/trajectories/{t.pk}/edits/", {
            "op": "update_step", "turn": 0, "step": step, "fields": {"labels": [label]}, "base_version": version},
            format="json")
        assert r.status_code == 200, r.content
        version += 1
        if who is annotator:  # bea's version starts from the original, not from ann's
            r = api_for(lead).post(f"/api/trajectories/{t.pk}/edits/", {
                "op": "update_step", "turn": 0, "step": 0, "fields": {"labels": []}, "base_version": version},
                format="json")
            version += 1
    t.refresh_from_db()
    return t


def test_the_comparison_shows_where_the_versions_differ(two_versions, lead):
    r = api_for(lead).get(f"/api/trajectories/{two_versions.pk}/adjudication/").json()
    assert [v["name"] for v in r["versions"]] == ["ann", "bea", "lena"]
    assert [s["differs"] for s in r["steps"]] == [["labels"], [], ["labels"]]
    assert r["needs_adjudication"] is True


def test_the_lead_decides_step_by_step_and_the_provenance_is_kept(two_versions, lead):
    t = two_versions
    r = api_for(lead).post(f"/api/trajectories/{t.pk}/adjudication/", {"base_version": t.version, "choices": [
        {"turn": 0, "step": 0, "pick": "ann"}, {"turn": 0, "step": 2, "pick": "bea"}]}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert [(p["step"], p["from"]) for p in body["provenance"]] == [(0, "ann"), (1, "agreed"), (2, "bea")]
    t.refresh_from_db()
    assert body["version"] == t.version
    labels = sorted(StepLabel.objects.filter(trajectory=t).values_list("step__position", "label"))
    assert [lb for _, lb in labels] == ["wrong_tool", "ungrounded_answer"]  # step 1, step 3
    rev = Revision.objects.get(trajectory=t, version=t.version)
    assert rev.author == lead and rev.summary.startswith("adjudicated from ann, bea")
    again = api_for(lead).get(f"/api/trajectories/{t.pk}/adjudication/").json()
    assert again["needs_adjudication"] is False and again["latest"]["id"] == body["id"]


def test_a_difference_left_undecided_is_refused_and_nothing_changes(two_versions, lead):
    t = two_versions
    r = api_for(lead).post(f"/api/trajectories/{t.pk}/adjudication/", {"base_version": t.version, "choices": [
        {"turn": 0, "step": 0, "pick": "ann"}]}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "turn 1 step 3"
    before = t.version
    t.refresh_from_db()
    assert t.version == before and not Adjudication.objects.exists()


def test_a_stale_comparison_is_refused(two_versions, lead):
    t = two_versions
    r = api_for(lead).post(f"/api/trajectories/{t.pk}/adjudication/", {"base_version": t.version - 1, "choices": [
        {"turn": 0, "step": 0, "pick": "ann"}, {"turn": 0, "step": 2, "pick": "bea"}]}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "base_version"
    assert not Adjudication.objects.exists()


def test_only_a_lead_adjudicates_and_a_refusal_changes_nothing(two_versions, annotator, outsider):
    t = two_versions
    body = {"base_version": t.version, "choices": [{"turn": 0, "step": 0, "pick": "ann"},
                                                   {"turn": 0, "step": 2, "pick": "bea"}]}
    assert api_for(annotator).post(f"/api/trajectories/{t.pk}/adjudication/", body, format="json").status_code == 403
    assert api_for(outsider).post(f"/api/trajectories/{t.pk}/adjudication/", body, format="json").status_code == 404
    assert api_for(annotator).get(f"/api/trajectories/{t.pk}/adjudication/").status_code == 403
    before = t.version
    t.refresh_from_db()
    assert t.version == before and not Adjudication.objects.exists()


def test_the_page_highlights_differences_and_saves_the_lead_s_picks(two_versions, client, lead, annotator):
    t = two_versions
    client.force_login(lead)
    queue = client.get("/p/weather/adjudication/").content.decode()
    assert f'href="/t/{t.pk}/adjudicate/"' in queue
    page = client.get(f"/t/{t.pk}/adjudicate/").content.decode()
    assert 'id="step-0-0" class="differs" data-differs="labels"' in page
    assert 'id="step-0-1" class="agreed"' in page
    r = client.post(f"/t/{t.pk}/adjudicate/", {"base_version": t.version, "choice-0-0": "merge:lena",
                                                "choice-0-2": "pick:bea"})
    assert r.status_code == 302
    adj = Adjudication.objects.get()
    assert adj.provenance[0] == {"turn": 0, "step": 0, "from": "lena", "merged_labels": True}
    assert "Nothing to adjudicate" in client.get("/p/weather/adjudication/").content.decode()
    client.force_login(annotator)
    assert client.get(f"/t/{t.pk}/adjudicate/").status_code == 403


def test_a_snapshot_that_requires_adjudication_takes_the_adjudicated_version(two_versions, lead, project):
    from training.snapshots.selection import Selection, pin_revisions, select_trajectories

    def pinned(filters):
        return pin_revisions(select_trajectories([project], Selection.from_dict(filters)))

    t = two_versions
    filters = {"status": "any", "require_adjudicated": True}
    assert pinned(filters) == []  # versions disagree, nobody adjudicated
    assert [i for i, _ in pinned({"status": "any"})] == [t.pk]  # without the option
    api_for(lead).post(f"/api/trajectories/{t.pk}/adjudication/", {"base_version": t.version, "choices": [
        {"turn": 0, "step": 0, "pick": "ann"}, {"turn": 0, "step": 2, "pick": "bea"}]}, format="json")
    t.refresh_from_db()
    adjudicated = Revision.objects.get(trajectory=t, version=t.version)
    assert pinned(filters) == [(t.pk, adjudicated.pk)]
    assert Selection.from_dict(filters).to_dict()["require_adjudicated"] is True  # part of the content hash


@pytest.fixture
def overlapped(project, annotator, make_user):
    """An original with two submitted blind versions (overlap copies) that label different steps."""
    from django.utils import timezone

    from annotate.agreement.models import OverlapSettings, OverlapVersion

    bea = make_user("bea", "annotator", project)
    original = write_trajectories(project, [doc()])[0]
    a, b = doc(), doc()
    a.turns[0].steps[0].labels = ["wrong_tool"]
    b.turns[0].steps[2].labels = ["ungrounded_answer"]
    copies = write_trajectories(project, [a, b])
    for slot, (copy, who) in enumerate(zip(copies, (annotator, bea)), 1):
        OverlapVersion.objects.create(original=original, copy=copy, slot=slot, annotator=who,
                                      submitted_at=timezone.now())
    OverlapSettings.objects.create(project=project, annotators=2, threshold=0.99)
    return original, copies


def test_overlap_versions_are_what_the_lead_adjudicates_into_the_original(overlapped, lead):
    original, copies = overlapped
    r = api_for(lead).get(f"/api/trajectories/{original.pk}/adjudication/").json()
    assert [v["name"] for v in r["versions"]] == ["ann", "bea"]
    assert r["versions"][0]["ref"] == f"version #{copies[0].pk} v1"
    assert [s["differs"] for s in r["steps"]] == [["labels"], [], ["labels"]] and r["needs_adjudication"]
    r = api_for(lead).post(f"/api/trajectories/{original.pk}/adjudication/", {"base_version": 1, "choices": [
        {"turn": 0, "step": 0, "pick": "ann"}, {"turn": 0, "step": 2, "pick": "bea"}]}, format="json")
    assert r.status_code == 201, r.content
    original.refresh_from_db()
    assert original.version == 2
    assert sorted(StepLabel.objects.filter(trajectory=original).values_list("label", flat=True)) == [
        "ungrounded_answer", "wrong_tool"]
    for copy in copies:  # the blind versions stay as their annotators left them
        copy.refresh_from_db()
        assert copy.version == 1


def test_overlap_items_at_or_above_the_threshold_skip_adjudication(overlapped, lead):
    from annotate.agreement.models import OverlapSettings

    original, _ = overlapped
    # 17 labels x 3 steps = 51 decisions, 2 differ: observed agreement 49/51 = 0.96.
    OverlapSettings.objects.filter(project=original.project).update(threshold=0.96)
    assert api_for(lead).get(f"/api/trajectories/{original.pk}/adjudication/").json()["needs_adjudication"] is False
    OverlapSettings.objects.filter(project=original.project).update(threshold=0.97)
    assert api_for(lead).get(f"/api/trajectories/{original.pk}/adjudication/").json()["needs_adjudication"] is True


def test_the_snapshot_audit_reports_the_agreement_of_the_overlapped_items_it_includes(overlapped, lead, project):
    from annotate.adjudication.service import included_agreement

    original, _ = overlapped
    before = included_agreement([(original.pk, 1)], project)
    assert before == {"overlapped": 1, "adjudicated": 0, "threshold": 0.99,
                      "mean_item_agreement": pytest.approx(49 / 51), "below_threshold": 1}
    api_for(lead).post(f"/api/trajectories/{original.pk}/adjudication/", {"base_version": 1, "choices": [
        {"turn": 0, "step": 0, "pick": "ann"}, {"turn": 0, "step": 2, "pick": "bea"}]}, format="json")
    assert included_agreement([(original.pk, 2)], project)["adjudicated"] == 1
    assert included_agreement([(original.pk, 1)], project)["adjudicated"] == 0  # an older version: not adjudicated


def test_an_exported_snapshot_s_audit_carries_the_agreement_of_its_overlapped_items(overlapped, lead, project,
                                                                                     tiny_model_dir, tmp_path):
    import json

    from tests.training.snapshot_helpers import render_settings
    from training.snapshots import create_snapshot
    from training.snapshots.tasks import export_snapshot

    original, _ = overlapped
    api_for(lead).post(f"/api/trajectories/{original.pk}/adjudication/", {"base_version": 1, "choices": [
        {"turn": 0, "step": 0, "pick": "ann"}, {"turn": 0, "step": 2, "pick": "bea"}]}, format="json")
    snap = create_snapshot(project, "sft", {"status": "any", "require_adjudicated": True},
                           render_settings(tiny_model_dir), lead, enqueue=False, out_dir=tmp_path / "snap")
    assert export_snapshot(snap.pk) == "succeeded"
    snap.refresh_from_db()
    assert snap.item_count == 1  # the original only, never the version copies
    assert snap.audit["agreement"]["overlapped"] == 1 and snap.audit["agreement"]["adjudicated"] == 1
    assert snap.audit["agreement"]["mean_item_agreement"] == pytest.approx(49 / 51)
    assert json.loads((tmp_path / "snap" / "audit.json").read_text())["agreement"] == snap.audit["agreement"]
