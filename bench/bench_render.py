"""Benchmark: render + mask + tokenize + audit, against TRL's own SFT preprocessing, on tau-bench.

    python bench/bench_render.py [--rows 2000] [--template qwen3_training] [--tokenizer DIR]
    python bench/bench_render.py --smoke       # the 50 conversations once, one max_length: seconds

The 50 tau-bench conversations (real GPT-4o airline trajectories, with the 14 tool schemas and the
airline policy as system prompt) are replicated to ``--rows``. Measured in the same run, on the
same data and tokenizer (the tiny test tokenizer by default):

- **ours**: ``SamplePipeline.render`` per trajectory: canonical -> messages, the full render with
  ``{% generation %}`` spans, prefix-diffing of every assistant message, the cross-check, step
  policies, tokenization with offsets (segment cache), token labels, and the audit; plus the
  aggregate audit;
- **TRL**: ``SFTTrainer``'s dataset preparation (``_prepare_dataset``, ``assistant_only_loss=True``,
  no ``max_length``) on the same records (``messages`` + ``tools``);
- **floor**: plain batch tokenization of the rendered texts, without and with offsets.

It checks the labels are identical to TRL's, then shows what ``max_length`` does: rows TRL drops
without a word are audit errors here. Prints conversations/s and ratios. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / ".." / "shared" / "fixtures" / "tau_bench"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def load_tau() -> list:
    from annotate.formats.tau_bench import to_trajectory

    tools = json.loads((FIXTURES / "airline_tools.json").read_text())
    records = json.loads((FIXTURES / "gpt-4o-airline_trial0.json").read_text())
    return [to_trajectory(r, tools=tools) for r in records]


def tiny_tokenizer_dir() -> Path:
    from training.tiny_model import build_tiny_model

    cache = Path(os.environ.get("STUDIO_TEST_CACHE", ROOT / "var" / "test-cache")) / "tiny-qwen3"
    return build_tiny_model(cache)


def trl_prepare(records: list[dict], tokenizer, chat_template: str, max_length: int | None):
    """TRL's SFTTrainer dataset preparation, without a model (the trainer's own method)."""
    import copy

    from datasets import Dataset, Features, Json, List, Value
    from trl import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = chat_template
    trainer = SFTTrainer.__new__(SFTTrainer)
    trainer._tokenizer, trainer.chat_template, trainer.completion_only_loss = tok, None, False
    ds = Dataset.from_list([{**r, "row": i} for i, r in enumerate(records)],
                           features=Features({"messages": List(Json()), "tools": List(Json()), "row": Value("int64")}))
    args = SFTConfig(output_dir=tempfile.mkdtemp(), assistant_only_loss=True, max_length=max_length, report_to=[],
                     use_cpu=True, bf16=False, disable_tqdm=True)
    t0 = time.perf_counter()
    out = trainer._prepare_dataset(ds, tok, args, packing=False, formatting_func=None, dataset_name="train")
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--template", default="qwen3_training")
    ap.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the tiny test tokenizer)")
    ap.add_argument("--smoke", action="store_true", help="50 rows and one max_length (seconds; the test suite runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.rows = 50
    if not FIXTURES.exists():
        sys.exit(f"needs the shared tau-bench fixture at {FIXTURES}")

    from datasets.utils.logging import disable_progress_bar
    from transformers import AutoTokenizer

    from training.audit import aggregate
    from training.chat_templates import get_template
    from training.render import RenderSettings
    from training.split import SamplePipeline

    disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(args.tokenizer or tiny_tokenizer_dir())
    template = get_template(args.template)
    unique = load_tau()
    trajs = [unique[i % len(unique)] for i in range(args.rows)]
    print(f"tau-bench: {len(unique)} conversations replicated to {len(trajs)} rows; template {template.name}; "
          f"tokenizer {Path(tok.name_or_path).name} ({len(tok)} tokens)")
    import trl  # noqa: F401  (imported before timing anything)

    # Ours, cold: a fresh pipeline (empty segment cache) on the 50 distinct conversations.
    settings = RenderSettings(strategy="conversation", tokenized=True)
    pipe = SamplePipeline(template, tok, settings)
    t0 = time.perf_counter()
    for i, t in enumerate(unique):
        pipe.render(t, i)
    cold = len(unique) / (time.perf_counter() - t0)

    # Ours, the replicated rows (a fresh pipeline again).
    pipe = SamplePipeline(template, tok, settings)
    t0 = time.perf_counter()
    results = [pipe.render(t, i) for i, t in enumerate(trajs)]
    report = aggregate(results)
    ours_s = time.perf_counter() - t0
    samples = [s for r in results for s in r["samples"]]
    assert len(samples) == len(trajs) and report["errors"] == 0, report["findings"]

    # TRL on the same records.
    records = [{"messages": s["messages"], "tools": s["tools"]} for s in samples]
    theirs, trl_s = trl_prepare(records, tok, template.text, None)
    same = sum(s["input_ids"] == t["input_ids"] and s["labels"] == t["labels"] for s, t in zip(samples, theirs))

    # The floor: batch tokenization of the rendered texts.
    texts = [s["text"] for s in samples]
    t0 = time.perf_counter()
    tok(texts, add_special_tokens=False)
    floor_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    floor_off_s = time.perf_counter() - t0

    n = len(trajs)
    rate = {"ours": n / ours_s, "trl": n / trl_s, "floor": n / floor_s, "floor_offsets": n / floor_off_s}
    print(f"\nlabels identical to TRL's: {same}/{n}")
    print(f"{'':44s}{'conv/s':>10s}")
    print(f"{'ours: render+mask(2 methods)+tokenize+audit':44s}{rate['ours']:10.1f}")
    print(f"{'  (cold segment cache, 50 distinct convs)':44s}{cold:10.1f}")
    print(f"{'TRL SFTTrainer preprocessing':44s}{rate['trl']:10.1f}")
    print(f"{'batch tokenization (floor)':44s}{rate['floor']:10.1f}")
    print(f"{'batch tokenization with offsets':44s}{rate['floor_offsets']:10.1f}")
    print(f"\nours / TRL: {rate['ours'] / rate['trl']:.2f}x   (cold: {cold / rate['trl']:.2f}x)   "
          f"ours / floor: {rate['ours'] / rate['floor']:.2f}x   ours / floor with offsets: "
          f"{rate['ours'] / rate['floor_offsets']:.2f}x")
    print(f"segment cache: {len(pipe.segments.cache)} distinct pieces")

    # max_length: what TRL drops silently, the audit reports.
    first = [next(i for i, lab in enumerate(s["labels"]) if lab != -100) for s in samples[:len(unique)]]
    print(f"\nfirst supervised token of a row: {min(first)}..{max(first)} (system prompt + tool schemas)")
    # (Each distinct conversation once: the replicated rows get the same verdicts.)
    u = len(unique)
    for max_length in (4096,) if args.smoke else (8192, 4096):
        mpipe = SamplePipeline(template, tok, RenderSettings(strategy="conversation", tokenized=True,
                                                             max_length=max_length))
        mres = [mpipe.render(t, i) for i, t in enumerate(unique)]
        mrep = aggregate(mres)
        kept, _ = trl_prepare(records[:u], tok, template.text, max_length)
        dropped = set(range(u)) - set(kept["row"])
        all_cut = {i for i, r in enumerate(mres) for f in r["samples"][0]["audit"]["findings"]
                   if f["code"] == "all_supervised_truncated"}
        print(f"max_length={max_length}: TRL silently drops {len(dropped)}/{u} distinct rows "
              f"({len(dropped) * n // u}/{n} rows); the audit: {mrep['totals'].get('truncated_samples', 0)}/{u} cut, "
              f"{len(all_cut)}/{u} lose every supervised token (errors, blocking={mrep['blocking']}), "
              f"{mrep['totals'].get('supervised_tokens_cut', 0)} of {mrep['totals']['supervised_tokens']} supervised "
              f"tokens cut; same rows as TRL drops: {all_cut == dropped}")

if __name__ == "__main__":
    main()
