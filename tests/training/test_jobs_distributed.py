"""A 2-process DDP SFT run on CPU (gloo) through a real Celery worker: both ranks train, one set of
metrics reaches the database, cancel leaves no process of any rank behind, the run resumes from its
checkpoint, and a rank that dies fails the job with its name.

Slow by nature (each rank starts Python, torch and TRL): two launches and one resume of the tiny model.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from jobs import processes, rows
from tests.training.jobs_harness import data_dir, shared_db  # noqa: F401  (module fixtures)
from tests.training.jobs_harness import (QUICK, Worker, export_snapshot_files, free_port, make_snapshot, process_alive,
                                         publish, wait_for)
from training import jobs, runner
from training.models import JobStatus, TrainingJob

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("worker")]

RUN_TIMEOUT = 300
TWO_RANKS = {"processes_per_node": 2, "nodes": 1, "strategy": "ddp", "device": "cpu"}


@pytest.fixture(scope="module")
def sft_snapshot(shared_db, tiny_model_dir, tmp_path_factory):
    from annotate.models import Project

    project = Project.objects.create(name="DDP tests", slug="ddp-tests")
    out = export_snapshot_files("sft", tmp_path_factory.mktemp("snapshots") / "sft", tiny_model_dir)
    return make_snapshot(project, "sft", out, name="demo sft")


@pytest.fixture(scope="module")
def worker(data_dir, shared_db):
    w = Worker(data_dir, shared_db, STUDIO_TRAIN_STEP_DELAY="0.4")  # "stop it mid-run" must not race its end
    yield w
    w.stop()


def launch(snapshot, model_dir, **settings) -> TrainingJob:
    return jobs.launch_training(project=snapshot.project, snapshot=snapshot, kind="sft", base_model=str(model_dir),
                                train_settings=runner.TrainSettings(**{**QUICK, **TWO_RANKS, **settings}),
                                enqueue=False)


def train_job():
    from training.tasks import train_job as task

    return task


def refreshed(job) -> TrainingJob:
    job.refresh_from_db()
    return job


def wait_status(job, status, worker):
    def diagnose():
        log = Path(job.output_dir, "train.log")
        return (f"\njob: {job.status} {job.message!r} {job.error!r}" + worker.tail()
                + ("\n--- train.log ---\n" + log.read_text()[-4000:] if log.exists() else ""))

    wait_for(lambda: refreshed(job).status == status or job.is_finished, RUN_TIMEOUT, f"job {job.pk} to be {status}",
             on_timeout=diagnose)
    assert job.status == status, diagnose()


def events(run_dir, name: str) -> list[dict]:
    path = Path(run_dir) / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ranks_of(job) -> dict[int, int]:
    """{rank: pid} of the job's training processes, read from their environment."""
    out = {}
    for pid in processes.descendants(job.worker_pid):
        try:
            env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
        except OSError:
            continue
        if "RANK" in env and "training.runner" in Path(f"/proc/{pid}/cmdline").read_text():
            out[int(env["RANK"])] = pid
    return out


def test_two_ranks_train_cancel_stops_every_rank_and_the_run_resumes(sft_snapshot, tiny_model_dir, worker,
                                                                      data_dir):
    job = launch(sft_snapshot, tiny_model_dir, max_steps=8, save_steps=2)
    publish(train_job(), job.pk, data_dir=data_dir)
    wait_for(lambda: runner.latest_checkpoint(job.output_dir) and refreshed(job).current_step >= 3, RUN_TIMEOUT,
             "the first checkpoint", on_timeout=worker.tail)
    assert job.status == JobStatus.RUNNING
    launcher = job.worker_pid
    tree = [launcher, *processes.descendants(launcher)]
    assert sorted(ranks_of(job)) == [0, 1]
    rank1_steps = [e["step"] for e in events(job.output_dir, "metrics.rank1.jsonl") if e["event"] == "step"]
    assert rank1_steps[:2] == [1, 2]  # rank 1 trains too, into its own file

    assert rows.request_cancel(job) == "cancelling"
    wait_status(job, JobStatus.CANCELLED, worker)
    wait_for(lambda: not any(process_alive(pid) for pid in tree), 20, "every rank and the launcher to stop")

    resumed = jobs.resume_training(job, enqueue=False)
    publish(train_job(), resumed.pk, data_dir=data_dir)
    wait_status(resumed, JobStatus.SUCCEEDED, worker)
    step = runner.checkpoint_step(resumed.resume_checkpoint)
    assert 2 <= step < 8 and resumed.current_step == 8
    # One set of metrics: each step's loss once (rank 0's), the old run's up to its checkpoint first.
    losses = [p.step for p in resumed.metrics.order_by("step", "id") if "loss" in p.values]
    assert losses == list(range(1, 9))
    rank1 = events(resumed.output_dir, "metrics.rank1.jsonl")
    assert [e["step"] for e in rank1 if e["event"] == "step"] == list(range(step + 1, 9))
    assert not [e for e in rank1 if e["event"] == "log"]  # nothing of rank 1's reaches the database
    assert (Path(resumed.output_dir) / runner.FINAL_DIR / runner.CARD_FILE).is_file()
    assert resumed.summary["results"]["global_step"] == 8


def test_a_rank_that_dies_fails_the_job_with_its_name_and_stops_the_others(sft_snapshot, tiny_model_dir, worker,
                                                                           data_dir):
    job = launch(sft_snapshot, tiny_model_dir, max_steps=500)
    publish(train_job(), job.pk, data_dir=data_dir)
    wait_for(lambda: refreshed(job).metrics.exists() and len(ranks_of(job)) == 2, RUN_TIMEOUT, "both ranks to train",
             on_timeout=worker.tail)
    tree = [job.worker_pid, *processes.descendants(job.worker_pid)]
    os.kill(ranks_of(job)[1], signal.SIGKILL)
    wait_status(job, JobStatus.FAILED, worker)
    assert job.error.startswith("Rank 1 died: it was killed by SIGKILL"), job.error
    assert job.message.startswith("Failed at step")
    wait_for(lambda: not any(process_alive(pid) for pid in tree), 20, "rank 0 and the launcher to stop")


def test_two_nodes_meet_through_two_workers_and_train_together(sft_snapshot, tiny_model_dir, worker, data_dir,
                                                               shared_db):
    # Two "nodes" on this machine: the first node's worker (``worker``) runs machine rank 0 and sends
    # machine rank 1 to the queue, where a second worker takes it; they meet at 127.0.0.1.
    second = Worker(data_dir, shared_db, STUDIO_TRAIN_STEP_DELAY="0.4")
    try:
        job = launch(sft_snapshot, tiny_model_dir, max_steps=4, processes_per_node=1, nodes=2,
                     main_address="127.0.0.1", main_port=free_port())
        publish(train_job(), job.pk, data_dir=data_dir)
        wait_status(job, JobStatus.SUCCEEDED, worker)
    finally:
        second.stop()
    assert Path(job.output_dir, "train.node1.log").exists()
    rank1 = events(job.output_dir, "metrics.rank1.jsonl")  # the second node's only rank
    assert [e["step"] for e in rank1 if e["event"] == "step"] == [1, 2, 3, 4]
    assert [p.step for p in job.metrics.order_by("step", "id") if "loss" in p.values] == [1, 2, 3, 4]
