"""Benchmark (not a test): GRPO steps/s through the app's runner against the same GRPOTrainer setup
in a plain script, in the same run.

    python bench/bench_grpo.py [--steps 10] [--repeats 2] [--device cpu|cuda] [--model DIR] [--generations 4]
    python bench/bench_grpo.py --smoke      # the smallest sizes: checks it runs

The app path is ``python -m rl.runner job.json`` (what the worker starts for a GRPO job): the demo
environment (``rl.demo_environment.TravelTools``) with every episode in its own child process with
limits, the reward functions wrapped to record episodes, ``episodes/*`` on every log, rollouts
written every ``rollout_every`` steps, metrics.jsonl. The plain path is a script that builds
``GRPOTrainer`` with the same ``GRPOConfig`` arguments (``rl.runner.grpo_kwargs``), the same prompt
snapshot, the same reward functions (``evaluation.rewards``) and ``environment_factory=TravelTools``
called in-process, and nothing else.

Printed: steps/s of each (global steps / the Trainer's train_runtime; the median over the repeats,
run in A-B-B-A order so drift in the machine's load cancels) and their ratio (target >= 0.95), and
steps per CPU second of each (the app's including its environment processes), which a busy shared
machine moves far less than wall time. On
a GPU machine, ``--device cuda --model DIR`` runs both in bf16 on a real model (e.g. a ~0.5B Qwen;
``python bench/random_qwen3.py DIR`` makes a Qwen3-0.6B-shaped one offline). Files: bench/out/grpo/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "grpo"
sys.path.insert(0, str(ROOT))

REWARDS = {"format_reward": 1.0, "tool_name_reward": 1.0, "argument_value_reward": 1.0,
           "tool_call_count_reward": 0.5, "environment": 1.0}  # TRL weighs get_reward 1.0 in the plain script

PLAIN_SCRIPT = r'''
import json, os, sys, warnings
warnings.filterwarnings("ignore")
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
import datasets, transformers
from transformers import AutoTokenizer
from trl import GRPOConfig, GRPOTrainer
from evaluation import rewards
from rl.demo_environment import TravelTools
datasets.disable_caching(); datasets.disable_progress_bars(); transformers.utils.logging.disable_progress_bar()
spec = json.load(open(sys.argv[1]))
tok = AutoTokenizer.from_pretrained(spec["model"])
train = datasets.load_from_disk(spec["dataset"])["train"]
funcs = [getattr(rewards, name) for name in spec["funcs"]]
trainer = GRPOTrainer(model=spec["model"], reward_funcs=funcs, args=GRPOConfig(**spec["kwargs"]),
                      train_dataset=train, processing_class=tok, environment_factory=TravelTools)
import time
cpu = time.process_time()
out = trainer.train()
cpu = time.process_time() - cpu
print(json.dumps({"steps": trainer.state.global_step, "runtime": out.metrics["train_runtime"], "cpu": cpu}))
'''


def prompt_snapshot(tokenizer_dir: Path) -> Path:
    """The demo trajectories exported as a prompt snapshot (the real export; evaluation registers
    the gold references when Django sets up, so set it up, on a throwaway data dir)."""
    os.environ.update({"DJANGO_SETTINGS_MODULE": "studio.settings", "STUDIO_DATA_DIR": str(OUT / "data")})
    import django

    django.setup()
    from annotate.demo import demo_trajectories
    from training.export import ExportItem, ExportSettings, MemoryCache, run_export

    out = OUT / "snapshot-prompt"
    if (out / "hf" / "dataset_dict.json").exists():
        return out
    docs = {f"r{i}": t.to_dict() for i, t in enumerate(demo_trajectories())}
    items = [ExportItem(key=k, ident=f"t{i}v1", split="train") for i, k in enumerate(docs)]
    run_export(items, ExportSettings(kind="prompt", template="qwen3", tokenizer=str(tokenizer_dir)), out,
               load_documents=lambda keys: {k: docs[k] for k in keys}, cache=MemoryCache())
    return out


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "TOKENIZERS_PARALLELISM": "false"}


def run_app(cfg, tag: str) -> dict:
    run_dir = OUT / f"app-{tag}"
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    run_dir.mkdir(parents=True)
    cfg.output_dir = str(run_dir)
    cfg.write(run_dir / "job.json")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rl.runner", str(run_dir / "job.json")], cwd=ROOT, env=env(),
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the app's runner failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    end = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"end"' in x][-1]
    r = end["results"]
    return {"steps": r["global_step"], "runtime": r["train_runtime"], "cpu": r["train_cpu_seconds"],
            "whole": time.perf_counter() - t0}


def run_plain(model_dir: Path, dataset: Path, kwargs: dict, tag: str) -> dict:
    run_dir = OUT / f"plain-{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    kwargs = {**kwargs, "output_dir": str(run_dir / "checkpoints")}
    spec = run_dir / "spec.json"
    spec.write_text(json.dumps({"model": str(model_dir), "dataset": str(dataset), "kwargs": kwargs,
                                "funcs": [k for k in REWARDS if k != "environment"]}))
    script = OUT / "plain_grpo.py"
    script.write_text(PLAIN_SCRIPT)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), str(spec)], cwd=ROOT, env=env(), capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"the plain script failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "whole": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each path (A-B-B-A order)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--model", type=Path, help="a local model folder (default: the tiny Qwen3)")
    ap.add_argument("--generations", type=int, default=4, help="num_generations (the group)")
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--max-completion-length", type=int, default=64)
    ap.add_argument("--env-memory-mb", type=int, default=0,
                    help="the environment processes' address-space limit (default: the app's, 2048 MB)")
    ap.add_argument("--smoke", action="store_true", help="the smallest sizes: 2 steps, one run of each")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.repeats, args.generations, args.prompts_per_step, args.max_completion_length = 2, 1, 2, 1, 16
    from rl import runner
    from training.tiny_model import build_tiny_model

    OUT.mkdir(parents=True, exist_ok=True)
    tiny = build_tiny_model(ROOT / "var" / "test-cache" / "tiny-qwen3")
    model_dir = args.model.resolve() if args.model else tiny
    snapshot = prompt_snapshot(tiny)
    settings = runner.GRPOSettings(
        rewards=dict(REWARDS), num_generations=args.generations, prompts_per_step=args.prompts_per_step,
        max_completion_length=args.max_completion_length, max_steps=args.steps, save_steps=10_000,
        rollout_every=5, device=args.device,
        limits={"memory_mb": args.env_memory_mb} if args.env_memory_mb else {})
    cfg = runner.GRPORunConfig(model=str(model_dir), dataset_dir=str(snapshot / "hf"), output_dir=str(OUT / "app"),
                               settings=settings)
    kwargs = runner.grpo_kwargs(cfg, args.device)
    # TRL appends the environment's get_reward (weight 1) after the listed functions: the same order.
    kwargs["reward_weights"] = [REWARDS[k] for k in REWARDS if k != "environment"]
    print(f"GRPO, {args.steps} steps of {args.prompts_per_step} prompts x {args.generations} generations, "
          f"max completion {args.max_completion_length} tokens, {model_dir.name} on {args.device}", flush=True)
    app, plain = [], []
    order = (["plain", "app", "app", "plain"] * args.repeats)[: 2 * args.repeats]
    for i, which in enumerate(order):
        r = run_app(cfg, str(i)) if which == "app" else run_plain(model_dir, snapshot / "hf", kwargs, str(i))
        (app if which == "app" else plain).append(r)
        print(f"  {which:5s} run {i + 1}: {r['steps'] / r['runtime']:.4f} steps/s ({r['steps']} steps in "
              f"{r['runtime']:.1f} s, {r['cpu']:.1f} CPU s; the whole process {r['whole']:.1f} s; "
              f"load {os.getloadavg()[0]:.1f})", flush=True)
    a = statistics.median(r["steps"] / r["runtime"] for r in app)
    p = statistics.median(r["steps"] / r["runtime"] for r in plain)
    a_cpu = statistics.median(r["steps"] / r["cpu"] for r in app)
    p_cpu = statistics.median(r["steps"] / r["cpu"] for r in plain)
    print(f"steps/s app {a:.4f} · plain {p:.4f}")
    # On a shared machine wall time moves with the neighbours' load; CPU time (the app's counts its
    # environment processes too) does not, so it is printed beside it.
    print(f"steps per CPU second app {a_cpu:.4f} · plain {p_cpu:.4f} (ratio {a_cpu / p_cpu:.3f})")
    # Steps/s time the Trainer's train() alone, on both sides. Setup is outside it: the model's loading
    # on both, and in the app the environment processes, which start while the model loads. The whole
    # process, setup included, is printed too, so that no cost moved out of train() goes unseen.
    whole_a = statistics.median(r["whole"] for r in app)
    whole_p = statistics.median(r["whole"] for r in plain)
    print(f"whole process, setup included: app {whole_a:.1f} s · plain {whole_p:.1f} s (ratio plain/app "
          f"{whole_p / whole_a:.3f})")
    print(f"ratio app/plain: {a / p:.3f} (target >= 0.95)")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"  ({time.monotonic() - started:.0f} s in all)")
