"""The training jobs' REST API: the same rules as the form, for scripts and pipelines."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.training.jobs_harness import bare_snapshot_dir, fast_users, make_snapshot
from training.models import JobStatus, MetricPoint, TrainingJob


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path, monkeypatch):
    fast_users(settings)
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: None)  # no broker in these tests


@pytest.fixture
def snap(project, tmp_path):
    return make_snapshot(project, "sft", bare_snapshot_dir(tmp_path / "sft"))


def api(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def body(snap, **over):
    return {"snapshot": snap.pk, "kind": "sft", "base_model": "Qwen/Qwen3-0.6B",
            "settings": {"max_steps": 5, "method": "lora", "lora_r": 8}, **over}


def test_a_lead_launches_a_run_and_reads_it_back(lead, snap):
    r = api(lead).post("/api/projects/weather/training-jobs/", body(snap), format="json")
    assert r.status_code == 201, r.data
    job = TrainingJob.objects.get(pk=r.data["id"])
    assert job.status == JobStatus.QUEUED and job.config["lora_r"] == 8 and job.config["method"] == "lora"
    got = api(lead).get(f"/api/training-jobs/{job.pk}/").data
    assert got["status"] == "queued" and got["base_model"] == "Qwen/Qwen3-0.6B"
    listed = api(lead).get("/api/projects/weather/training-jobs/", {"status": "queued"}).data
    assert [j["id"] for j in listed["results"]] == [job.pk]


@pytest.mark.parametrize("over, field, says", [
    ({"settings": {"learning_rate": -1}}, "learning_rate", "above 0"),
    ({"settings": {"max_stepz": 5}}, "settings", "unknown setting(s): max_stepz"),
    ({"kind": "dpo"}, "snapshot", "DPO needs a DPO snapshot"),
    ({"base_model": "/no/model/here"}, "base_model", "Not an allowed path"),
    ({"snapshot": 999999}, "snapshot", "Choose a finished snapshot"),
])
def test_bad_launches_are_refused_naming_the_field(lead, snap, over, field, says):
    r = api(lead).post("/api/projects/weather/training-jobs/", body(snap, **over), format="json")
    assert r.status_code == 400 and says in str(r.data[field])
    assert not TrainingJob.objects.exists()


def test_an_annotator_cannot_launch_cancel_or_resume_and_an_outsider_sees_nothing(annotator, outsider, lead, snap):
    assert api(annotator).post("/api/projects/weather/training-jobs/", body(snap), format="json").status_code == 403
    assert not TrainingJob.objects.exists()
    job_id = api(lead).post("/api/projects/weather/training-jobs/", body(snap), format="json").data["id"]
    status = TrainingJob.objects.get(pk=job_id).status
    assert api(annotator).post(f"/api/training-jobs/{job_id}/cancel/").status_code == 403
    assert TrainingJob.objects.get(pk=job_id).status == status and TrainingJob.objects.count() == 1
    assert api(annotator).get(f"/api/training-jobs/{job_id}/").status_code == 200
    assert api(outsider).get(f"/api/training-jobs/{job_id}/").status_code == 404
    assert api(outsider).get("/api/projects/weather/training-jobs/").status_code == 404
    assert APIClient().get(f"/api/training-jobs/{job_id}/").status_code in (401, 403)


def test_the_preview_returns_the_trl_config_for_each_device_and_queues_nothing(lead, snap):
    r = api(lead).post("/api/projects/weather/training-jobs/preview/", body(snap), format="json")
    assert r.status_code == 200
    assert r.data["trl_config"]["cpu"]["use_cpu"] is True and r.data["trl_config"]["cuda"]["bf16"] is True
    assert r.data["command"].startswith("python -m training.runner") and r.data["job"]["settings"]["lora_r"] == 8
    assert not TrainingJob.objects.exists()


def test_metrics_can_be_polled_after_a_step_and_a_queued_run_cancelled(lead, snap):
    job_id = api(lead).post("/api/projects/weather/training-jobs/", body(snap), format="json").data["id"]
    MetricPoint.objects.bulk_create([MetricPoint(job_id=job_id, step=s, values={"loss": 1.0 / s}) for s in (1, 2, 3)])
    newer = api(lead).get(f"/api/training-jobs/{job_id}/metrics/", {"after": 1}).data
    assert [p["step"] for p in newer] == [2, 3]
    cancelled = api(lead).post(f"/api/training-jobs/{job_id}/cancel/").data
    assert cancelled["status"] == "cancelled"
    r = api(lead).post(f"/api/training-jobs/{job_id}/resume/")
    assert r.status_code == 400 and "before its first checkpoint" in str(r.data)
