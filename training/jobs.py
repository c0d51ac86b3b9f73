"""Training jobs: ``launch_training`` (validate, create, enqueue after commit), ``resume_training``
and ``run_training_job`` (what the Celery task and ``manage.py train`` run).

The job mechanics every kind of job shares (``claim``, ``beat``, ``finish``, ``request_cancel``,
the sweep, process groups, the supervision loop) live in the ``jobs`` package. ``RunMonitor`` says
what a training run's events mean for its row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.db import transaction

from annotate.permissions import author_of
from core.errors import InputError
from jobs import queue
from jobs.processes import HOST, ExitWatch, FileTail, describe_exit, last_lines, start_process, stop_process
from jobs.rows import claim, fail_before_start
from jobs.runner_io import WORKER_PID_ENV, events_file_of
from jobs.supervisor import Monitor, run_supervised
from training import distributed, job_kinds, runner
from training.models import JobStatus, MetricPoint, Snapshot, TrainingDefaults, TrainingJob, trust_remote_code_for
from training.roots import PathError, confined_model, model_error
from training.rollouts.store import store_rollouts


class LaunchError(ValueError):
    """A launch that cannot go ahead; ``errors`` maps form fields to messages."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def runs_root() -> Path:
    return Path(getattr(settings, "TRAINING_RUNS_DIR", settings.DATA_DIR / "runs"))


def snapshot_error(snapshot: Snapshot, kind: str) -> str | None:
    """Why a run of ``kind`` cannot train on ``snapshot``, or None."""
    wanted_kind = "prompt" if kind == "grpo" else kind
    if snapshot.kind != wanted_kind:
        wanted = {"sft": "an SFT snapshot (conversations)", "dpo": "a DPO snapshot (chosen / rejected pairs)",
                  "grpo": "a prompt snapshot"}[kind]
        return f"{snapshot} is a {snapshot.get_kind_display()} snapshot; {kind.upper()} needs {wanted}."
    if snapshot.status != JobStatus.SUCCEEDED:
        return f"{snapshot} is {snapshot.get_status_display().lower()}; train on a finished snapshot."
    if snapshot.blocked:
        return (f"{snapshot} has {snapshot.audit_errors} audit error(s); a lead must review and override them "
                f"before it can be trained on.")
    if not (Path(snapshot.out_dir) / "hf").is_dir():
        return f"The files of {snapshot} are missing ({snapshot.out_dir}/hf)."
    return None


def launch_errors(project, snapshot: Snapshot | None, kind: str, base_model: str,
                  train_settings: runner.TrainSettings) -> dict[str, str]:
    """Every problem with a launch, by form field (empty: it can run)."""
    errors: dict[str, str] = {}
    if kind not in runner.KINDS:
        errors["kind"] = f"Choose one of: {', '.join(runner.KINDS)}."
        return errors
    if snapshot is None:
        errors["snapshot"] = "Choose a finished snapshot."
    elif snapshot.project_id != project.pk:
        errors["snapshot"] = "That snapshot belongs to another project."
    elif problem := snapshot_error(snapshot, kind):
        errors["snapshot"] = problem
    if problem := model_error(base_model):
        errors["base_model"] = problem
    errors.update(runner.settings_errors(kind, train_settings))
    return errors


def effective_settings(snapshot: Snapshot, s: runner.TrainSettings) -> runner.TrainSettings:
    """``s`` with "the snapshot's" choices filled in (max_length 0 → the snapshot's max length)."""
    if s.max_length:
        return s
    max_length = (snapshot.render_settings or {}).get("max_length") or runner.DEFAULT_MAX_LENGTH
    return runner.TrainSettings(**{**s.to_dict(), "max_length": int(max_length)})


def default_run_name(kind: str, snapshot: Snapshot, base_model: str) -> str:
    return f"{kind.upper()} · {Path(base_model.rstrip('/')).name} · {snapshot}"[:200]


def launch_training(*, project, snapshot: Snapshot | None, kind: str, base_model: str,
                    train_settings: runner.TrainSettings, user=None, name: str = "",
                    enqueue: bool = True) -> TrainingJob:
    """Validate, create a queued job and (after commit) send it to the ``train`` queue.

    The caller checks the role (``require_role(user, project, "lead")``); ``user=None`` is the CLI.
    """
    errors = launch_errors(project, snapshot, kind, base_model, train_settings)
    if errors:
        raise LaunchError(errors)
    train_settings = effective_settings(snapshot, train_settings)
    base_model = confined_model(base_model)  # a folder as its real path: workers run elsewhere (cwd)
    return create_job(project, snapshot, kind, base_model, name.strip() or default_run_name(kind, snapshot, base_model),
                      train_settings.to_dict(), train_settings.max_steps, user=user, enqueue=enqueue)


def create_job(project, snapshot: Snapshot, kind: str, base_model: str, name: str, config: dict, total_steps: int,
               *, user, enqueue: bool = True) -> TrainingJob:
    """The job row of a checked launch (any kind: SFT, DPO, GRPO), its run folder, and its message
    on the train queue once the row is committed."""
    with transaction.atomic():
        job = TrainingJob.objects.create(
            project=project, snapshot=snapshot, kind=kind, base_model=base_model, name=name, config=config,
            total_steps=total_steps, created_by=author_of(user), message="Waiting for a worker on the train queue")
        job.output_dir = str(runs_root() / f"{job.pk}-{job.created_at:%Y%m%d-%H%M%S}")
        job.save(update_fields=["output_dir"])
        if enqueue:
            enqueue_training(job)
    return job


def enqueue_training(job: TrainingJob) -> None:
    transaction.on_commit(lambda: queue.send(TrainingJob, job.pk))  # training.tasks.train_job


def train_queue_of(job: TrainingJob) -> str:
    """The queue of ``job``: ``train``, or ``train-<N>gpu`` when it asks for N GPUs a node
    (``training.distributed.train_queue``); ``jobs.queue`` sends and looks for its message there."""
    return distributed.train_queue(job.config)


def remember_launch(project, kind: str, values: dict, user=None) -> None:
    """Keep the form's values as the project's starting point for its next ``kind`` launch."""
    TrainingDefaults.objects.update_or_create(project=project, kind=kind, defaults={
        "values": values, "updated_by": author_of(user)})


def remembered_launch(project, kind: str) -> dict:
    row = TrainingDefaults.objects.filter(project=project, kind=kind).first()
    return dict(row.values) if row else {}


class ResumeError(ValueError):
    pass


def resume_point(job: TrainingJob) -> Path | None:
    """The newest complete checkpoint of ``job``, else the one it was itself resumed from."""
    found = runner.latest_checkpoint(job.output_dir) if job.output_dir else None
    if found is None and job.resume_checkpoint and Path(job.resume_checkpoint).is_dir():
        return Path(job.resume_checkpoint)
    return found


def resume_training(job: TrainingJob, user=None, *, enqueue: bool = True) -> TrainingJob:
    """A new queued job that continues ``job`` (failed or cancelled) from its last checkpoint.

    The new run writes its own folder; the old run's metric points up to the checkpoint are
    copied so the new run's charts show the whole curve.
    """
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ResumeError(f"Only a failed or cancelled run can be resumed; run {job.pk} is "
                          f"{job.get_status_display().lower()}.")
    checkpoint = resume_point(job)
    if checkpoint is None:
        every = job.config.get("save_steps", "?")
        raise ResumeError(f"Run {job.pk} stopped before its first checkpoint (one is saved every {every} steps); "
                          f"launch it again instead.")
    step = runner.checkpoint_step(checkpoint)
    base = job.name.split(" (resumed")[0]
    with transaction.atomic():
        new = TrainingJob.objects.create(
            project=job.project, snapshot=job.snapshot, kind=job.kind, base_model=job.base_model, config=job.config,
            name=f"{base} (resumed from step {step})"[:200], resumed_from=job, resume_checkpoint=str(checkpoint),
            total_steps=job.total_steps, current_step=step,
            created_by=author_of(user),
            message=f"Waiting for a worker; will continue from step {step}")
        new.output_dir = str(runs_root() / f"{new.pk}-{new.created_at:%Y%m%d-%H%M%S}")
        new.save(update_fields=["output_dir"])
        MetricPoint.objects.bulk_create([
            MetricPoint(job=new, step=p.step, epoch=p.epoch, values=p.values, created_at=p.created_at)
            for p in job.metrics.filter(step__lte=step)])
        if enqueue:
            enqueue_training(new)
    return new


def app_commit() -> str:
    """The app's git commit (``+dirty`` with uncommitted changes), or "unknown" outside a checkout.

    Asked at each launch, not cached: the runner subprocess runs the code on disk now, which may
    be newer than the worker's own.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=settings.BASE_DIR,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def snapshot_info(snapshot: Snapshot) -> dict:
    """What the model card says about the training data (the snapshot row, plus its snapshot.json)."""
    info = {"id": snapshot.pk, "name": str(snapshot), "kind": snapshot.kind, "content_hash": snapshot.content_hash,
            "render_settings": snapshot.render_settings, "item_count": snapshot.item_count,
            "sample_count": snapshot.sample_count, "template": (snapshot.render_settings or {}).get("template", "")}
    try:
        meta = json.loads((Path(snapshot.out_dir) / "snapshot.json").read_text())
    except (OSError, ValueError):
        return info
    info["render_settings"] = meta.get("settings", info["render_settings"])
    info["template"] = (meta.get("settings") or {}).get("template", info["template"])
    info["splits"] = meta.get("splits", {})
    info["content_hash"] = info["content_hash"] or meta.get("content_hash", "")
    return info


def run_config_for(job: TrainingJob) -> runner.RunConfig:
    return _run_config(job.snapshot, job.kind, job.base_model, runner.TrainSettings.from_dict(job.config, job.kind),
                       job.output_dir, job_id=job.pk, resume_from=job.resume_checkpoint)


def preview_run_config(snapshot: Snapshot, kind: str, base_model: str,
                       train_settings: runner.TrainSettings) -> runner.RunConfig:
    """The job file a launch would write, before the job exists (its folder named by placeholders)."""
    return _run_config(snapshot, kind, base_model.strip(), effective_settings(snapshot, train_settings),
                       str(runs_root() / "<job id>-<created>"))


def _run_config(snapshot: Snapshot, kind: str, model: str, train_settings: runner.TrainSettings, output_dir: str,
                **job) -> runner.RunConfig:
    template = Path(snapshot.out_dir) / "chat_template.jinja"
    return runner.RunConfig(
        kind=kind, model=model, dataset_dir=str(Path(snapshot.out_dir) / "hf"), output_dir=output_dir,
        settings=train_settings, snapshot=snapshot_info(snapshot),
        chat_template_file=str(template) if template.exists() else "", app_commit=app_commit(),
        trust_remote_code=trust_remote_code_for(model), **job)


def job_file(job: TrainingJob) -> Path:
    return Path(job.output_dir) / "job.json"


@dataclass
class LaunchPlan:
    """What the worker runs for a job: the command, and the accelerate config file (several processes on CUDA)."""

    command: list[str]
    accelerate_config: dict | None

    @property
    def command_text(self) -> str:
        return distributed.command_text(self.command)


def launch_plan(cfg: runner.RunConfig, python: str | None = None, machine_rank: int = 0) -> LaunchPlan:
    """One process: ``python -m training.runner JOB``; several: torchrun or ``accelerate launch``
    with the generated config (``training.distributed``). The preview shows the same."""
    s = cfg.settings.to_dict()
    command = distributed.launch_command(s, cfg.run_dir / "job.json", config_file=cfg.run_dir / distributed.CONFIG_FILE,
                                         python=python or sys.executable, machine_rank=machine_rank)
    uses_config = distributed.is_distributed(s) and s["device"] != "cpu"
    return LaunchPlan(command, distributed.accelerate_config(s) if uses_config else None)


@dataclass
class Progress:
    """What the monitor learned from the run's events so far."""

    step: int = 0
    max_steps: int = 0
    message: str = ""
    results: dict | None = None
    last_checkpoint: str = ""


class RunMonitor(Monitor):
    """Tails ``metrics.jsonl`` into ``MetricPoint`` rows and the job row (heartbeat, progress, log tail)."""

    model = TrainingJob
    process = "training process"
    noun = "job"
    log_name = "train.log"

    def __init__(self, job: TrainingJob, echo: Callable[[str], None] | None = None):
        super().__init__(job, echo)
        self.job = job
        self.tail = FileTail(self.run_dir / runner.METRICS_FILE)
        self.progress = Progress(step=job.current_step, max_steps=job.total_steps)
        self.summary = dict(job.summary)

    def ingest(self) -> int:
        """Read the run's new events; return how many there were."""
        points = []
        count = 0
        for line in self.tail.read_lines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            count += 1
            kind = ev.get("event")
            if kind == "step":
                self.progress.step, self.progress.max_steps = int(ev["step"]), int(ev.get("max_steps") or 0)
            elif kind == "begin":
                self.progress.max_steps = int(ev.get("max_steps") or 0)
                # The ETA's pace counts from here: loading the model is not a training step.
                self.summary["first_step"] = [int(ev.get("step", 0)), ev["time"]]
                self.progress.message = "Training"
            elif kind == "log":
                points.append(MetricPoint(job_id=self.job.pk, step=int(ev["step"]), epoch=ev.get("epoch"),
                                          values=ev.get("values", {})))
                self._echo_log(ev)
            elif kind == "checkpoint":
                self.progress.last_checkpoint = ev.get("path", "")
                self.summary["last_checkpoint"] = [int(ev["step"]), self.progress.last_checkpoint]
            elif kind == "status":
                self.progress.message = ev.get("message", "")[:500]
                if self.echo:
                    self.echo(self.progress.message)
            elif kind == "end":
                self.ended, self.progress.results = True, ev.get("results", {})
            elif kind == "error":
                self.error = ev.get("message", "")
            elif kind == "rollouts":  # a GRPO run's sample of episodes: into the project's queue
                self._store_rollouts(ev)
        if points:
            MetricPoint.objects.bulk_create(points)
        return count

    def _store_rollouts(self, ev: dict) -> None:
        """Store the episodes; a file that cannot be stored is said on the row (summary), not dropped."""
        try:
            stored = store_rollouts(self.job, self.run_dir, ev)
        except InputError as exc:
            problems = self.summary.setdefault("rollout_problems", [])
            problems[:] = [*problems, f"step {ev.get('step')}: {exc.message}"][-20:]
            if self.echo:
                self.echo(f"Rollouts not stored: {exc.message}")
            return
        self.summary["rollouts_stored"] = self.summary.get("rollouts_stored", 0) + stored
        if self.echo and stored:
            self.echo(f"Stored {stored} rollout(s) of step {ev.get('step')} in the queue")

    def _echo_log(self, ev: dict) -> None:
        if not self.echo:
            return
        v = ev.get("values", {})
        parts = [f"step {ev['step']}/{self.progress.max_steps or '?'}"]
        for key, label, fmt in (("loss", "loss", ".4f"), ("eval_loss", "eval loss", ".4f"),
                                ("learning_rate", "lr", ".2e"), ("grad_norm", "grad norm", ".3f"),
                                ("tokens_per_second", "tokens/s", ".0f"), ("rewards/margins", "margin", ".3f"),
                                ("train_loss", "mean train loss", ".4f")):
            if key in v:
                parts.append(f"{label} {v[key]:{fmt}}")
        if len(parts) > 1:
            self.echo(" · ".join(parts))

    def fields(self) -> dict:
        p = self.progress
        out = {"current_step": p.step, "summary": self.summary, "log_tail": last_lines(self.log_path)}
        if p.max_steps:
            out["total_steps"] = p.max_steps
            out["progress"] = round(min(1.0, p.step / p.max_steps), 4)
        if p.message:
            out["message"] = p.message
        return out

    def success_fields(self) -> dict:
        self.summary["results"] = self.progress.results or {}
        self.summary["final_dir"] = str(self.run_dir / runner.FINAL_DIR)
        return {"summary": self.summary, "progress": 1.0, "message": "Finished"}

    def _rank_error(self, rank: int) -> str:
        """The error another rank wrote into its own events file, if any."""
        said = ""
        for line in FileTail(self.run_dir / events_file_of(runner.METRICS_FILE, rank)).read_lines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "error":
                said = event.get("message", "")
        return said

    def cancelled_message(self) -> str:
        return f"Cancelled at step {self.progress.step}"

    def failed_message(self) -> str:
        return f"Failed at step {self.progress.step}"

    def failure_error(self, returncode: int | None) -> str:
        if (returncode or 0) > 0 and (cause := distributed.root_cause(last_lines(self.log_path, 200))):
            rank, code = cause  # several processes: the rank that ended the run, in its own words if it said any
            said = self.error if rank == 0 else self._rank_error(rank)
            return (distributed.dead_rank(rank, code, said) + " The last lines of its log:\n"
                    + last_lines(self.log_path, 15))
        error = super().failure_error(returncode)
        if self.error and (returncode or 0) < 0:  # it said what went wrong, then a signal ended it
            error = describe_exit(returncode, self.process) + " " + error
        return error


def run_training_job(job_id: int, *, echo: Callable[[str], None] | None = None, poll: float = 1.0) -> str:
    """Claim ``job_id`` and run it to the end in a supervised subprocess; return the final status.

    Every ``poll`` seconds: ingest new events; every ``HEARTBEAT_EVERY`` seconds: heartbeat with
    progress and honour a cancel. Returns "not claimed" when the row was not queued.
    """
    if not claim(TrainingJob, job_id, worker_host=HOST, message="Starting the training process"):
        return "not claimed"
    job = TrainingJob.objects.select_related("snapshot").get(pk=job_id)
    try:
        # Checked again in the worker: the row may predate the roots, or the roots may have changed.
        if problem := model_error(job.base_model):
            raise PathError(problem, "base_model")
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        if extra := job_kinds.EXTRA_KINDS.get(job.kind):  # a kind a later app runs (rl: grpo)
            cfg = extra.run_config(job)
            command = extra.command(cfg, cfg.write(job_file(job)))
    except Exception as exc:  # a broken row or an unwritable data dir: say so on the row
        return fail_before_start(TrainingJob, job_id, exc, "Failed before training started")
    if extra:
        return run_supervised(RunMonitor(job, echo), command, poll=poll)
    try:
        cfg = run_config_for(job)
        cfg.write(job_file(job))
        plan = launch_plan(cfg)
        if plan.accelerate_config is not None:
            (cfg.run_dir / distributed.CONFIG_FILE).write_text(distributed.config_text(plan.accelerate_config))
    except Exception as exc:  # a broken row or an unwritable data dir: say so on the row
        return fail_before_start(TrainingJob, job_id, exc, "Failed before training started")
    for machine_rank in range(1, cfg.settings.nodes):  # the other nodes join at the first node's address
        queue.send_task(TrainingJob, "training.tasks.train_node", (job_id, machine_rank), train_queue_of(job))
    return run_supervised(RunMonitor(job, echo), plan.command, poll=poll)


def run_training_node(job_id: int, machine_rank: int, *, poll: float = 2.0) -> str:
    """Machine rank ``machine_rank`` (1 and up) of a running multi-node job: start the same launch
    command for this node (its log: ``train.nodeK.log`` in the run folder, which the nodes share)
    and stop it when the job is no longer running or is cancelled. The first node's worker owns the
    row: it heartbeats, reads rank 0's metrics and gives the verdict; a node that fails takes the
    run down with it, and the first node's launcher reports which rank."""
    job = TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).first()
    if job is None:
        return "not running"
    cfg = runner.RunConfig.load(job_file(job))
    try:  # one process per node and rank, whatever the broker delivers twice (O_EXCL: atomic, NFS too)
        os.close(os.open(cfg.run_dir / f"node{machine_rank}.claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return "not claimed"
    proc = start_process(launch_plan(cfg, machine_rank=machine_rank).command, cwd=Path(settings.BASE_DIR),
                         log_path=cfg.run_dir / f"train.node{machine_rank}.log",
                         env={"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
                              WORKER_PID_ENV: str(os.getpid())})
    exited = ExitWatch(proc)
    try:
        while not exited.wait(poll):
            if not TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, cancel_requested=False).exists():
                stop_process(proc)
                return f"node {machine_rank} stopped: the job is no longer running"
    except BaseException:  # a Celery hard time limit, a worker shutting down
        stop_process(proc)
        raise
    return f"node {machine_rank} exited with code {proc.returncode}"
