"""Benchmark (not a test): the same SFT run through the app and through a plain TRL script; and
packed against unpacked SFT on the same data (``--packing``).

    python bench/bench_training.py [--steps 30] [--batch-size 2] [--repeats 2] [--device cpu|cuda] [--model DIR]
    python bench/bench_training.py --packing [--copies 3] [--max-length 2048] [--batch-size 4] [--device ...]
    python bench/bench_training.py [--packing] --smoke     # the smallest sizes: checks it runs, in seconds

On a GPU machine, ``--device cuda`` runs both paths in bf16 (the app's CUDA settings); ``--model``
takes a local Qwen-family model folder instead of the tiny one (the snapshot is rendered text,
re-tokenized by the model's tokenizer with the snapshot's template). With no hub, a realistic
model for that is ``python bench/random_qwen3.py DIR`` (Qwen3-0.6B's shape, random weights, the
real Qwen3 tokenizer from ../shared/tokenizers).

The app path is what a lead's click does: ``launch_training`` (the launch form's code) queues a
job after commit, a real Celery worker (a subprocess on the filesystem broker) claims it and
runs ``training.runner`` in a subprocess, whose callback writes metrics.jsonl, which the worker
tails into the database. The plain path is a script that builds ``SFTTrainer`` with the same
``SFTConfig`` arguments on the same data and template, and nothing else.

Printed: tokens/s of each (non-padding input tokens / the Trainer's train_runtime; the median over
the repeats, run in A-B-B-A order so drift in the machine's load cancels) and their ratio (target
>= 0.95), the ratio within each neighbouring pair with its uncertainty (on a shared 2-core VM a
single run moves by ±5 %: use ``--repeats 5`` for a verdict), and the time from submit to the
first logged step in the database (target <= 20 s on CPU), with where that time goes. Everything lives under bench/out/ (git-ignored).

``--packing``: the demo trajectories (``--copies`` times) exported tokenized (our labels) with the
model's tokenizer, trained for one epoch through the runner's own ``build_trainer``, unpacked and
packed (``TrainSettings.packing``), in one process, A-B-B-A. Printed: real (non-padding) tokens/s of
each and packed/unpacked, the padding share of the unpacked batches and the fill of the packed
sequences. The packed batch size defaults to the one that gives a step about as many real tokens
as an unpacked step (``--packed-batch-size`` to set it), so the ratio measures padding and packing,
not a bigger batch. On CUDA it also prints the model FLOPs utilisation: (6 x parameters + 12 x
layers x hidden x mean row length) FLOPs a token, times tokens/s, over the GPU's dense bf16 peak
(``--peak-tflops``; known for H100 / H200 / A100).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "training"
sys.path.insert(0, str(ROOT))

PLAIN_SCRIPT = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
import datasets, transformers
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer
datasets.disable_caching(); datasets.disable_progress_bars(); transformers.utils.logging.disable_progress_bar()
spec = json.load(open(sys.argv[1]))
tok = AutoTokenizer.from_pretrained(spec["model"])
tok.chat_template = open(spec["template"]).read()
dd = datasets.load_from_disk(spec["dataset"])
trainer = SFTTrainer(model=spec["model"], args=SFTConfig(**spec["kwargs"]), train_dataset=dd["train"],
                     processing_class=tok)
import time
cpu = time.process_time()
out = trainer.train()
cpu = time.process_time() - cpu
tokens = trainer.state.num_input_tokens_seen
print(json.dumps({"tokens": tokens, "runtime": out.metrics["train_runtime"], "cpu": cpu,
                  "tokens_per_second": tokens / out.metrics["train_runtime"]}))
'''


def setup_environment(data_dir: Path) -> None:
    """Point Django at a fresh SQLite file and broker folders under ``data_dir`` (before setup)."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    os.environ.update({"STUDIO_DATA_DIR": str(data_dir), "DATABASE_URL": f"sqlite:///{data_dir / 'studio.sqlite3'}",
                       "DJANGO_SETTINGS_MODULE": "studio.settings"})
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_snapshot(model_dir: Path) -> Path:
    """The demo trajectories exported as an SFT snapshot (the real export, every case type)."""
    from annotate.demo import demo_trajectories
    from training.export import ExportItem, ExportSettings, MemoryCache, run_export

    out = OUT / "snapshot-sft"
    if (out / "hf" / "dataset_dict.json").exists():
        return out
    docs = {f"r{i}": t.to_dict() for i, t in enumerate(demo_trajectories())}
    items = [ExportItem(key=k, ident=f"t{i}", split="train") for i, k in enumerate(docs)]
    run_export(items, ExportSettings(kind="sft", template="qwen3_training", tokenizer=str(model_dir)), out,
               load_documents=lambda keys: {k: docs[k] for k in keys}, cache=MemoryCache())
    return out


def start_worker(data_dir: Path) -> subprocess.Popen:
    log = open(data_dir / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "studio", "worker", "-Q", "train", "-c", "1",
                             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
                            cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while "ready." not in (data_dir / "worker.log").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("the Celery worker did not start; see " + str(data_dir / "worker.log"))
        time.sleep(0.2)
    return proc


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of a process group (Linux /proc)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def run_app(snapshot, model_dir: Path, settings, worker_pgid: int) -> dict:
    """Submit as the launch form does; time until the first metric point is in the database."""
    from training.jobs import launch_training
    from training.models import JobStatus, MetricPoint, TrainingJob

    worker_cpu = group_cpu_seconds(worker_pgid)
    submitted = time.time()
    job = launch_training(project=snapshot.project, snapshot=snapshot, kind="sft", base_model=str(model_dir),
                          train_settings=settings)
    first_point = None
    while True:
        job.refresh_from_db()
        if first_point is None and MetricPoint.objects.filter(job=job).exists():
            first_point = time.time()
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            break
        # Poll finely only until the first point (that time is measured); after it, this loop is
        # the benchmark's own overhead, which would otherwise take CPU from the app's run alone.
        time.sleep(0.05 if first_point is None else 1.0)
    worker_cpu = group_cpu_seconds(worker_pgid) - worker_cpu  # tailing, database writes, broker polling
    if job.status != JobStatus.SUCCEEDED:
        sys.exit(f"the app run failed: {job.error}")
    events = [json.loads(x) for x in Path(job.output_dir, "metrics.jsonl").read_text().splitlines()]
    first = {}
    for e in events:
        first.setdefault(e["event"], e["time"])
    results = TrainingJob.objects.get(pk=job.pk).summary["results"]
    training = first["end"] - first["begin"]  # the worker's share while the run trained, not while it loaded
    return {"tokens_per_second": results["tokens_per_second"], "tokens": results["num_input_tokens_seen"],
            "runtime": results["train_runtime"], "submit_to_first_point": first_point - submitted,
            "cpu": results["train_cpu_seconds"] + worker_cpu * min(1.0, training / (time.time() - submitted)),
            "worker_cpu": worker_cpu, "runner_cpu": results["train_cpu_seconds"],
            "breakdown": {"queue + worker claim + process start": first["status"] - submitted,
                          "imports, model and data loading": first["begin"] - first["status"],
                          "first step": first["log"] - first["begin"],
                          "into the database": first_point - first["log"]}}


def run_plain(snapshot_dir: Path, model_dir: Path, kwargs: dict, tag: str) -> dict:
    spec = OUT / f"plain-{tag}.json"
    out_dir = OUT / f"plain-{tag}"
    shutil.rmtree(out_dir, ignore_errors=True)
    spec.write_text(json.dumps({"model": str(model_dir), "dataset": str(snapshot_dir / "hf"),
                                "template": str(snapshot_dir / "chat_template.jinja"),
                                "kwargs": {**kwargs, "output_dir": str(out_dir)}}))
    script = OUT / "plain_trl.py"
    script.write_text(PLAIN_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(spec)], capture_output=True, text=True, cwd=OUT,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode != 0:
        sys.exit("the plain TRL script failed:\n" + done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- packed against unpacked ----------------------------------------------------------------------

PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}  # dense, per GPU (vendor data sheets)


def build_tokenized_snapshot(tokenizer_dir: Path, copies: int) -> Path:
    """The demo trajectories, ``copies`` times, exported tokenized with ``tokenizer_dir``: the rows
    carry our labels, as a snapshot exported with "tokenized" does."""
    from annotate.demo import demo_trajectories
    from training.export import ExportItem, ExportSettings, MemoryCache, run_export

    out = OUT / f"snapshot-tokenized-{tokenizer_dir.name}-x{copies}"
    if (out / "hf" / "dataset_dict.json").exists():
        return out
    docs = {f"r{c}-{i}": t.to_dict() for c in range(copies) for i, t in enumerate(demo_trajectories())}
    items = [ExportItem(key=k, ident=k, split="train") for k in docs]
    run_export(items, ExportSettings(kind="sft", template="qwen3_training", tokenizer=str(tokenizer_dir),
                                     tokenized=True), out,
               load_documents=lambda keys: {k: docs[k] for k in keys}, cache=MemoryCache())
    return out


def run_packing_once(snapshot_dir: Path, model_dir: Path, settings, tag: str) -> dict:
    """One epoch (or ``max_steps``) through the runner's own trainer; real tokens over train_runtime."""
    import gc

    from training import runner

    out = OUT / "packing" / tag
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cfg = runner.RunConfig(kind="sft", model=str(model_dir), dataset_dir=str(snapshot_dir / "hf"), output_dir=str(out),
                           chat_template_file=str(snapshot_dir / "chat_template.jinja"), settings=settings)
    device = runner.resolve_device(settings.device)
    trainer = runner.build_trainer(cfg, device, runner.EventLog(out / runner.METRICS_FILE))
    data = trainer.train_dataset
    if settings.packing:
        fill = sum(map(sum, data["seq_lengths"])) / (len(data) * (settings.max_length or runner.DEFAULT_MAX_LENGTH))
        shape = f"{len(data)} sequences, {fill:.0%} full"
    else:
        shape = f"{len(data)} rows"
    cpu = time.process_time()
    metrics = trainer.train().metrics
    cpu = time.process_time() - cpu  # all threads: with tokens, a speed less moved by other work
    tokens = trainer.state.num_input_tokens_seen
    params = sum(p.numel() for p in trainer.model.parameters())
    config = trainer.model.config
    result = {"tokens": tokens, "runtime": metrics["train_runtime"], "steps": trainer.state.global_step,
              "tokens_per_second": tokens / metrics["train_runtime"], "tokens_per_cpu_second": tokens / cpu,
              "shape": shape, "params": params,
              "layers": config.num_hidden_layers, "hidden": config.hidden_size}
    del trainer
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
    return result


def padding_share(snapshot_dir: Path, batch_size: int, max_length: int) -> tuple[float, float]:
    """The padding share of unpacked batches of consecutive rows, and the mean row length (tokens)."""
    rows = [min(len(json.loads(line)["input_ids"]), max_length)
            for line in (snapshot_dir / "train.jsonl").read_text().splitlines()]
    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    padded = sum(len(b) * max(b) for b in batches)
    return 1 - sum(rows) / padded, sum(rows) / len(rows)


def compare_packing(args, model_dir: Path) -> None:
    from training import runner

    runner.quiet_libraries()
    snapshot_dir = build_tokenized_snapshot(model_dir, args.copies)
    pad, mean_row = padding_share(snapshot_dir, args.batch_size, args.max_length)
    packed_batch = args.packed_batch_size or math.ceil(args.batch_size * mean_row / args.max_length)
    common = dict(max_length=args.max_length, device=args.device, logging_steps=10_000, save_steps=10_000,
                  eval_steps=10_000, max_steps=args.steps if args.smoke else 0, num_train_epochs=1,
                  gradient_checkpointing="off", seed=0)
    modes = {"unpacked": runner.TrainSettings(batch_size=args.batch_size, **common),
             "packed": runner.TrainSettings(batch_size=packed_batch, packing=True, **common)}
    results: dict[str, list[dict]] = {"unpacked": [], "packed": []}
    order = (["unpacked", "packed", "packed", "unpacked"] * args.repeats)[: 2 * args.repeats]
    for i, mode in enumerate(order):
        r = run_packing_once(snapshot_dir, model_dir, modes[mode], f"{mode}-{i}")
        results[mode].append(r)
        print(f"  {mode:8s} run {i + 1}: {r['tokens_per_second']:9.1f} tokens/s, {r['tokens_per_cpu_second']:8.1f} "
              f"tokens/CPU s ({r['tokens']} tokens in {r['steps']} steps, {r['runtime']:.1f} s; {r['shape']})",
              flush=True)
    best = {m: max(r["tokens_per_second"] for r in rs) for m, rs in results.items()}
    median = {m: statistics.median(r["tokens_per_second"] for r in rs) for m, rs in results.items()}
    per_cpu = {m: statistics.median(r["tokens_per_cpu_second"] for r in rs) for m, rs in results.items()}
    where = ("CUDA bf16" if args.device == "cuda" else "CPU") + f" ({os.cpu_count()} cores)"
    rows = sum(1 for _ in (snapshot_dir / "train.jsonl").open())
    print(f"SFT packed vs unpacked, {model_dir.name}, {where}: {rows} rows (demo x{args.copies}, mean "
          f"{mean_row:.0f} tokens), max_length {args.max_length}, {'%d steps' % args.steps if args.smoke else '1 epoch'}")
    print(f"  unpacked: batch {args.batch_size} rows, {pad:.0%} of the computed tokens are padding")
    print(f"  packed  : batch {packed_batch} sequence(s) of up to {args.max_length} tokens")
    for m in ("unpacked", "packed"):
        print(f"  {m:8s}: best {best[m]:9.1f} tokens/s   median {median[m]:9.1f}")
    print(f"  ratio packed/unpacked: best {best['packed'] / best['unpacked']:.3f}   "
          f"median {median['packed'] / median['unpacked']:.3f}   per CPU second (median) "
          f"{per_cpu['packed'] / per_cpu['unpacked']:.3f}")
    if os.getloadavg()[0] > (os.cpu_count() or 1) + 0.5:
        print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other work shared the machine; "
              "the per-CPU-second ratio is the steadier figure)")
    if args.device == "cuda":
        import torch

        name = torch.cuda.get_device_name()
        peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        r = results["packed"][0]
        flops_per_token = 6 * r["params"] + 12 * r["layers"] * r["hidden"] * mean_row
        if peak:
            for m in ("unpacked", "packed"):
                print(f"  model FLOPs utilisation, {m:8s}: {flops_per_token * best[m] / (peak * 1e12):6.1%} "
                      f"of {name}'s {peak:g} TFLOPS (bf16 dense), {r['params'] / 1e6:.0f}M parameters")
        else:
            print(f"  (no peak FLOPs known for {name}: pass --peak-tflops for the model FLOPs utilisation)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=None, help="default: 2 (app/plain), 4 (--packing)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each path (A-B-B-A order)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--model", type=Path, help="a local model folder (default: the tiny Qwen3)")
    ap.add_argument("--smoke", action="store_true", help="the smallest sizes: 2 steps, one run of each")
    ap.add_argument("--packing", action="store_true", help="compare packed and unpacked SFT instead")
    ap.add_argument("--copies", type=int, default=3, help="--packing: times the demo trajectories are repeated")
    ap.add_argument("--max-length", type=int, default=2048, help="--packing: max_length of both runs")
    ap.add_argument("--packed-batch-size", type=int, default=0, help="--packing: default: as many real tokens a "
                                                                       "step as an unpacked batch")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="--packing on CUDA: the GPU's bf16 peak")
    args = ap.parse_args()
    if args.batch_size is None:
        args.batch_size = 4 if args.packing else 2
    if args.smoke:
        args.steps, args.repeats, args.copies = 2, 1, 1
    if args.packing:
        from training.tiny_model import build_tiny_model

        started = time.monotonic()
        tiny = build_tiny_model(ROOT / "var" / "test-cache" / "tiny-qwen3")
        compare_packing(args, args.model.resolve() if args.model else tiny)
        print(f"  ({time.monotonic() - started:.0f} s in all)")
        return

    data_dir = OUT / "data"
    # The launch checks confine a user's model path to admin-set roots: the tiny model's cache
    # folder, and the --model folder's parent, are this benchmark's.
    roots = [ROOT / "var" / "test-cache"] + ([args.model.resolve().parent] if args.model else [])
    os.environ["STUDIO_MODEL_ROOTS"] = os.pathsep.join(str(r) for r in roots)
    setup_environment(data_dir)
    from annotate.models import Project
    from training import runner
    from training.jobs import preview_run_config
    from training.models import JobStatus, Snapshot
    from training.tiny_model import build_tiny_model

    tiny = build_tiny_model(ROOT / "var" / "test-cache" / "tiny-qwen3")
    model_dir = args.model.resolve() if args.model else tiny
    snapshot_dir = build_snapshot(tiny)
    project = Project.objects.create(name="Bench", slug="bench")
    meta = json.loads((snapshot_dir / "snapshot.json").read_text())
    snapshot = Snapshot.objects.create(project=project, kind="sft", name="bench sft", status=JobStatus.SUCCEEDED,
                                       out_dir=str(snapshot_dir), render_settings=meta["settings"],
                                       content_hash="bench")
    settings = runner.TrainSettings(max_steps=args.steps, batch_size=args.batch_size, logging_steps=1,
                                    save_steps=10_000, eval_steps=10_000, device=args.device)
    # The plain script gets exactly the arguments the app's runner passes to SFTConfig.
    kwargs = runner.trl_kwargs(preview_run_config(snapshot, "sft", str(model_dir), settings), args.device,
                               has_eval=False, columns=meta["columns"])

    worker = start_worker(data_dir)
    app, plain, runs = [], [], []
    try:
        order = (["plain", "app", "app", "plain"] * args.repeats)[: 2 * args.repeats]
        for i, which in enumerate(order):
            if which == "app":
                app.append(run_app(snapshot, model_dir, settings, worker.pid))
                r = app[-1]
            else:
                plain.append(run_plain(snapshot_dir, model_dir, kwargs, str(i)))
                r = plain[-1]
            runs.append((which, r, os.getloadavg()[0]))
            split = (f": training process {r['runner_cpu']:.1f} + worker {r['worker_cpu']:.1f} from submit to end"
                     if which == "app" else "")
            print(f"  {which:5s} run {i + 1}: {r['tokens_per_second']:8.1f} tokens/s "
                  f"({r['tokens']} tokens in {r['runtime']:.1f} s, {r['cpu']:.1f} CPU s{split})", flush=True)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)

    app_best = max(r["tokens_per_second"] for r in app)
    plain_best = max(r["tokens_per_second"] for r in plain)
    app_tps = statistics.median(r["tokens_per_second"] for r in app)
    plain_tps = statistics.median(r["tokens_per_second"] for r in plain)
    # Neighbouring runs share the machine's load of the moment: the ratio within each A-B pair is
    # steadier than the medians when other work comes and goes; the fastest run of each path is
    # the one other work disturbed least (timeit's reasoning), so best/best is the headline.
    pairs = [runs[i:i + 2] for i in range(0, len(runs) - 1, 2)]
    pair_ratios = [next(r for w, r, _ in p if w == "app")["tokens_per_second"]
                   / next(r for w, r, _ in p if w == "plain")["tokens_per_second"] for p in pairs]
    first = min(app, key=lambda r: r["submit_to_first_point"])
    load = max(lo for _, _, lo in runs)
    where = ("CUDA bf16" if args.device == "cuda" else "CPU") + f" ({os.cpu_count()} cores"
    print(f"SFT, {model_dir.name}, {where}, highest load average {load:.1f}), {args.steps} steps, "
          f"batch {args.batch_size}, {args.repeats} runs of each:")
    print(f"  plain TRL script : best {plain_best:8.1f} tokens/s   median {plain_tps:8.1f}")
    print(f"  through the app  : best {app_best:8.1f} tokens/s   median {app_tps:8.1f}")
    print(f"  ratio app/plain  : best {app_best / plain_best:8.3f}            median {app_tps / plain_tps:8.3f}"
          f"   (target >= 0.95)")
    geo = math.exp(statistics.fmean(math.log(x) for x in pair_ratios))
    print(f"  app/plain within each neighbouring pair: {', '.join(f'{x:.3f}' for x in pair_ratios)}"
          f"   (median {statistics.median(pair_ratios):.3f}, geometric mean {geo:.3f})")
    if len(pair_ratios) > 1:
        # How far a ratio moves between runs on this machine: the verdict is only as sharp as this.
        spread = statistics.stdev(math.log(x) for x in pair_ratios) / math.sqrt(len(pair_ratios))
        print(f"  uncertainty of the pair mean (one standard error): x/÷ {math.exp(spread):.3f}"
              f"  -> {geo / math.exp(2 * spread):.3f} .. {geo * math.exp(2 * spread):.3f} (about 95 %)")
    if load > (os.cpu_count() or 1) + 0.5:  # the training itself keeps every core busy
        print("  (the machine was busy with other work: medians are noisy; trust best/best, or rerun)")
    every = ", ".join(f"{r['submit_to_first_point']:.1f}" for r in app)
    print(f"  submit -> first logged step in the database: best {first['submit_to_first_point']:.1f} s "
          f"(all: {every} s)   (target <= 20 s on CPU)")
    for part, seconds in first["breakdown"].items():
        print(f"      {part:38s} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
