"""An import writes no Revision: a trajectory's rows are its version 1 until it first changes.

What a user sees must not change: the history shows "v1 imported", the first edit or workflow
move keeps the original as version 1 (diff, revert and correction suggestions need it), and
snapshots and pairs pin a revision of what is stored.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotate.models import Revision, Trajectory
from annotate.workbench.documents import document_at
from annotate.workbench.editing import Edit
from annotate.workbench.saving import save_edit
from annotate.workbench.transitions import transition

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def weather(demo_trajectories):
    return next(t for t in demo_trajectories if t.external_id == "demo-weather")


def test_an_unchanged_import_shows_version_1_imported_in_the_history_page_and_api(client, lead, weather):
    assert not Revision.objects.filter(trajectory=weather).exists()
    client.force_login(lead)
    page = client.get(f"/t/{weather.pk}/history/")
    assert page.status_code == 200 and b"imported" in page.content
    listed = client.get(f"/api/trajectories/{weather.pk}/revisions/").json()
    assert [(r["version"], r["summary"], r["author"], r["status"]) for r in listed["results"]] == [
        (1, "imported", None, "draft")]
    one = client.get(f"/api/trajectories/{weather.pk}/revisions/1/").json()
    assert one["document"] == weather.to_canonical().to_dict() and one["changes"] == []
    assert client.get(f"/api/trajectories/{weather.pk}/revisions/2/").status_code == 404
    detail = client.get(weather.get_absolute_url())
    assert b"v1" in detail.content and b"imported" in detail.content
    assert not Revision.objects.filter(trajectory=weather).exists()  # (reading writes nothing)


def test_the_first_edit_keeps_the_original_as_version_1(client, lead, weather):
    original = weather.to_canonical()
    save_edit(weather, Edit("update_step", 0, 3, {"text": "It is 18 °C in Paris."}), user=lead, base_version=1)
    revisions = list(Revision.objects.filter(trajectory=weather).order_by("version"))
    assert [(r.version, r.summary, r.author, r.status) for r in revisions][0] == (1, "imported", None, "draft")
    assert revisions[0].document == original.to_dict() and revisions[0].created_at == weather.created_at
    assert revisions[1].version == 2 and revisions[1].author == lead
    assert revisions[1].document["turns"][0]["steps"][3]["text"] == "It is 18 °C in Paris."
    client.force_login(lead)
    history = client.get(f"/t/{weather.pk}/history/").content.decode()
    assert "turn 1 · step 4 · answer" in history and "<del>" in history and "imported" in history  # v2 against v1
    # Reverting brings the original back.
    r = client.post(f"/api/trajectories/{weather.pk}/revert/", data=json.dumps({"version": 1, "base_version": 2}),
                    content_type="application/json")
    assert r.status_code == 200, r.content
    weather.refresh_from_db()
    assert weather.version == 3 and weather.to_canonical() == original


def test_the_first_workflow_move_keeps_version_1_with_its_status(annotator, weather):
    weather.assignee = annotator
    weather.save()
    transition(weather, "submit", user=annotator)
    assert list(Revision.objects.filter(trajectory=weather).order_by("version").values_list(
        "version", "status", "summary")) == [(1, "draft", "imported"), (2, "submitted", "submitted for review")]
    assert document_at(weather, 1) == document_at(weather, 2) == weather.to_canonical()


def test_a_snapshot_pins_unchanged_imports_in_a_few_queries_per_500(project, demo_trajectories):
    from annotate.ingest.writer import write_trajectories
    from training.snapshots import pin_revisions

    docs = [t.to_canonical() for t in demo_trajectories] * 20
    write_trajectories(project, docs)
    everything = Trajectory.objects.filter(project=project).order_by("id")
    n = everything.count()
    assert n > 100 and not Revision.objects.exists()
    with CaptureQueriesContext(connection) as queries:
        pinned = pin_revisions(everything)
    assert len(queries) <= 12, [q["sql"][:80] for q in queries]  # not three or four per trajectory
    assert len(pinned) == n
    for (tid, rid), row in zip(pinned, everything):
        revision = Revision.objects.get(pk=rid)
        assert (revision.trajectory_id, revision.version, revision.summary) == (row.pk, 1, "imported")
        assert revision.document == row.to_canonical().to_dict()
    assert pin_revisions(everything) == pinned  # pinned once


def test_a_pair_cut_from_an_unchanged_import_pins_its_version_1(project, lead, weather):
    from annotate import pairs as core
    from annotate.pairs.services import fork_trajectory, save_pair

    pair, revision = fork_trajectory(weather, 0, 1, category="tool_needed")
    assert revision is None and not Revision.objects.exists()  # (previewing a cut writes nothing)
    pair.rejected = core.starter_steps("tool_needed", pair.chosen, pair.context)
    row = save_pair(project, pair, user=lead, trajectory=weather)
    assert row.revision.version == 1 and row.revision.document == weather.to_canonical().to_dict()
