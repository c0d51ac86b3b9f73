"""Several processes per run (``training.distributed``): the launch command and accelerate config
for DDP, FSDP and DeepSpeed (checked by accelerate's own parser, never run here), the queue a job
goes to, the launch form's new fields, and stopping every rank of a launch.

A real 2-process DDP run on CPU through a Celery worker: tests/training/test_jobs_distributed.py.
"""

from __future__ import annotations

import html as html_lib
import json
import subprocess
import sys
import time

import pytest
from django.urls import reverse

from jobs import processes
from jobs.runner_io import events_file_of
from tests.training.jobs_harness import process_alive
from tests.training.test_jobs_pages import _client, _field_errors, _form, model_dir, sft_snapshot  # noqa: F401
from training import distributed, runner
from training.models import TrainingJob

MULTI_NODE = {"processes_per_node": 4, "nodes": 2, "main_address": "10.0.0.1", "main_port": 29555, "device": "auto"}


def _accelerate(settings: dict, tmp_path, python: str = "python"):
    """The worker's command and config file, read back by ``accelerate launch``'s own parser and checks."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    config = tmp_path / distributed.CONFIG_FILE
    config.write_text(distributed.config_text(distributed.accelerate_config(settings)))
    cmd = distributed.launch_command(settings, "/runs/7/job.json", config_file=config, python=python)
    assert cmd[:3] == [python, "-m", "accelerate.commands.launch"]
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(cmd[3:]))
    assert (args.module, args.training_script, args.training_script_args) == (True, "training.runner",
                                                                               ["/runs/7/job.json"])
    return args, defaults


def test_one_process_runs_the_runner_as_before():
    assert distributed.launch_command({"processes_per_node": 1, "nodes": 1}, "/r/job.json", config_file="/r/a.json",
                                      python="py") == runner.runner_command("/r/job.json", python="py")


def test_ddp_on_cpu_goes_through_torchrun_on_one_node_and_several():
    one = distributed.launch_command({"processes_per_node": 2, "nodes": 1, "device": "cpu"}, "/r/job.json",
                                     config_file="/r/a.json", python="py")
    assert one == ["py", "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
                   "-m", "training.runner", "/r/job.json"]
    two = distributed.launch_command({**MULTI_NODE, "device": "cpu"}, "/r/job.json", config_file="/r/a.json",
                                     python="py", machine_rank=1)
    assert two[3:13] == ["--nnodes", "2", "--node_rank", "1", "--master_addr", "10.0.0.1", "--master_port", "29555",
                         "--nproc_per_node", "4"]


def test_fsdp_launches_through_accelerate_with_its_sharding_and_offload(tmp_path):
    from accelerate.utils import prepare_multi_gpu_env

    s = {**MULTI_NODE, "strategy": "fsdp", "fsdp_sharding": "shard_grad_op", "offload": "cpu"}
    args, defaults = _accelerate(s, tmp_path)
    assert (args.num_processes, args.num_machines, args.machine_rank) == (8, 2, 0)
    assert (args.main_process_ip, args.main_process_port) == ("10.0.0.1", 29555)
    assert args.use_fsdp and not args.use_deepspeed and args.mixed_precision == "bf16"
    env = prepare_multi_gpu_env(args)  # what each rank's Trainer reads
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_SHARDING_STRATEGY"] == "SHARD_GRAD_OP"
    assert env["FSDP_OFFLOAD_PARAMS"] == "true" and env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"


@pytest.mark.parametrize("strategy, stage, offload, params_to", [
    ("deepspeed_zero2", 2, "none", "none"), ("deepspeed_zero2", 2, "cpu", "none"), ("deepspeed_zero3", 3, "cpu", "cpu")])
def test_deepspeed_launches_through_accelerate_with_its_zero_stage(tmp_path, strategy, stage, offload, params_to):
    from accelerate.utils import prepare_deepspeed_cmd_env

    s = {"processes_per_node": 8, "nodes": 1, "strategy": strategy, "offload": offload, "device": "cuda"}
    args, defaults = _accelerate(s, tmp_path)
    assert args.use_deepspeed and not args.use_fsdp and args.num_processes == 8
    args.deepspeed_fields_from_accelerate_config = list(defaults.deepspeed_config)  # as accelerate launch sets it
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(stage)
    assert env["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] == offload
    assert env["ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE"] == params_to


def test_ddp_on_gpus_launches_through_accelerate_multi_gpu(tmp_path):
    args, _ = _accelerate({"processes_per_node": 2, "nodes": 1, "strategy": "ddp", "device": "cuda"}, tmp_path)
    assert args.multi_gpu and not (args.use_fsdp or args.use_deepspeed) and args.num_processes == 2


def test_jobs_are_routed_by_the_gpus_they_ask_for():
    assert distributed.train_queue({"processes_per_node": 1, "device": "cuda"}) == "train"
    assert distributed.train_queue({"processes_per_node": 8, "device": "auto"}) == "train-8gpu"
    assert distributed.train_queue({"processes_per_node": 2, "device": "cpu"}) == "train"  # no GPU asked for


def test_metrics_come_from_rank_0_only():
    assert events_file_of(runner.METRICS_FILE, 0) == runner.METRICS_FILE
    assert events_file_of(runner.METRICS_FILE, 1) == "metrics.rank1.jsonl"


def test_a_dead_rank_is_named_from_the_launchers_report():
    log = ("torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n"
           "============================================================\ntraining.runner FAILED\n"
           "Failures:\n  <NO_OTHER_FAILURES>\nRoot Cause (first observed failure):\n[0]:\n"
           "  time      : 2026-12-04_10:00:00\n  host      : node-a\n  rank      : 1 (local_rank: 1)\n"
           "  exitcode  : -9 (pid: 4242)\n  error_file: <N/A>\n")
    assert distributed.root_cause(log) == (1, -9)
    assert distributed.dead_rank(1, -9).startswith("Rank 1 died: it was killed by SIGKILL")
    assert distributed.root_cause("Traceback: ValueError") is None


def test_stopping_a_launch_stops_ranks_in_sessions_of_their_own(tmp_path):
    # torchrun starts each rank with start_new_session=True: one killpg of the launcher's group misses them.
    script = ("import subprocess, sys, time\n"
              "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)"
              " for _ in range(2)]\n"
              "print(' '.join(str(k.pid) for k in kids), flush=True)\ntime.sleep(60)\n")
    proc = processes.start_process([sys.executable, "-c", script], cwd=tmp_path, log_path=tmp_path / "log")
    deadline = time.monotonic() + 20
    while not (tmp_path / "log").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    ranks = [int(p) for p in (tmp_path / "log").read_text().split()]
    assert len(processes.process_groups(proc.pid)) == 3
    processes.stop_process(proc, grace=5)
    time.sleep(0.2)
    assert not any(process_alive(pid) for pid in ranks)


# --- the launch form and the API ----------------------------------------------------------------

@pytest.fixture(autouse=True)
def _no_broker(settings, tmp_path, monkeypatch):
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: None)


def _launch(client, user, snap, model_dir, **over):
    return _client(client, user).post(reverse("training:launch-job", args=[snap.project.slug]),
                                      _form(snap, model_dir, **over))


@pytest.mark.django_db
def test_every_problem_with_the_process_fields_is_reported_at_once(client, lead, sft_snapshot, model_dir,
                                                                    monkeypatch):
    monkeypatch.setattr(distributed, "deepspeed_available", lambda: False)
    html = _launch(client, lead, sft_snapshot, model_dir, processes_per_node="0", nodes="2", main_address="",
                   main_port="80", strategy="deepspeed_zero3", offload="disk", device="cuda").content.decode()
    assert "between 1 and 64" in _field_errors(html, "processes_per_node")
    assert "DeepSpeed is not installed" in _field_errors(html, "strategy")
    assert "Select a valid choice" in _field_errors(html, "offload")
    assert "need the first node" in _field_errors(html, "main_address")
    assert "between 1024 and 65535" in _field_errors(html, "main_port")
    assert "Please fix the 5 problems below" in html
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("over, field, says", [
    ({"strategy": "fsdp", "device": "cpu", "processes_per_node": "2"}, "strategy", "need CUDA devices"),
    ({"strategy": "ddp", "offload": "cpu", "processes_per_node": "2"}, "offload", "needs FSDP or DeepSpeed"),
    ({"strategy": "fsdp", "fsdp_sharding": "hybrid_shard", "processes_per_node": "2"}, "fsdp_sharding", "2 nodes"),
    ({"nodes": "2", "main_address": "10.0.0.1:29500"}, "main_address", "without a port"),
])
def test_bad_process_settings_get_field_errors(client, lead, sft_snapshot, model_dir, over, field, says):
    html = _launch(client, lead, sft_snapshot, model_dir, **over).content.decode()
    assert says in _field_errors(html, field), html[:2000]
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_the_preview_shows_the_exact_launch_command_and_accelerate_config(client, lead, sft_snapshot, model_dir):
    page = _launch(client, lead, sft_snapshot, model_dir, action="preview", processes_per_node="4", nodes="1",
                   strategy="fsdp", fsdp_sharding="full_shard", offload="cpu", device="cuda")
    html = html_lib.unescape(page.content.decode())
    assert "python -m accelerate.commands.launch --config_file" in html and "-m training.runner" in html
    assert '"distributed_type": "FSDP"' in html and '"fsdp_offload_params": true' in html
    assert '"num_processes": 4' in html and "train-4gpu" in html
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_the_preview_api_returns_the_command_config_and_queue(client, lead, sft_snapshot, model_dir):
    _client(client, lead)
    body = {"snapshot": sft_snapshot.pk, "kind": "sft", "base_model": str(model_dir),
            "settings": {"processes_per_node": 2, "strategy": "ddp", "device": "cpu", "max_steps": 4}}
    out = client.post(f"/api/projects/{sft_snapshot.project.slug}/training-jobs/preview/",
                      json.dumps(body), content_type="application/json").json()
    assert out["command"].startswith("python -m torch.distributed.run --standalone --nnodes 1 --nproc_per_node 2")
    assert out["accelerate_config"] is None and out["queue"] == "train"  # torchrun on CPU needs no config file


@pytest.mark.django_db
def test_a_multi_gpu_job_is_sent_to_its_gpu_queue(lead, sft_snapshot, model_dir, monkeypatch,
                                                  django_capture_on_commit_callbacks):
    from training.jobs import launch_training

    sent = []
    monkeypatch.setattr("training.tasks.train_job.apply_async", lambda args, queue: sent.append((args, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        job = launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft",
                              base_model=str(model_dir), user=lead,
                              train_settings=runner.TrainSettings(max_steps=4, processes_per_node=8, device="cuda"))
    assert sent == [((job.pk,), "train-8gpu")]


@pytest.mark.django_db
def test_a_multi_gpu_jobs_message_is_looked_for_in_its_own_queue(lead, sft_snapshot, model_dir, tmp_path):
    # Else the sweep would take a job waiting for an 8-GPU worker for a lost message and send it again.
    from jobs import queue
    from studio.celery import app
    from training.jobs import launch_training
    from training.tasks import train_job

    job = launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft", base_model=str(model_dir),
                          train_settings=runner.TrainSettings(max_steps=4, processes_per_node=8, device="cuda"),
                          enqueue=False)
    folders = {"data_folder_in": str(tmp_path / "in"), "data_folder_out": str(tmp_path / "in"),
               "processed_folder": str(tmp_path / "processed"), "store_processed": False}
    (tmp_path / "in").mkdir()
    with app.connection_for_write(url="filesystem://", transport_options=folders) as conn:
        train_job.apply_async(args=[job.pk], queue="train-8gpu", connection=conn)
    assert [p.name.split(".")[-2] for p in (tmp_path / "in").iterdir()] == ["train-8gpu"]

    def look():
        return queue.message_waiting(TrainingJob, job.pk, connection=app.connection_for_read(
            url="filesystem://", transport_options=folders))

    assert look() is True
    for f in (tmp_path / "in").iterdir():
        f.unlink()
    assert look() is False
