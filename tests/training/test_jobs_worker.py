"""Training jobs on a real Celery worker (a subprocess on a filesystem broker, or on Redis) sharing
a SQLite file with this process: cancel a running job, kill -9 its training process, kill its
worker (the sweep notices, the run resumes from its checkpoint), and ``manage.py train``.

Slow by nature (each run starts Python, torch and TRL); kept to a few short runs of the tiny model.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.training.jobs_harness import data_dir, shared_db  # noqa: F401  (module fixtures)
from tests.training.jobs_harness import (QUICK, Worker, export_snapshot_files, free_port, make_snapshot,
                                         process_alive, publish, wait_for)
from jobs import rows
from training import jobs, runner
from training.models import JobStatus, TrainingJob

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("worker")]

RUN_TIMEOUT = 300  # a cold start on a busy 2-core machine is slow; a healthy run takes well under a minute
STEP_DELAY = "0.4"  # seconds after each step, so "kill it mid-run" does not race a run that already ended


@pytest.fixture(scope="module")
def sft_snapshot(shared_db, tiny_model_dir, tmp_path_factory):
    from annotate.models import Project

    project = Project.objects.create(name="Worker tests", slug="worker-tests")
    out = export_snapshot_files("sft", tmp_path_factory.mktemp("snapshots") / "sft", tiny_model_dir)
    return make_snapshot(project, "sft", out, name="demo sft")


@pytest.fixture(scope="module")
def worker(data_dir, shared_db):
    w = Worker(data_dir, shared_db, STUDIO_TRAIN_STEP_DELAY=STEP_DELAY)
    yield w
    w.stop()


def launch(snapshot, model_dir, **settings) -> TrainingJob:
    return jobs.launch_training(project=snapshot.project, snapshot=snapshot, kind="sft", base_model=str(model_dir),
                                train_settings=runner.TrainSettings(**{**QUICK, **settings}), enqueue=False)


def status_of(job) -> str:
    job.refresh_from_db()
    return job.status


def wait_status(job, status, worker=None, timeout=RUN_TIMEOUT):
    def diagnose():
        job.refresh_from_db()
        log = Path(job.output_dir, "train.log")
        return (f"\njob: {job.status} {job.message!r} {job.error!r}" + (worker.tail() if worker else "")
                + ("\n--- train.log ---\n" + log.read_text()[-3000:] if log.exists() else ""))

    wait_for(lambda: status_of(job) == status or job.is_finished, timeout, f"job {job.pk} to be {status}",
             on_timeout=diagnose)
    assert job.status == status, diagnose()


def wait_training(job, worker, min_points=1):
    """Until the run has logged ``min_points`` steps (it is then surely inside trainer.train)."""
    wait_for(lambda: job.metrics.count() >= min_points or status_of(job) not in (JobStatus.QUEUED, JobStatus.RUNNING),
             RUN_TIMEOUT, f"job {job.pk} to log a step", on_timeout=worker.tail)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING, f"{job.status}: {job.error}"


def test_cancelling_a_running_job_stops_its_process_group(sft_snapshot, tiny_model_dir, worker, data_dir):
    job = launch(sft_snapshot, tiny_model_dir, max_steps=500)
    publish(jobs_task(), job.pk, data_dir=data_dir)
    wait_training(job, worker)
    pid = job.worker_pid
    assert pid and process_alive(pid)
    assert rows.request_cancel(job) == "cancelling"
    wait_status(job, JobStatus.CANCELLED, worker, timeout=60)
    assert not process_alive(pid)
    assert job.message.startswith("Cancelled at step") and job.current_step < 500 and job.finished_at


def test_a_training_process_killed_with_sigkill_fails_its_job_with_the_reason(sft_snapshot, tiny_model_dir, worker,
                                                                               data_dir):
    job = launch(sft_snapshot, tiny_model_dir, max_steps=500)
    publish(jobs_task(), job.pk, data_dir=data_dir)
    wait_training(job, worker)
    os.kill(job.worker_pid, signal.SIGKILL)
    wait_status(job, JobStatus.FAILED, worker, timeout=60)
    assert "killed by SIGKILL" in job.error and job.message.startswith("Failed at step")


def test_a_dead_worker_is_noticed_by_the_sweep_and_the_run_resumes_from_its_checkpoint(
        sft_snapshot, tiny_model_dir, worker, data_dir, shared_db, settings):
    from jobs.tasks import sweep_stale_jobs

    doomed = Worker(data_dir / "doomed", shared_db, STUDIO_TRAIN_STEP_DELAY=STEP_DELAY)  # its own broker folders
    job = launch(sft_snapshot, tiny_model_dir, max_steps=8, save_steps=2)
    publish(jobs_task(), job.pk, data_dir=data_dir / "doomed")
    try:
        wait_for(lambda: runner.latest_checkpoint(job.output_dir), RUN_TIMEOUT, "the first checkpoint",
                 on_timeout=doomed.tail)
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING
        train_pid = job.worker_pid
        doomed.kill(signal.SIGKILL)  # the worker and its pool child, as a crashed machine would
    finally:
        doomed.stop()
    # The training process notices its worker is gone and stops by itself: nothing trains unsupervised.
    wait_for(lambda: not process_alive(train_pid), 20, "the orphaned training process to stop")
    checkpoint = runner.latest_checkpoint(job.output_dir)
    assert status_of(job) == JobStatus.RUNNING  # nobody has said otherwise yet

    settings.JOB_HEARTBEAT_TIMEOUT = 3
    wait_for(lambda: sweep_stale_jobs.run() == [job.pk], 30, "the sweep to fail the silent job", interval=0.5)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "No heartbeat for" in job.error

    resumed = jobs.resume_training(job, enqueue=False)
    publish(jobs_task(), resumed.pk, data_dir=data_dir)
    wait_status(resumed, JobStatus.SUCCEEDED, worker)
    step = runner.checkpoint_step(checkpoint)
    events = [json.loads(x) for x in Path(resumed.output_dir, runner.METRICS_FILE).read_text().splitlines()]
    begin = next(e for e in events if e["event"] == "begin")
    assert begin["step"] == step >= 2  # training continued from the checkpoint, not from step 0
    assert resumed.summary["results"]["global_step"] == 8 and resumed.current_step == 8
    card = Path(resumed.summary["final_dir"], "README.md").read_text()
    assert f"Resumed from checkpoint: `{checkpoint}`" in card and sft_snapshot.content_hash in card


def test_manage_py_train_runs_the_same_job_path_and_prints_progress(sft_snapshot, tiny_model_dir, tmp_path):
    # A LoRA run, so the peft path (an adapter, not a full model) is exercised end to end too.
    from django.core.management import call_command

    from training.export import directory_digest

    config = tmp_path / "run.json"
    config.write_text(json.dumps({"max_steps": 2, "batch_size": 1, "save_steps": 100, "method": "lora",
                                  "lora_r": 4, "lora_alpha": 8, "lora_target_modules": "q_proj,v_proj"}))
    snapshot_files = directory_digest(Path(sft_snapshot.out_dir))
    out = io.StringIO()
    call_command("train", "--snapshot", str(sft_snapshot.pk), "--kind", "sft", "--model", str(tiny_model_dir),
                 "--config", str(config), "--name", "from the CLI", stdout=out)
    text = out.getvalue()
    job = TrainingJob.objects.get(name="from the CLI")
    assert job.status == JobStatus.SUCCEEDED and job.metrics.filter(values__has_key="loss").count() == 2
    assert "step 1/2 · loss" in text and "step 2/2 · loss" in text and f"Run #{job.pk} succeeded" in text
    final = Path(job.summary["final_dir"])
    assert json.loads((final / "adapter_config.json").read_text())["r"] == 4
    assert not (final / "model.safetensors").exists()  # an adapter, not a copy of the base model
    card = (final / "README.md").read_text()
    assert sft_snapshot.content_hash in card and "demo sft" in card and "SFT LoRA adapter" in card
    assert directory_digest(Path(sft_snapshot.out_dir)) == snapshot_files  # training never writes into a snapshot


@pytest.mark.redis
def test_a_job_runs_through_a_redis_broker(sft_snapshot, tiny_model_dir, data_dir, shared_db, tmp_path):
    server = shutil.which("redis-server")
    if not server:
        pytest.skip("Debian's redis-server is not installed (apt-get install redis-server); `make test` installs it")
    port = free_port()
    redis = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _redis_up(port), 20, "redis-server to accept connections")
        w = Worker(data_dir / "redis", shared_db, CELERY_BROKER_URL=url)
        try:
            job = launch(sft_snapshot, tiny_model_dir, max_steps=2)
            publish(jobs_task(), job.pk, broker_url=url)
            wait_status(job, JobStatus.SUCCEEDED, w)
            assert job.metrics.filter(values__has_key="loss").count() == 2 and job.worker_host
        finally:
            w.stop()
    finally:
        redis.terminate()
        redis.wait(timeout=10)


def _redis_up(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def jobs_task():
    from training.tasks import train_job

    return train_job
