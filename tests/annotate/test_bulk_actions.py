"""Bulk submit / approve / reject from the queue and the API: one move (one revision) per trajectory,
each checked against the user's role and the trajectory's status; refusals say which and why."""

from __future__ import annotations

import pytest

from annotate.models import Revision, Trajectory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def ids(trajectories, n):
    return [t.pk for t in trajectories[:n]]


def test_a_lead_approves_many_each_its_own_revision(client, lead, demo_trajectories, project):
    chosen = ids(demo_trajectories, 3)
    Trajectory.objects.filter(pk__in=chosen).update(status="submitted")
    client.force_login(lead)
    r = client.post(f"/p/{project.slug}/bulk/", {"ids": chosen + [999999], "action": "approve"}, follow=True)
    text = r.content.decode()
    assert "Approved 3 trajectories." in text
    assert "#999999 not approved: no such trajectory in this project" in text
    assert set(Trajectory.objects.filter(pk__in=chosen).values_list("status", flat=True)) == {"approved"}
    assert Revision.objects.filter(trajectory_id__in=chosen, status="approved", author=lead).count() == 3


def test_a_rejection_needs_a_comment_and_moves_nothing_without_one(client, lead, demo_trajectories, project):
    chosen = ids(demo_trajectories, 2)
    Trajectory.objects.filter(pk__in=chosen).update(status="submitted")
    client.force_login(lead)
    r = client.post(f"/p/{project.slug}/bulk/", {"ids": chosen, "action": "reject"}, follow=True)
    assert "a rejection needs a comment" in r.content.decode()
    assert set(Trajectory.objects.filter(pk__in=chosen).values_list("status", flat=True)) == {"submitted"}


def test_an_annotator_may_submit_but_not_approve(client, annotator, demo_trajectories, project):
    chosen, waiting = ids(demo_trajectories, 2), ids(demo_trajectories[2:], 1)
    Trajectory.objects.filter(pk__in=waiting).update(status="submitted")
    client.force_login(annotator)
    r = client.post(f"/p/{project.slug}/bulk/", {"ids": waiting, "action": "approve"}, follow=True)
    assert f"#{waiting[0]} not approved: You may not approve this trajectory." in r.content.decode()
    assert Trajectory.objects.get(pk=waiting[0]).status == "submitted"
    r = client.post(f"/p/{project.slug}/bulk/", {"ids": chosen, "action": "assign", "assignee": ""})
    assert r.status_code == 403
    r = client.post(f"/p/{project.slug}/bulk/", {"ids": chosen, "action": "submit"}, follow=True)
    submitted = Trajectory.objects.filter(pk__in=chosen, status="submitted").count()
    assert f"Submitted {submitted} trajector" in r.content.decode() and submitted >= 1


def test_the_api_moves_many_and_names_the_refused(client, lead, demo_trajectories, project):
    chosen = ids(demo_trajectories, 3)
    Trajectory.objects.filter(pk__in=chosen[:2]).update(status="submitted")
    client.force_login(lead)
    r = client.post(f"/api/projects/{project.slug}/bulk-status/",
                    {"ids": chosen, "action": "reject", "comment": "Label the failed call."},
                    content_type="application/json")
    assert r.status_code == 200
    body = r.json()
    assert body["done"] == chosen[:2]
    assert body["refused"] == [{"id": chosen[2], "message": "This trajectory is draft; it cannot be rejected now."}]
    r = client.post(f"/api/projects/{project.slug}/bulk-status/", {"ids": chosen, "action": "reject"},
                    content_type="application/json")
    assert r.status_code == 400 and r.json()["field"] == "comment"


def test_an_outsider_gets_not_found(client, outsider, demo_trajectories, project):
    client.force_login(outsider)
    r = client.post(f"/api/projects/{project.slug}/bulk-status/", {"ids": [1], "action": "submit"},
                    content_type="application/json")
    assert r.status_code == 404
