"""Generation benchmark: batched vs one-by-one generation on the tiny model, in the same run.

The prompts are the decision points of the demo trajectories (every case type; tool schemas in
the system prompt, earlier calls and results in the history), rendered through the tiny model's
chat template (TRL's qwen3), repeated to N prompts. Both ways generate exactly ``max_new_tokens``
tokens per prompt (default: the launch form's, 256), greedily; the untrained model never stops
early, so both do the same work. The ratio is seconds one by one over seconds batched (target
>= 4x). The prompts are taken in length order (as ``LocalGenerator`` batches them) in groups of
one batch, each group timed both ways back to back, alternating which goes first, so that load
from other processes on a shared machine falls on both alike.

``--threads``: torch's intra-op threads for both (default 1: the tiny model's matrices are too
small to split, and on a busy machine every split op waits for a second core; 0 keeps torch's
default).

A second part times the endpoint client against a local OpenAI-compatible server with a fixed
latency per request: ``concurrency`` requests in flight vs one at a time.

    python bench/bench_generation.py [N] [--batch-size 16] [--max-new-tokens 256] [--threads 1] [--model DIR]
    python bench/bench_generation.py --smoke   # 4 prompts of 8 new tokens, 4 requests: seconds

The exit status is 1 when the batched ratio misses its target, except with ``--smoke`` (a size too
small to mean anything: it checks the benchmark runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.generate import EndpointGenerator, GenerationSettings, LocalGenerator  # noqa: E402
from evaluation.items import items_from_prompt_rows, rows_from_trajectory  # noqa: E402


def demo_prompts(n: int) -> list[tuple[list[dict], list[dict]]]:
    from annotate.demo import demo_trajectories

    items = []
    for i, t in enumerate(demo_trajectories()):
        items.extend(items_from_prompt_rows(rows_from_trajectory(t, f"demo{i}")))
    return [(items[k % len(items)].messages, items[k % len(items)].tools) for k in range(n)]


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_local(args) -> float:
    model = Path(args.model) if args.model else None
    if model is None:
        from training.tiny_model import build_tiny_model

        model = build_tiny_model(ROOT / "var" / "test-cache" / "tiny-qwen3")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, device=args.device)
    gen = LocalGenerator(str(model), settings)
    prompts = demo_prompts(args.n)
    lengths = [len(gen.tokenizer(gen.render(m, t))["input_ids"]) for m, t in prompts]
    print(f"model: {model} on {gen.device}, {torch.get_num_threads()} thread(s); {len(prompts)} prompts of "
          f"{min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / len(lengths):.0f}); "
          f"{args.max_new_tokens} new tokens each, greedy")
    gen.generate(prompts[: args.batch_size])  # warm-up: first-call allocations, kernels
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    one_s = batch_s = 0.0
    one, batched = [], []
    for k, start in enumerate(range(0, len(order), args.batch_size)):
        group = [prompts[i] for i in order[start:start + args.batch_size]]
        runs = [("one", 1), ("batch", args.batch_size)]
        for name, size in (runs if k % 2 == 0 else runs[::-1]):
            seconds, out = timed(lambda: gen.generate(group, batch_size=size))
            if name == "one":
                one_s += seconds
                one.extend(out)
            else:
                batch_s += seconds
                batched.extend(out)
    tokens_one = sum(g.new_tokens for g in one)
    tokens_batch = sum(g.new_tokens for g in batched)
    same = sum(a.text == b.text for a, b in zip(one, batched))
    print(f"one by one:      {one_s:8.2f} s  {tokens_one / one_s:9.1f} new tokens/s")
    print(f"batched ({args.batch_size:>3}):   {batch_s:8.2f} s  {tokens_batch / batch_s:9.1f} new tokens/s")
    print(f"same outputs: {same}/{len(prompts)}")
    ratio = one_s / batch_s
    print(f"RATIO batched vs one by one: {ratio:.1f}x  (target >= 4x)  {'OK' if ratio >= 4 else 'BELOW TARGET'}")
    return ratio


def bench_endpoint(args) -> float:
    from tests.evaluation.runs_harness import ChatServer

    prompts = demo_prompts(args.requests)
    with ChatServer(lambda body: {"content": "ok"}, delay=args.latency) as server:
        # The local server on an allowlist of its own (outbound requests are allowed, not assumed).
        seq = EndpointGenerator(server.url, "m", GenerationSettings(concurrency=1), policy=server.policy)
        conc = EndpointGenerator(server.url, "m", GenerationSettings(concurrency=args.concurrency),
                                 policy=server.policy)
        seq_s, _ = timed(lambda: seq.generate(prompts))
        conc_s, out = timed(lambda: conc.generate(prompts))
        assert all(g.text == "ok" for g in out)
    print(f"\nendpoint: {len(prompts)} requests, {args.latency * 1000:.0f} ms server latency each")
    print(f"one at a time:   {seq_s:8.2f} s")
    print(f"{args.concurrency:>3} in flight:   {conc_s:8.2f} s  (max seen by the server: {server.max_in_flight})")
    print(f"RATIO concurrent vs sequential requests: {seq_s / conc_s:.1f}x")
    return seq_s / conc_s


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", nargs="?", type=int, default=64, help="prompts (default 64)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=GenerationSettings().max_new_tokens,
                   help="new tokens per prompt (default: the launch form's default)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--model", default="", help="a model folder (default: the tiny model, built if missing)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--skip-endpoint", action="store_true")
    p.add_argument("--smoke", action="store_true", help="a size that runs in seconds (the test suite runs it)")
    args = p.parse_args()
    if args.smoke:
        args.n, args.batch_size, args.max_new_tokens = 4, 2, 8
        args.requests, args.concurrency, args.latency = 4, 2, 0.01
    ratio = bench_local(args)
    if not args.skip_endpoint:
        bench_endpoint(args)
    return 0 if ratio >= 4 or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
