"""Notifications when work is assigned or rejected, the export download (the CLI's file), the getting-started panel."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotate.models import Notification, Trajectory
from annotate.workbench.transitions import transition

pytestmark = pytest.mark.django_db


def badge(html: str) -> str | None:
    m = re.search(r'id="notif-badge">(\d+)<', html)
    return m.group(1) if m else None


def test_assigning_work_notifies_the_assignee_once_and_not_the_lead(client, lead, annotator, project,
                                                                   demo_trajectories):
    ids = [t.pk for t in demo_trajectories[:3]]
    client.force_login(lead)
    client.post(reverse("annotate:assign", args=[project.slug]), {"ids": ids, "assignee": annotator.pk})
    client.post(reverse("annotate:assign", args=[project.slug]), {"ids": ids[:1], "assignee": lead.pk})
    [n] = Notification.objects.all()
    assert (n.user, n.kind, n.message) == (annotator, "assigned", "lena assigned you 3 trajectories in Weather bot")
    client.force_login(annotator)
    assert badge(client.get("/").content.decode()) == "1"
    page = client.get(reverse("annotate:notifications")).content.decode()
    assert "lena assigned you 3 trajectories" in page
    assert "{#" not in page and "Include with page=" not in page  # the pagination partial's comment stays hidden
    r = client.get(n.get_absolute_url())
    assert r.status_code == 302 and r["Location"] == f"/p/weather/trajectories/?assignee={annotator.pk}"
    assert badge(client.get("/").content.decode()) is None


def test_a_rejection_notifies_the_assignee_with_the_comment(client, lead, annotator, project, demo_trajectories):
    t = demo_trajectories[0]
    Trajectory.objects.filter(pk=t.pk).update(assignee=annotator)
    t.refresh_from_db()
    transition(t, "submit", user=annotator)
    transition(t, "reject", user=lead, comment="the city is wrong")
    [n] = Notification.objects.filter(user=annotator)
    assert n.kind == "rejected" and n.message.endswith(": the city is wrong") and n.url == t.get_absolute_url()


def test_notifications_are_private_and_mark_all_read_marks_only_mine(client, lead, annotator, outsider, project,
                                                                     demo_trajectories):
    Notification.objects.create(user=annotator, project=project, kind="assigned", message="annotator-only-note-m1", url="/")
    mine = Notification.objects.create(user=lead, project=project, kind="assigned", message="lead-only-note-m2", url="/")
    client.force_login(annotator)
    assert client.get(mine.get_absolute_url()).status_code == 404
    assert "lead-only-note-m2" not in client.get(reverse("annotate:notifications")).content.decode()
    client.post(reverse("annotate:notifications-read"))
    assert not Notification.objects.filter(user=annotator, read_at__isnull=True).exists()
    assert Notification.objects.get(pk=mine.pk).read_at is None


@pytest.mark.parametrize("fmt", ["raw", "messages"])
def test_the_export_download_is_the_clis_file(client, lead, project, demo_trajectories, tmp_path, fmt):
    out = tmp_path / "out.jsonl"
    call_command("export_trajectories", str(out), project=project.slug, format=fmt)
    client.force_login(lead)
    r = client.get(reverse("annotate:export-trajectories", args=[project.slug]),
                   {"format": fmt, "status": "any", "download": "1"})
    assert r.status_code == 200 and "attachment" in r["Content-Disposition"]
    body = b"".join(r.streaming_content).decode()
    assert body == out.read_text() and len(body.splitlines()) == len(demo_trajectories)
    assert json.loads(body.splitlines()[0])


def test_the_export_is_for_leads_and_refuses_an_unknown_format(client, lead, annotator, project, demo_trajectories):
    url = reverse("annotate:export-trajectories", args=[project.slug])
    client.force_login(annotator)
    assert client.get(url, {"download": "1"}).status_code == 403
    client.force_login(lead)
    r = client.get(url, {"format": "bfcl", "download": "1"})
    assert r.status_code == 400 and "cannot export to &#x27;bfcl&#x27;" in r.content.decode()


def test_an_empty_project_shows_getting_started_to_its_lead_with_import_next(client, lead, annotator, project):
    client.force_login(lead)
    html = client.get(project.get_absolute_url()).content.decode()
    panel = html.split('id="getting-started"')[1].split("</section>")[0]
    assert re.findall(r'data-step="(\w+)"', panel) == ["import", "annotate", "snapshot", "train", "evaluate"]
    assert 'gs-step gs-next" data-step="import"' in panel and "gs-done" not in panel
    client.force_login(annotator)
    assert 'id="getting-started"' not in client.get(project.get_absolute_url()).content.decode()


def test_getting_started_ticks_off_import_and_annotate(client, lead, project, demo_trajectories):
    client.force_login(lead)
    html = client.get(project.get_absolute_url()).content.decode()
    assert 'gs-step gs-done" data-step="import"' in html and 'gs-step gs-next" data-step="annotate"' in html
    t = demo_trajectories[0]
    transition(t, "submit", user=lead)
    html = client.get(project.get_absolute_url()).content.decode()
    assert 'gs-step gs-done" data-step="annotate"' in html and 'gs-step gs-next" data-step="snapshot"' in html
