"""The snapshot API: what the snapshot pages do, for scripts (roles checked on every call)."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from training.models import Snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def tiny_default_tokenizer(settings, tiny_model_dir):
    settings.DEMO_MODEL_DIR = tiny_model_dir  # the project's default tokenizer


@pytest.fixture
def api(client):
    def as_user(user):
        client.login(username=user.username, password=PASSWORD)
        return client
    return as_user


def test_a_lead_creates_a_snapshot_and_the_same_request_returns_it_again(api, lead, project, demo_trajectories,
                                                                         django_capture_on_commit_callbacks):
    c = api(lead)
    body = {"kind": "sft", "filters": {"status": "any"}, "render_settings": {"template": "qwen3_training"}}
    with django_capture_on_commit_callbacks(execute=False) as queued:
        r = c.post(f"/api/projects/{project.slug}/snapshots/", body, content_type="application/json")
    assert r.status_code == 201, r.content
    snap = r.json()
    assert snap["status"] == "queued" and snap["item_count"] == len(demo_trajectories) and snap["content_hash"]
    assert len(queued) == 1  # the export is enqueued after commit
    again = c.post(f"/api/projects/{project.slug}/snapshots/", body, content_type="application/json")
    assert again.status_code == 200 and again.json()["id"] == snap["id"]
    listed = c.get(f"/api/projects/{project.slug}/snapshots/").json()
    assert [s["id"] for s in listed] == [snap["id"]]
    detail = c.get(f"/api/snapshots/{snap['id']}/").json()
    assert detail["kind"] == "sft" and "audit" in detail


def test_an_empty_selection_is_a_400_naming_the_field(api, lead, project, demo_trajectories):
    r = api(lead).post(f"/api/projects/{project.slug}/snapshots/", {"kind": "sft", "filters": {"status": "approved"}},
                       content_type="application/json")
    assert r.status_code == 400 and r.json()["field"] == "filters"
    assert Snapshot.objects.count() == 0


def test_annotators_and_outsiders_may_not_create_snapshots(api, annotator, outsider, project, demo_trajectories):
    for user, code in ((annotator, 403), (outsider, 404)):
        r = api(user).post(f"/api/projects/{project.slug}/snapshots/", {"kind": "sft", "filters": {"status": "any"}},
                           content_type="application/json")
        assert r.status_code == code
    assert Snapshot.objects.count() == 0


def test_override_needs_a_finished_export_with_errors(api, lead, project, demo_trajectories):
    c = api(lead)
    snap = c.post(f"/api/projects/{project.slug}/snapshots/", {"filters": {"status": "any"}},
                  content_type="application/json").json()
    r = c.post(f"/api/snapshots/{snap['id']}/override/", {"reason": "known"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["field"] == "status"


def test_the_api_docs_page_loads_its_assets_locally(api, lead):
    r = api(lead).get("/api/docs/")
    assert r.status_code == 200
    assert b"cdn.jsdelivr" not in r.content and b"swagger-ui" in r.content
