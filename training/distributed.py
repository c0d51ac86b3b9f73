"""Training on several processes: processes per node × nodes, and how the model is split among them.

Pure (no Django, nothing heavy): the launch form validates with it, the preview shows what it
builds, and the worker runs what it builds.

- ``distributed_errors``: the launch form's problems with the topology fields, by field.
- ``gpus_asked`` / ``train_queue``: the GPUs a job asks for per node, and the queue that routes it
  (``train`` up to one GPU, ``train-<N>gpu`` for N; a worker that owns N GPUs consumes that queue
  with concurrency 1, so it runs one such job at a time on all of them).
- ``accelerate_config``: the accelerate config file (JSON, which ``accelerate launch --config_file``
  reads like its YAML) for DDP, FSDP (sharding, CPU offload) or DeepSpeed ZeRO-2/3.
- ``launch_command``: the command the worker runs. One process: ``python -m training.runner
  JOB``. Several on CUDA: ``accelerate launch --config_file … -m training.runner JOB``. Several on
  CPU (DDP over gloo; accelerate launches one CPU process only, without MPI): ``torchrun``.

Every rank runs the same runner; only rank 0 writes the run's events (``jobs.runner_io``).

>>> s = {"processes_per_node": 2, "nodes": 1, "strategy": "ddp", "device": "cpu"}
>>> launch_command(s, "/runs/1/job.json", config_file="/runs/1/accelerate.json", python="python")[:7]
['python', '-m', 'torch.distributed.run', '--standalone', '--nnodes', '1', '--nproc_per_node']
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Mapping

from jobs.processes import killed_by

STRATEGIES = ("ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3")
# (short: the form's select is a fifth of the page wide; its help text says what each does)
STRATEGY_LABELS = {"ddp": "DDP", "fsdp": "FSDP", "deepspeed_zero2": "DeepSpeed ZeRO-2",
                   "deepspeed_zero3": "DeepSpeed ZeRO-3"}
FSDP_SHARDING = ("full_shard", "shard_grad_op", "hybrid_shard", "no_shard")
OFFLOAD = ("none", "cpu")
MAX_PROCESSES_PER_NODE = 64
MAX_NODES = 1024
DEFAULT_PORT = 29500
CONFIG_FILE = "accelerate.json"  # in the run folder
RUNNER = "training.runner"


def deepspeed_available() -> bool:
    """DeepSpeed is an optional extra (``pip install trajectory-studio[deepspeed]``)."""
    return importlib.util.find_spec("deepspeed") is not None


def world_size(s: Mapping[str, Any]) -> int:
    return int(s.get("processes_per_node", 1)) * int(s.get("nodes", 1))


def is_distributed(s: Mapping[str, Any]) -> bool:
    return world_size(s) > 1


def gpus_asked(s: Mapping[str, Any]) -> int:
    """GPUs a job needs on each node: none on CPU, else one per process.

    >>> gpus_asked({"processes_per_node": 4, "device": "auto"}), gpus_asked({"processes_per_node": 2, "device": "cpu"})
    (4, 0)
    """
    return 0 if s.get("device") == "cpu" else int(s.get("processes_per_node", 1))


def train_queue(s: Mapping[str, Any], base: str = "train") -> str:
    """The queue a training job goes to: ``train`` for one GPU or none, ``train-<N>gpu`` for N.

    >>> train_queue({"processes_per_node": 8, "device": "cuda"}), train_queue({"processes_per_node": 1})
    ('train-8gpu', 'train')
    """
    n = gpus_asked(s)
    return f"{base}-{n}gpu" if n > 1 else base


def distributed_errors(s: Mapping[str, Any], *, has_deepspeed: bool | None = None) -> dict[str, str]:
    """Problems with the topology fields of ``s`` (TrainSettings as a dict), by field name.

    >>> distributed_errors({"processes_per_node": 2, "nodes": 1, "strategy": "fsdp", "device": "cpu"})
    {'strategy': 'FSDP and DeepSpeed need CUDA devices; on CPU choose DDP.'}
    """
    errors: dict[str, str] = {}
    per_node, nodes = s.get("processes_per_node", 1), s.get("nodes", 1)
    strategy = s.get("strategy", "ddp")
    if not 1 <= per_node <= MAX_PROCESSES_PER_NODE:
        errors["processes_per_node"] = f"Processes per node must be between 1 and {MAX_PROCESSES_PER_NODE}."
    if not 1 <= nodes <= MAX_NODES:
        errors["nodes"] = f"Nodes must be between 1 and {MAX_NODES}."
    if strategy not in STRATEGIES:
        errors["strategy"] = f"Choose one of: {', '.join(STRATEGIES)}."
    elif strategy != "ddp" and s.get("device") == "cpu":
        errors["strategy"] = "FSDP and DeepSpeed need CUDA devices; on CPU choose DDP."
    elif strategy.startswith("deepspeed") and not (deepspeed_available() if has_deepspeed is None else has_deepspeed):
        errors["strategy"] = ("DeepSpeed is not installed on this server (an optional extra: "
                              "pip install 'trajectory-studio[deepspeed]'); choose DDP or FSDP.")
    if s.get("fsdp_sharding", "full_shard") not in FSDP_SHARDING:
        errors["fsdp_sharding"] = f"Choose one of: {', '.join(FSDP_SHARDING)}."
    elif strategy == "fsdp" and s.get("fsdp_sharding") == "hybrid_shard" and nodes < 2:
        errors["fsdp_sharding"] = "Hybrid sharding shards within a node and replicates across nodes: use 2 nodes or more."
    if s.get("offload", "none") not in OFFLOAD:
        errors["offload"] = f"Choose one of: {', '.join(OFFLOAD)}."
    elif s.get("offload") == "cpu" and strategy == "ddp":
        errors["offload"] = "DDP keeps the whole model on each device; offload needs FSDP or DeepSpeed."
    address = str(s.get("main_address", "") or "")
    if nodes > 1 and not address:
        errors["main_address"] = "Several nodes need the first node's address (host or IP) to meet at."
    elif address and (any(c.isspace() for c in address) or ":" in address or len(address) > 255):
        errors["main_address"] = "Give a host name or IPv4 address without a port (the port has its own field)."
    if not 1024 <= s.get("main_port", DEFAULT_PORT) <= 65535:
        errors["main_port"] = "The port must be between 1024 and 65535."
    return errors


def accelerate_config(s: Mapping[str, Any], *, machine_rank: int = 0) -> dict[str, Any]:
    """The accelerate config for a multi-process run (what ``accelerate config`` would write).

    >>> c = accelerate_config({"processes_per_node": 4, "nodes": 2, "strategy": "fsdp", "main_address": "10.0.0.1"})
    >>> c["distributed_type"], c["num_processes"], c["num_machines"], c["fsdp_config"]["fsdp_sharding_strategy"]
    ('FSDP', 8, 2, 'FULL_SHARD')
    """
    strategy = s.get("strategy", "ddp")
    nodes = int(s.get("nodes", 1))
    bf16 = s.get("precision", "auto") != "fp32" and s.get("device") != "cpu"
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_processes": world_size(s),  # in all, over every node (accelerate's convention)
        "num_machines": nodes,
        "machine_rank": machine_rank,
        "main_training_function": "main",
        "mixed_precision": "bf16" if bf16 else "no",
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": s.get("device") == "cpu",
        "downcast_bf16": "no",
        "tpu_env": [],
        "tpu_use_cluster": False,
        "tpu_use_sudo": False,
        "gpu_ids": "all",
    }
    if nodes > 1:
        config.update(main_process_ip=s.get("main_address", ""), main_process_port=int(s.get("main_port", DEFAULT_PORT)))
    offload = s.get("offload", "none") == "cpu"
    if strategy == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 1,
            "fsdp_sharding_strategy": str(s.get("fsdp_sharding", "full_shard")).upper(),
            "fsdp_offload_params": offload,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",  # checkpoints per rank; the final save is gathered
            "fsdp_sync_module_states": True,
            "fsdp_use_orig_params": True,  # LoRA: frozen and trained parameters in one wrapped module
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_forward_prefetch": False,
        }
    elif strategy.startswith("deepspeed"):
        config["distributed_type"] = "DEEPSPEED"
        stage = 3 if strategy.endswith("zero3") else 2
        config["deepspeed_config"] = {
            "zero_stage": stage,
            "offload_optimizer_device": "cpu" if offload else "none",
            "offload_param_device": "cpu" if offload and stage == 3 else "none",
            "zero3_init_flag": stage == 3,
            "zero3_save_16bit_model": stage == 3,  # the final folder holds plain weights, not ZeRO shards
            "gradient_accumulation_steps": int(s.get("gradient_accumulation_steps", 1)),
            "gradient_clipping": 1.0,
        }
    return config


def config_text(config: Mapping[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def launch_command(s: Mapping[str, Any], job_file: str | Path, *, config_file: str | Path, python: str,
                   machine_rank: int = 0) -> list[str]:
    """The command the worker runs for a job with settings ``s`` (cwd: the app's root).

    >>> launch_command({"processes_per_node": 1, "nodes": 1}, "/r/job.json", config_file="/r/a.json", python="py")
    ['py', '-m', 'training.runner', '/r/job.json']
    >>> launch_command({"processes_per_node": 8, "nodes": 1, "strategy": "fsdp"}, "/r/job.json",
    ...                config_file="/r/a.json", python="py")
    ['py', '-m', 'accelerate.commands.launch', '--config_file', '/r/a.json', '--machine_rank', '0', '-m', 'training.runner', '/r/job.json']
    """
    if not is_distributed(s):
        return [python, "-m", RUNNER, str(job_file)]
    if s.get("device") == "cpu":
        nodes, per_node = int(s.get("nodes", 1)), int(s.get("processes_per_node", 1))
        where = (["--standalone", "--nnodes", "1"] if nodes == 1 else
                 ["--nnodes", str(nodes), "--node_rank", str(machine_rank), "--master_addr", str(s.get("main_address")),
                  "--master_port", str(int(s.get("main_port", DEFAULT_PORT)))])
        return [python, "-m", "torch.distributed.run", *where, "--nproc_per_node", str(per_node),
                "-m", RUNNER, str(job_file)]
    return [python, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--machine_rank", str(machine_rank), "-m", RUNNER, str(job_file)]


def command_text(cmd: list[str]) -> str:
    return " ".join(cmd)  # as the preview always showed it (its run folder is a placeholder, not a path)


def root_cause(log: str) -> tuple[int, int] | None:
    """(rank, exit code) of the rank that ended a multi-process run, from the launcher's failure
    report in the log (torchrun's, which ``accelerate launch`` prints too); None when there is none.

    >>> root_cause("Root Cause (first observed failure):\\n[0]:\\n  rank      : 1 (local_rank: 1)\\n"
    ...            "  exitcode  : -9 (pid: 77)")
    (1, -9)
    """
    at = log.rfind("Root Cause")
    if at < 0:
        return None
    found_rank = re.search(r"\brank\s*:\s*(\d+)", log[at:])
    found_code = re.search(r"\bexitcode\s*:\s*(-?\d+)", log[at:])
    if not (found_rank and found_code):
        return None
    return int(found_rank.group(1)), int(found_code.group(1))


def dead_rank(rank: int, code: int, said: str = "") -> str:
    """What the job's error says about the rank that ended the run (``said``: that rank's own error).

    >>> dead_rank(1, -9)
    'Rank 1 died: it was killed by SIGKILL (out of memory is the usual cause when nobody sent it); the launcher stopped the other ranks.'
    >>> dead_rank(0, 1, "ValueError: no data")
    'Rank 0 failed: ValueError: no data'
    """
    if said:
        return f"Rank {rank} failed: {said}"
    if code < 0:
        how = f"it was {killed_by(code)}"
    else:
        how = f"it exited with code {code}"
    return f"Rank {rank} died: {how}; the launcher stopped the other ranks."
