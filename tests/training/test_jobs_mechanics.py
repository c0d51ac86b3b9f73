"""Job mechanics against the database, without a worker: claim, heartbeat, cancel, the sweep, the
monitor that turns a run's events into metric points, the verdict on a finished process, resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from django.utils import timezone

from tests.training.jobs_harness import bare_snapshot_dir, fast_users, make_snapshot
from jobs import processes, rows, supervisor, sweep
from training import jobs, runner
from training.models import JobStatus, MetricPoint, TrainingJob


@pytest.fixture(autouse=True)
def _fast_users(settings):
    fast_users(settings)


def quick_settings():
    return runner.TrainSettings(max_steps=4, save_steps=2)


@pytest.fixture
def snapshot(db, project, tmp_path):
    return make_snapshot(project, "sft", bare_snapshot_dir(tmp_path / "snap"))


@pytest.fixture
def make_job(snapshot, tmp_path, settings):
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"

    def make(status=JobStatus.QUEUED, **fields):
        job = jobs.launch_training(project=snapshot.project, snapshot=snapshot, kind="sft", base_model="org/model",
                                   train_settings=quick_settings(), enqueue=False)
        TrainingJob.objects.filter(pk=job.pk).update(status=status, **fields)
        job.refresh_from_db()
        return job

    return make


def test_a_queued_job_is_claimed_once(make_job):
    job = make_job()
    assert rows.claim(TrainingJob, job.pk) is True
    assert rows.claim(TrainingJob, job.pk) is False  # a duplicate delivery does nothing
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.started_at and job.heartbeat_at


def test_a_job_cancelled_while_queued_is_never_claimed(make_job):
    job = make_job()
    assert rows.request_cancel(job) == "cancelled"
    assert rows.claim(TrainingJob, job.pk) is False
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at


def test_cancelling_a_running_job_flags_it_for_its_worker(make_job):
    job = make_job(JobStatus.RUNNING)
    assert rows.request_cancel(job) == "cancelling"
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested
    done = make_job(JobStatus.SUCCEEDED)
    assert rows.request_cancel(done) == "finished"


def test_the_sweep_fails_running_jobs_whose_heartbeat_went_stale_and_says_why(make_job):
    old = timezone.now() - timezone.timedelta(seconds=300)
    stale = make_job(JobStatus.RUNNING, heartbeat_at=old, started_at=old)
    fresh = make_job(JobStatus.RUNNING, heartbeat_at=timezone.now(), started_at=old)
    asked = make_job(JobStatus.RUNNING, heartbeat_at=old, started_at=old, cancel_requested=True)
    queued = make_job()
    assert sorted(sweep.sweep_stale(TrainingJob, 60)) == sorted([stale.pk, asked.pk])
    for j in (stale, fresh, asked, queued):
        j.refresh_from_db()
    assert stale.status == JobStatus.FAILED and "No heartbeat for 300 s" in stale.error
    assert "limit is 60 s" in stale.error and "Resume" in stale.error
    assert asked.status == JobStatus.CANCELLED
    assert fresh.status == JobStatus.RUNNING and queued.status == JobStatus.QUEUED


def test_a_swept_job_stays_failed_when_its_worker_comes_back(make_job):
    old = timezone.now() - timezone.timedelta(seconds=300)
    job = make_job(JobStatus.RUNNING, heartbeat_at=old, started_at=old)
    sweep.sweep_stale(TrainingJob, 60)
    assert rows.beat(TrainingJob, job.pk, current_step=3) is False  # the worker learns it must stop
    assert rows.finish(TrainingJob, job.pk, JobStatus.SUCCEEDED) is False
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.current_step == 0


def test_the_periodic_sweep_is_scheduled_and_uses_the_heartbeat_timeout(make_job, settings):
    from studio.celery import app
    from jobs.tasks import sweep_stale_jobs

    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"].endswith("sweep_stale_jobs"))
    assert entry["task"] in app.tasks
    settings.JOB_HEARTBEAT_TIMEOUT = 5
    job = make_job(JobStatus.RUNNING, heartbeat_at=timezone.now() - timezone.timedelta(seconds=6))
    assert sweep_stale_jobs.run() == [job.pk]


def test_launching_enqueues_the_job_once_after_commit(snapshot, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = jobs.launch_training(project=snapshot.project, snapshot=snapshot, kind="sft", base_model="org/model",
                                   train_settings=quick_settings())
        assert sent == []  # not before the row is committed
    assert len(callbacks) == 1 and sent == [job.pk]


def test_a_blank_max_length_takes_the_snapshots(snapshot):
    job = jobs.launch_training(project=snapshot.project, snapshot=snapshot, kind="sft", base_model="org/model",
                               train_settings=runner.TrainSettings(max_length=0), enqueue=False)
    assert job.config["max_length"] == snapshot.render_settings["max_length"]


def _write_events(run_dir, *events, partial: str = ""):
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / runner.METRICS_FILE, "a") as fh:
        for e in events:
            fh.write(json.dumps({"time": time.time(), **e}) + "\n")
        fh.write(partial)


def test_the_monitor_turns_run_events_into_metric_points_and_progress(make_job, tmp_path):
    from pathlib import Path

    job = make_job(JobStatus.RUNNING)
    run_dir = Path(job.output_dir)
    monitor = jobs.RunMonitor(job)
    _write_events(run_dir, {"event": "status", "message": "Training"}, {"event": "begin", "step": 0, "max_steps": 4},
                  {"event": "step", "step": 1, "max_steps": 4},
                  {"event": "log", "step": 1, "epoch": 0.25, "values": {"loss": 2.0, "tokens_per_second": 900.0}},
                  {"event": "step", "step": 2, "max_steps": 4},
                  {"event": "checkpoint", "step": 2, "path": "/x/checkpoint-2"},
                  partial='{"event": "log", "step": 2, "values": {"lo')  # still being written
    monitor.ingest()
    assert list(job.metrics.values_list("step", "values")) == [(1, {"loss": 2.0, "tokens_per_second": 900.0})]
    fields = monitor.fields()
    assert fields["current_step"] == 2 and fields["total_steps"] == 4 and fields["progress"] == 0.5
    assert fields["summary"]["last_checkpoint"] == [2, "/x/checkpoint-2"] and fields["message"] == "Training"
    with open(run_dir / runner.METRICS_FILE, "a") as fh:
        fh.write('ss": 1.5}}\n')
    monitor.ingest()
    assert job.metrics.count() == 2 and job.metrics.last().values == {"loss": 1.5}


@pytest.mark.parametrize("returncode, events, status, says", [
    (0, [{"event": "end", "results": {"train_loss": 1.0}}], JobStatus.SUCCEEDED, ""),
    (-signal.SIGKILL, [], JobStatus.FAILED, "killed by SIGKILL (out of memory is the usual cause"),
    (1, [{"event": "error", "message": "ValueError: nothing to train on: raise max_length."}], JobStatus.FAILED,
     "ValueError: nothing to train on"),
    (3, [], JobStatus.FAILED, "exited with code 3"),
    (-signal.SIGTERM, [{"event": "error", "message": "RuntimeError: boom"}], JobStatus.FAILED,
     "The training process was killed by SIGTERM. RuntimeError: boom"),
    (0, [], JobStatus.FAILED, "exited with code 0"),  # exit 0 without finishing is no success
])
def test_the_verdict_on_a_finished_process(make_job, returncode, events, status, says):
    from pathlib import Path

    job = make_job(JobStatus.RUNNING)
    _write_events(Path(job.output_dir), *events)
    monitor = jobs.RunMonitor(job)
    monitor.ingest()
    assert supervisor.conclude(monitor, returncode, "") == status
    job.refresh_from_db()
    assert job.status == status and says in job.error
    if status == JobStatus.SUCCEEDED:
        assert job.summary["results"] == {"train_loss": 1.0} and job.progress == 1.0


def _checkpoint(run_dir, step, complete=True):
    d = run_dir / "checkpoints" / f"checkpoint-{step}"
    d.mkdir(parents=True)
    if complete:
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return d


def test_a_failed_run_resumes_from_its_newest_complete_checkpoint_with_its_curve_so_far(make_job):
    from pathlib import Path

    job = make_job(JobStatus.FAILED)
    _checkpoint(Path(job.output_dir), 2)
    ckpt = _checkpoint(Path(job.output_dir), 4)
    _checkpoint(Path(job.output_dir), 6, complete=False)  # cut short while saving
    MetricPoint.objects.bulk_create([MetricPoint(job=job, step=s, values={"loss": 3 - s / 10}) for s in range(1, 6)])
    new = jobs.resume_training(job, enqueue=False)
    assert new.status == JobStatus.QUEUED and new.resumed_from == job and new.resume_checkpoint == str(ckpt)
    assert new.output_dir != job.output_dir and "resumed from step 4" in new.name
    assert list(new.metrics.values_list("step", flat=True)) == [1, 2, 3, 4]
    assert jobs.run_config_for(new).resume_from == str(ckpt)


@pytest.mark.parametrize("status, says", [
    (JobStatus.SUCCEEDED, "Only a failed or cancelled run"),
    (JobStatus.RUNNING, "Only a failed or cancelled run"),
    (JobStatus.CANCELLED, "before its first checkpoint (one is saved every 2 steps)"),
])
def test_a_run_that_cannot_be_resumed_says_why(make_job, status, says):
    with pytest.raises(jobs.ResumeError, match=says.replace("(", r"\(").replace(")", r"\)")):
        jobs.resume_training(make_job(status), enqueue=False)


def test_stopping_a_process_group_stops_its_children_too(tmp_path):
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    proc = processes.start_process([sys.executable, "-c", script], cwd=tmp_path, log_path=tmp_path / "log")
    deadline = time.monotonic() + 10
    children = []
    while not children and time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        children = [c for c in children if c != str(proc.pid)]
        time.sleep(0.05)
    assert children, "the child never started"
    processes.stop_process(proc, grace=5)
    assert proc.returncode == -signal.SIGTERM
    time.sleep(0.2)
    assert subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).stdout == b""


def test_the_file_tail_returns_only_complete_new_lines(tmp_path):
    path = tmp_path / "f.jsonl"
    tail = processes.FileTail(path)
    assert tail.read_lines() == []
    path.write_text("a\nb\npart")
    assert tail.read_lines() == ["a", "b"]
    with open(path, "a") as fh:
        fh.write("ial\n")
    assert tail.read_lines() == ["partial"] and tail.read_lines() == []



# --- waiting for the training process without a busy loop ----------------------------------------

def test_the_exit_watch_wakes_when_the_process_exits_not_when_the_timeout_ends():
    from jobs.processes import ExitWatch

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    watch = ExitWatch(proc)
    start = time.monotonic()
    assert watch.wait(30) is True
    assert time.monotonic() - start < 10 and proc.returncode == 0


def test_the_exit_watch_times_out_on_a_running_process_and_reports_a_later_exit():
    from jobs.processes import ExitWatch

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    watch = ExitWatch(proc)
    try:
        start = time.monotonic()
        assert watch.wait(0.3) is False
        assert time.monotonic() - start >= 0.29
        cpu = time.thread_time()
        assert watch.wait(1.0) is False
        # Asleep in the kernel for the whole second, not polling waitpid every few milliseconds. (This
        # thread's CPU: the process's also counts other threads an earlier test left running, such as a
        # WAL checkpoint, which made this fail at 9 ms in a full run.)
        assert time.thread_time() - cpu < 0.002  # Popen.wait(timeout=1) takes ~4 ms of CPU here
    finally:
        proc.kill()
    assert watch.wait(30) is True and proc.returncode == -signal.SIGKILL
