"""GRPO jobs on a real Celery worker (a subprocess on a filesystem broker) sharing a SQLite file
with this process: the tiny model against the demo environment (``rl.demo_environment.TravelTools``,
each episode in a child process) on the demo's prompt snapshot, 10 steps with metrics and rollouts;
cancel leaves no process behind; resume continues from the checkpoint.

Slow by nature (each run starts Python, torch and TRL and generates every step); kept small.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import rows
from jobs.processes import descendants
from rl import launch, runner
from tests.evaluation.runs_harness import make_prompt_snapshot, prompt_snapshot_dir
from tests.training.jobs_harness import data_dir, shared_db  # noqa: F401  (module fixtures)
from tests.training.jobs_harness import Worker, process_alive, publish, wait_for
from training import jobs
from training.models import JobStatus, TrainingJob
from training.runner import latest_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("worker")]

STEP_DELAY = "1.0"
RUN_TIMEOUT = 600  # ten GRPO steps generate 20 episodes each way on a busy 2-core machine
SMALL = {"num_generations": 2, "prompts_per_step": 1, "max_completion_length": 24, "max_tool_calling_iterations": 2}
EPISODE_KEYS = ("episodes/tool_calls_mean", "episodes/iteration_limit_share", "episodes/tool_error_share")
TRL_KEYS = ("reward", "reward_std", "rewards/format_reward/mean", "rewards/format_reward/std",
            "rewards/environment/mean", "kl", "completions/mean_length", "completions/clipped_ratio",
            "tools/call_frequency", "tools/failure_frequency", "loss", "learning_rate")


@pytest.fixture(scope="module")
def snapshot(shared_db, tiny_model_dir):
    from annotate.models import Project

    project = Project.objects.create(name="GRPO tests", slug="grpo-tests")
    return make_prompt_snapshot(project, prompt_snapshot_dir(tiny_model_dir))


@pytest.fixture(scope="module")
def worker(data_dir, shared_db):
    # A second after each step, so "cancel it mid-run" does not race a run that already ended.
    w = Worker(data_dir, shared_db, STUDIO_TRAIN_STEP_DELAY=STEP_DELAY)
    yield w
    w.stop()


def start(snapshot, model_dir, data_dir, **settings) -> TrainingJob:
    from training.tasks import train_job

    job = launch.launch_grpo(project=snapshot.project, snapshot=snapshot, base_model=str(model_dir),
                             grpo_settings=runner.GRPOSettings(**{**SMALL, **settings}), enqueue=False)
    publish(train_job, job.pk, data_dir=data_dir)
    return job


def wait_status(job, status, worker, timeout=RUN_TIMEOUT):
    def diagnose():
        job.refresh_from_db()
        log = Path(job.output_dir, "train.log")
        return (f"\njob: {job.status} {job.message!r} {job.error!r}" + worker.tail()
                + ("\n--- train.log ---\n" + log.read_text()[-3000:] if log.exists() else ""))

    wait_for(lambda: (job.refresh_from_db() or job.is_finished), timeout, f"job {job.pk} to be {status}",
             on_timeout=diagnose)
    assert job.status == status, diagnose()


def events_of(job) -> list[dict]:
    return [json.loads(x) for x in Path(job.output_dir, runner.METRICS_FILE).read_text().splitlines()]


def test_a_grpo_job_trains_ten_steps_against_the_demo_environment_and_writes_rollouts(
        snapshot, tiny_model_dir, worker, data_dir):
    job = start(snapshot, tiny_model_dir, data_dir, max_steps=10, rollout_every=5, save_steps=10)
    wait_status(job, JobStatus.SUCCEEDED, worker)
    assert job.summary["results"]["global_step"] == 10 and job.current_step == 10

    # TRL's GRPO figures and ours reach the database through the worker's tail, '/' in names and all.
    points = list(job.metrics.order_by("step"))
    steps = [p for p in points if "loss" in p.values]
    assert [p.step for p in steps] == list(range(1, 11))
    logged = steps[-1].values
    for key in TRL_KEYS + EPISODE_KEYS:
        assert key in logged, key
    assert 0 <= logged["episodes/iteration_limit_share"] <= 1

    # Every 5th step's episodes, as the rollouts helper reads them.
    written = [e for e in events_of(job) if e["event"] == "rollouts"]
    assert [(e["step"], e["path"], e["count"]) for e in written] == [
        (5, "rollouts/step-000005.jsonl", 2), (10, "rollouts/step-000010.jsonl", 2)]
    from annotate.trajectory import Trajectory

    for event in written:
        lines = [json.loads(x) for x in Path(job.output_dir, event["path"]).read_text().splitlines()]
        assert len(lines) == event["count"]
        for line in lines:
            assert line["step"] == event["step"] and line["prompt_id"].startswith("t")
            assert set(line["rewards"]) == set(runner.DEFAULT_REWARDS)
            weighted = sum(runner.DEFAULT_REWARDS[k] * v for k, v in line["rewards"].items())
            assert line["total_reward"] == pytest.approx(weighted, abs=1e-5)
            assert isinstance(line["hit_iteration_limit"], bool) and isinstance(line["tool_errors"], int)
            traj = Trajectory.from_dict(line["trajectory"])
            assert traj.meta.source == "rollout" and traj.turns and {t["name"] for t in traj.tools} >= {"get_weather"}

    card = Path(job.summary["final_dir"], "README.md").read_text()
    assert "python: rl.demo_environment.TravelTools" in card
    for name in runner.DEFAULT_REWARDS:
        assert f"| {name} | {runner.DEFAULT_REWARDS[name]} | `" in card


def test_a_cancelled_grpo_job_leaves_no_process_and_resumes_from_its_checkpoint(
        snapshot, tiny_model_dir, worker, data_dir):
    job = start(snapshot, tiny_model_dir, data_dir, max_steps=10, save_steps=2)
    wait_for(lambda: latest_checkpoint(job.output_dir) is not None or (job.refresh_from_db() or job.is_finished),
             RUN_TIMEOUT, "the first checkpoint", on_timeout=worker.tail)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING, job.error
    pid = job.worker_pid
    family = [pid, *descendants(pid)]  # the runner and its episodes' environment processes
    assert rows.request_cancel(job) == "cancelling"
    wait_status(job, JobStatus.CANCELLED, worker, timeout=90)
    wait_for(lambda: not any(process_alive(p) for p in family), 20, "every process of the run to end")
    assert job.current_step < 10

    checkpoint = latest_checkpoint(job.output_dir)
    resumed = jobs.resume_training(job, enqueue=False)
    from training.tasks import train_job

    publish(train_job, resumed.pk, data_dir=data_dir)
    wait_status(resumed, JobStatus.SUCCEEDED, worker)
    begin = next(e for e in events_of(resumed) if e["event"] == "begin")
    assert begin["step"] == int(checkpoint.name.split("-")[1]) >= 2
    assert resumed.kind == "grpo" and resumed.summary["results"]["global_step"] == 10
    assert f"Resumed from checkpoint: `{checkpoint}`" in Path(resumed.summary["final_dir"], "README.md").read_text()
