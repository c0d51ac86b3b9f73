"""Lost and stuck jobs, in one process: the sweep sends again a queued row whose message is gone
(then fails it with the reason), restarts an export whose worker died, finds a row's message in the
broker; asking again revives a stuck snapshot; a lead retries a failed export; a restarted export's
old worker cannot write over the new attempt. The same with real Redis, workers and kill -9:
``test_jobs_faults.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD
from tests.training.jobs_harness import publish
from tests.training.snapshot_helpers import approve_all, fast_passwords, render_settings
from jobs import queue, rows, sweep
from training.models import JobStatus, Snapshot, TrainingJob
from training.snapshots.tasks import export_snapshot
from training.snapshots import create_snapshot, retry_export

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
_ = fast_passwords


@pytest.fixture
def sent(monkeypatch):
    """The exports sent to the broker (by row id)."""
    out: list[int] = []
    monkeypatch.setattr(export_snapshot, "delay", lambda pk: out.append(pk))
    return out


@pytest.fixture
def broker(monkeypatch):
    """What the broker holds: ``broker.waiting`` is the answer to "is its message there?"."""
    class Broker:
        waiting: bool | None = False
        asked: list[int] = []

    b = Broker()
    b.asked = []

    def rows_waiting(model, taken_within=300, **_):
        b.asked.append(model)
        if b.waiting is None:
            return None
        return set(model.objects.values_list("pk", flat=True)) if b.waiting else set()
    monkeypatch.setattr(queue, "rows_waiting", rows_waiting)
    return b


@pytest.fixture
def snapshot(project, demo_trajectories, lead, tiny_model_dir, tmp_path):
    approve_all(project)
    return create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead, enqueue=False,
                           out_dir=tmp_path / "snap")


def age(row, seconds: float, **more) -> None:
    then = timezone.now() - timezone.timedelta(seconds=seconds)
    type(row).objects.filter(pk=row.pk).update(created_at=then, **({"enqueued_at": then} if row.enqueued_at or
                                                                   more.pop("enqueued", False) else {}), **more)
    row.refresh_from_db()


# --- queued rows whose message is gone -----------------------------------------------------------

def test_a_queued_export_whose_message_is_gone_is_sent_again_then_failed_with_the_reason(snapshot, sent, broker,
                                                                                         settings):
    settings.JOB_QUEUED_TIMEOUT, settings.JOB_MAX_ATTEMPTS = 60, 3
    age(snapshot, 61)
    assert queue.sweep_queued(Snapshot, 60) == [snapshot.pk]
    snapshot.refresh_from_db()
    assert sent == [snapshot.pk] and snapshot.status == JobStatus.QUEUED and snapshot.attempts == 1
    assert snapshot.message == "Re-queued: its message was lost (attempt 2 of 3)"
    assert queue.sweep_queued(Snapshot, 60) == []  # just sent: it gets its full timeout again
    age(snapshot, 61)
    queue.sweep_queued(Snapshot, 60)
    age(snapshot, 61)
    assert queue.sweep_queued(Snapshot, 60) == [snapshot.pk]
    snapshot.refresh_from_db()
    assert sent == [snapshot.pk] * 2 and snapshot.status == JobStatus.FAILED and snapshot.finished_at
    assert "sent 3 times, each time lost" in snapshot.error and "`export` queue" in snapshot.error


def test_a_queued_job_whose_message_waits_in_the_broker_is_left_alone(project, snapshot, sent, broker, lead):
    from training import runner

    job = TrainingJob.objects.create(project=project, snapshot=snapshot, kind="sft", base_model="m",
                                     config=runner.TrainSettings().to_dict())
    broker.waiting = True  # a long queue is not a lost message
    age(snapshot, 1000)
    age(job, 1000)
    assert sweep.sweep_all() == {"stale": [], "queued": []}
    assert Snapshot in broker.asked and TrainingJob in broker.asked
    snapshot.refresh_from_db()
    assert snapshot.status == JobStatus.QUEUED and snapshot.attempts == 0 and sent == []


def test_a_lost_training_job_is_sent_to_the_train_queue_again(project, snapshot, broker, monkeypatch):
    from training import runner

    trained = []
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: trained.append(pk))
    job = TrainingJob.objects.create(project=project, snapshot=snapshot, kind="sft", base_model="m",
                                     config=runner.TrainSettings().to_dict())
    age(job, 1000)
    assert queue.queue_of(TrainingJob) == "train"
    assert queue.sweep_queued(TrainingJob, 300) == [job.pk] and trained == [job.pk]


def test_on_a_broker_that_cannot_be_looked_into_a_late_row_is_sent_again(snapshot, sent, broker):
    broker.waiting = None  # say, RabbitMQ
    age(snapshot, 1000)
    assert queue.sweep_queued(Snapshot, 300) == [snapshot.pk] and sent == [snapshot.pk]
    snapshot.refresh_from_db()
    assert snapshot.message == "Re-queued: no worker took it in time (attempt 2 of 3)"


def test_a_young_queued_row_is_not_looked_for(snapshot, sent, broker):
    assert queue.sweep_queued(Snapshot, 60) == [] and broker.asked == [] and sent == []


def test_the_sweep_sends_nothing_while_the_broker_is_down(snapshot, sent, monkeypatch):
    def down(*a, **k):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    monkeypatch.setattr(queue, "rows_waiting", down)
    age(snapshot, 1000)
    assert queue.sweep_queued(Snapshot, 60) == [] and sent == []
    snapshot.refresh_from_db()
    assert snapshot.status == JobStatus.QUEUED and snapshot.attempts == 0


def test_a_worker_that_claims_the_row_meanwhile_wins(snapshot, sent, broker):
    age(snapshot, 1000)
    stale_copy = Snapshot.objects.get(pk=snapshot.pk)
    assert rows.claim(Snapshot, snapshot.pk)
    assert queue.revive_if_lost(Snapshot, stale_copy) == "taken" and sent == []


def test_asking_again_for_a_stuck_snapshot_sends_its_export_again(project, demo_trajectories, lead, tiny_model_dir,
                                                                  sent, broker, django_capture_on_commit_callbacks):
    approve_all(project)
    with django_capture_on_commit_callbacks(execute=True):
        first = create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead)
    assert sent == [first.pk]
    age(first, 3600)  # its message went with a Redis restart
    again = create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead)
    assert again.pk == first.pk and again.reused and again.attempts == 1 and sent == [first.pk] * 2
    broker.waiting = True
    age(again, 3600)
    assert create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead).attempts == 1  # still queued


# --- the broker ----------------------------------------------------------------------------------

def test_a_rows_message_is_found_in_the_filesystem_broker(snapshot, tmp_path):
    from studio.celery import app

    publish(export_snapshot, snapshot.pk, data_dir=tmp_path)
    folders = {"data_folder_in": str(tmp_path / "broker" / "in"), "data_folder_out": str(tmp_path / "broker" / "in"),
               "processed_folder": str(tmp_path / "broker" / "processed")}

    def look(model, pk):
        return queue.message_waiting(model, pk, connection=app.connection_for_read(
            url="filesystem://", transport_options=folders))

    assert look(Snapshot, snapshot.pk) is True
    assert look(Snapshot, snapshot.pk + 1) is False  # another row
    assert look(TrainingJob, snapshot.pk) is False  # another task (and queue)
    for f in (tmp_path / "broker" / "in").iterdir():
        f.unlink()  # a worker took it, or it was lost
    assert look(Snapshot, snapshot.pk) is False


@pytest.mark.parametrize("raw, found", [
    ('{"headers": {"task": "training.tasks.export_snapshot", "argsrepr": "(7,)"}}', True),
    ('{"headers": {"task": "training.tasks.export_snapshot", "argsrepr": "[7]"}}', True),
    ('[{"headers": {"task": "training.tasks.export_snapshot", "argsrepr": "(7,)"}}, "", "export"]', True),
    ('{"headers": {"task": "training.tasks.export_snapshot", "argsrepr": "(17,)"}}', False),
    ('{"headers": {"task": "training.tasks.train_job", "argsrepr": "(7,)"}}', False),
    ('not json', False),
])
def test_a_message_names_a_row_by_its_task_and_its_argument(raw, found):
    assert (queue._row_of(raw.encode(), "training.tasks.export_snapshot") == 7) is found


# --- running rows whose worker died ----------------------------------------------------------------

def test_the_sweep_restarts_an_export_whose_worker_died_then_fails_it(snapshot, sent, settings):
    from jobs.tasks import sweep_stale_jobs

    settings.JOB_MAX_ATTEMPTS = 2
    stale = timezone.now() - timezone.timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 5)
    Snapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.RUNNING, started_at=stale, heartbeat_at=stale,
                                                   progress=0.4)
    assert sweep_stale_jobs() == [snapshot.pk]
    snapshot.refresh_from_db()
    assert (snapshot.status, snapshot.attempts, snapshot.progress) == (JobStatus.QUEUED, 1, 0)
    assert snapshot.started_at is None
    assert snapshot.message.startswith("Restarting: its worker stopped responding") and sent == [snapshot.pk]
    Snapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.RUNNING, started_at=stale, heartbeat_at=stale)
    sweep_stale_jobs()
    snapshot.refresh_from_db()
    assert snapshot.status == JobStatus.FAILED and "No heartbeat" in snapshot.error and sent == [snapshot.pk]


def test_a_restarted_exports_old_worker_cannot_write_over_the_new_attempt(snapshot):
    assert rows.claim(Snapshot, snapshot.pk)
    old = Snapshot.objects.get(pk=snapshot.pk).started_at
    Snapshot.objects.filter(pk=snapshot.pk).update(started_at=old - timezone.timedelta(seconds=30))  # a new claim
    assert not rows.beat(Snapshot, snapshot.pk, claimed_at=old, progress=0.9)
    assert not rows.finish(Snapshot, snapshot.pk, JobStatus.FAILED, claimed_at=old, error="old worker")
    snapshot.refresh_from_db()
    assert snapshot.status == JobStatus.RUNNING and snapshot.error == "" and snapshot.progress == 0


# --- a killed export starts over cleanly -----------------------------------------------------------

def test_a_failed_export_retried_by_a_lead_starts_over_and_replaces_the_half_written_files(
        snapshot, lead, sent, django_capture_on_commit_callbacks):
    import os

    out = Path(snapshot.out_dir)
    (out / "hf").mkdir(parents=True)
    (out / "hf" / "half-written.arrow").write_text("killed here")  # an export from before partial folders
    leftover = out.parent / f".{out.name}.partial-deadbeef"
    (leftover / "hf").mkdir(parents=True)
    os.utime(leftover, (0, 0))  # a partial folder of an attempt that died long ago
    Snapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.FAILED, error="No heartbeat for 75 s",
                                                   attempts=2, finished_at=timezone.now())
    snapshot.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        retried = retry_export(snapshot, lead)
    assert (retried.status, retried.error, retried.attempts, sent) == (JobStatus.QUEUED, "", 0, [snapshot.pk])
    assert export_snapshot(snapshot.pk) == JobStatus.SUCCEEDED
    assert not (out / "hf" / "half-written.arrow").exists() and (out / "hf" / "dataset_dict.json").exists()
    assert not list(out.parent.glob(f".{out.name}.*"))  # no partial folder left, old or new
    from training.export import directory_digest

    digest = directory_digest(out)
    Snapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.CANCELLED)
    retry_export(Snapshot.objects.get(pk=snapshot.pk), lead)
    assert export_snapshot(snapshot.pk) == JobStatus.SUCCEEDED and directory_digest(out) == digest


def test_only_a_failed_or_cancelled_export_is_retried(snapshot, lead, sent):
    from training.snapshots import SnapshotError

    with pytest.raises(SnapshotError, match="only a failed or cancelled export"):
        retry_export(snapshot, lead)
    assert sent == []


def test_the_page_and_the_api_retry_a_failed_export_for_leads_only(client, snapshot, lead, annotator, sent,
                                                                   django_capture_on_commit_callbacks):
    Snapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.FAILED, error="No heartbeat for 75 s")
    client.login(username=annotator.username, password=PASSWORD)
    page = client.get(reverse("training:snapshot-detail", args=[snapshot.pk]))
    assert b"retry-snapshot" not in page.content
    assert client.post(f"/api/snapshots/{snapshot.pk}/retry/").status_code == 403
    assert client.post(reverse("training:retry-snapshot", args=[snapshot.pk])).status_code == 403
    snapshot.refresh_from_db()
    assert (snapshot.status, snapshot.error, sent) == (JobStatus.FAILED, "No heartbeat for 75 s", [])
    client.login(username=lead.username, password=PASSWORD)
    page = client.get(reverse("training:snapshot-detail", args=[snapshot.pk]))
    assert b'id="retry-snapshot"' in page.content and b"No heartbeat for 75 s" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(reverse("training:retry-snapshot", args=[snapshot.pk]))
    assert r.status_code == 302 and Snapshot.objects.get(pk=snapshot.pk).status == JobStatus.QUEUED
    again = client.post(f"/api/snapshots/{snapshot.pk}/retry/")
    assert again.status_code == 400 and again.json()["field"] == "status"
    Snapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.CANCELLED)
    with django_capture_on_commit_callbacks(execute=True):
        ok = client.post(f"/api/snapshots/{snapshot.pk}/retry/")
    assert ok.status_code == 200 and ok.json()["status"] == "queued" and sent == [snapshot.pk] * 2
