"""Overlap: versions made for a sample, claimed blind by the queue, closed to other annotators in the
editor and the API, left out of snapshots, and measured after submissions (annotate.agreement)."""

from __future__ import annotations

import json

import pytest

from annotate.agreement import services
from annotate.agreement.models import AgreementReport, OverlapVersion
from annotate.models import Step, StepLabel, Trajectory
from annotate.workbench.queue import next_in_queue
from training.snapshots.selection import Selection, select_trajectories

pytestmark = pytest.mark.django_db


@pytest.fixture
def overlapped(project, demo_trajectories):
    conf = services.settings_for(project)
    conf.annotators, conf.share = 2, 1.0
    conf.save()
    weather = next(t for t in demo_trajectories if t.external_id == "demo-weather")
    assert services.create_versions(project, limit=1) == 1
    return weather


@pytest.fixture
def bea(make_user, project):
    return make_user("bea", "annotator", project)


def test_versions_are_full_copies_and_making_them_again_adds_none(project, overlapped):
    versions = list(OverlapVersion.objects.filter(original=overlapped).order_by("slot"))
    assert [v.slot for v in versions] == [1, 2]
    for v in versions:
        assert v.copy.status == Trajectory.DRAFT and v.copy.assignee is None
        assert list(v.copy.steps.values_list("kind", "text")) == list(overlapped.steps.values_list("kind", "text"))
    assert services.create_versions(project, limit=1) == 1  # the next trajectory, not this one again
    assert OverlapVersion.objects.filter(original=overlapped).count() == 2


def test_a_share_samples_the_same_items_for_the_same_seed():
    picked = [i for i in range(1, 2001) if services.is_sampled(i, 0.1, seed=7)]
    assert 150 < len(picked) < 250
    assert picked == [i for i in range(1, 2001) if services.is_sampled(i, 0.1, seed=7)]
    assert picked != [i for i in range(1, 2001) if services.is_sampled(i, 0.1, seed=8)]


def test_the_queue_gives_two_annotators_different_versions_of_the_same_item(project, overlapped, annotator, bea):
    mine = next_in_queue(annotator, project)
    theirs = next_in_queue(bea, project)
    copies = set(OverlapVersion.objects.filter(original=overlapped).values_list("copy_id", flat=True))
    assert {mine.pk, theirs.pk} == copies
    assert next_in_queue(annotator, project).pk == mine.pk  # their own open version again, not the other
    assert OverlapVersion.objects.get(copy_id=mine.pk).annotator == annotator
    assert Trajectory.objects.get(pk=mine.pk).assignee == annotator


def test_an_annotator_cannot_open_or_change_another_annotators_version(client, project, overlapped, annotator, bea):
    theirs = next_in_queue(bea, project)
    before = (Trajectory.objects.get(pk=theirs.pk).version, list(StepLabel.objects.filter(trajectory=theirs)))
    client.force_login(annotator)
    assert client.get(f"/t/{theirs.pk}/").status_code == 403
    assert client.get(f"/t/{theirs.pk}/history/").status_code == 403
    assert client.post(f"/t/{theirs.pk}/steps/0/3/", {"base_version": 1, "text": "peeked"}).status_code == 403
    assert client.get(f"/api/trajectories/{theirs.pk}/").status_code == 403
    assert client.get(f"/api/trajectories/{theirs.pk}/revisions/").status_code == 403
    r = client.patch(f"/api/trajectories/{theirs.pk}/turns/0/steps/3/",
                     data=json.dumps({"base_version": 1, "labels": ["ungrounded_answer"]}),
                     content_type="application/json")
    assert r.status_code == 403
    r = client.post(f"/api/trajectories/{theirs.pk}/status/", data=json.dumps({"action": "submit"}),
                    content_type="application/json")
    assert r.status_code == 403
    after = (Trajectory.objects.get(pk=theirs.pk).version, list(StepLabel.objects.filter(trajectory=theirs)))
    assert after == before and Trajectory.objects.get(pk=theirs.pk).status == Trajectory.DRAFT


def test_an_unclaimed_version_is_closed_to_annotators_too(client, project, overlapped, annotator):
    copy = OverlapVersion.objects.filter(original=overlapped).first().copy
    client.force_login(annotator)
    assert client.get(f"/api/trajectories/{copy.pk}/").status_code == 403


def test_the_queue_list_hides_other_annotators_versions_but_a_lead_sees_them(client, project, overlapped,
                                                                            annotator, bea, lead):
    mine, theirs = next_in_queue(annotator, project), next_in_queue(bea, project)
    client.force_login(annotator)
    ids = {t["id"] for t in client.get("/api/projects/weather/trajectories/?page_size=100").json()["results"]}
    assert mine.pk in ids and theirs.pk not in ids
    client.force_login(lead)
    ids = {t["id"] for t in client.get("/api/projects/weather/trajectories/?page_size=100").json()["results"]}
    assert {mine.pk, theirs.pk} <= ids


def test_plain_drafts_never_hand_out_a_version_or_an_overlapped_original(project, overlapped, make_user):
    # Three annotators, two versions: the third gets plain work, never the original or a copy.
    users = [make_user(f"u{i}", "annotator", project) for i in range(3)]
    got = [next_in_queue(u, project) for u in users]
    copies = set(OverlapVersion.objects.filter(original=overlapped).values_list("copy_id", flat=True))
    assert {got[0].pk, got[1].pk} == copies
    assert got[2].pk not in copies | {overlapped.pk}


def test_snapshots_take_the_original_never_the_version_copies(project, overlapped):
    Trajectory.objects.filter(project=project).update(status=Trajectory.APPROVED)
    selected = set(select_trajectories([project], Selection(status="approved")).values_list("pk", flat=True))
    copies = set(OverlapVersion.objects.values_list("copy_id", flat=True))
    assert overlapped.pk in selected and not (selected & copies)
    assert len(selected) == Trajectory.objects.filter(project=project).count() - len(copies)


def label(trajectory, position, name):
    step = Step.objects.get(trajectory=trajectory, turn_index=0, position=position)
    StepLabel.objects.create(step=step, trajectory=trajectory, label=name)


def test_submissions_refresh_the_agreement_with_the_submitted_versions(client, project, overlapped, annotator, bea,
                                                                      django_capture_on_commit_callbacks, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    mine, theirs = next_in_queue(annotator, project), next_in_queue(bea, project)
    client.force_login(annotator)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.patch(f"/api/trajectories/{mine.pk}/turns/0/steps/3/",
                         data=json.dumps({"base_version": 1, "labels": ["ungrounded_answer"]}),
                         content_type="application/json")
        assert r.status_code == 200, r.content
        r = client.post(f"/api/trajectories/{mine.pk}/status/", data=json.dumps({"action": "submit"}),
                        content_type="application/json")
        assert r.status_code == 200, r.content
    first = services.latest_report(project)
    assert first.figures["items"] == 1 and first.figures["annotators"] == ["ann"]  # bea has not submitted
    client.force_login(bea)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/api/trajectories/{theirs.pk}/status/", data=json.dumps({"action": "submit"}),
                        content_type="application/json")
        assert r.status_code == 200, r.content
    report = services.latest_report(project)
    assert report.pk != first.pk and report.status == AgreementReport.DONE
    assert report.figures["annotators"] == ["ann", "bea"]
    # ann labelled the answer ungrounded, bea did not: one disagreeing decision on that label.
    steps = Step.objects.filter(trajectory=overlapped).count()
    assert report.figures["labels"]["ungrounded_answer"]["observed"] == pytest.approx((steps - 1) / steps)
    assert report.figures["pairs"][0]["items"] == 1


def test_bulk_assignment_leaves_the_versions_to_the_blind_queue(client, project, overlapped, lead, annotator):
    copies = list(OverlapVersion.objects.filter(original=overlapped).values_list("copy_id", flat=True))
    client.force_login(lead)
    r = client.post("/api/projects/weather/assign/", data=json.dumps({"ids": copies + [overlapped.pk],
                                                                      "assignee": annotator.pk}),
                    content_type="application/json")
    assert r.status_code == 200 and r.json() == {"assigned": 1}
    assert not Trajectory.objects.filter(pk__in=copies, assignee__isnull=False).exists()


def test_the_dashboard_counts_an_overlapped_item_once_and_its_versions_as_the_annotators_work(
        project, overlapped, annotator, bea):
    from annotate.workbench.dashboard import dashboard

    originals = Trajectory.objects.filter(project=project).filter(overlap_version__isnull=True).count()
    before = dashboard(project)
    mine = next_in_queue(annotator, project)
    label(mine, 0, "wrong_tool")
    after = dashboard(project)
    assert before.total == after.total == originals
    assert not any(row["label"] == "wrong_tool" for row in after.labels)  # a version's label is not the item's
    progress = {row["user"].username: row["assigned"] for row in after.progress if row["user"]}
    assert progress["ann"] == 1  # the claimed version is ann's assigned work
