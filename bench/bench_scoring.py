"""Scoring benchmark: parse and score 10k model outputs against their references, then aggregate.

The outputs are a realistic mix over BFCL simple / multiple / irrelevance references (from
../shared/fixtures, or synthetic weather items where absent): gold calls as ``<tool_call>`` JSON,
Python-style and bare JSON, some with reasoning, plus wrong values, missing arguments, malformed
JSON, plain answers and repeated calls. Prints the seconds taken (target <= 10 s) against two
baselines measured in the same run on the same outputs:

- reading them: ``json.loads`` of each output as stored in a JSONL results file;
- a naive parse: a regex for ``<tool_call>`` bodies and ``json.loads`` of each.

Most of the first pass is compiling one jsonschema validator per distinct tool schema (BFCL
gives every item its own tools); a second pass over the same outputs shows the steady state.

``--with-template`` also times parsing through TRL's qwen3 response template (transformers'
parser; importing trl is not timed).

    python bench/bench_scoring.py [N] [--with-template]   # full size: N = 10,000 (about 10 s)
    python bench/bench_scoring.py --smoke                 # 300 outputs: a few seconds, checks it runs
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.parse import parse_output, trl_response_template  # noqa: E402
from evaluation.scoring import (  # noqa: E402
    Reference,
    aggregate,
    breakdown,
    confusion,
    label_table,
    reference_from_bfcl,
    reference_output,
    score_output,
    when2call_table,
)

args = [a for a in sys.argv[1:] if not a.startswith("--")]
SMOKE = "--smoke" in sys.argv
N = int(args[0]) if args else 300 if SMOKE else 10_000
WITH_TEMPLATE = "--with-template" in sys.argv
BFCL = ROOT / ".." / "shared" / "fixtures" / "bfcl"


def load_references() -> list[Reference]:
    refs = []
    for category in ("simple_python", "multiple", "irrelevance"):
        path = BFCL / f"BFCL_v4_{category}.json"
        if not path.exists():
            continue
        answers_path = BFCL / "possible_answer" / f"BFCL_v4_{category}.json"
        answers = {}
        if answers_path.exists():
            answers = {a["id"]: a for a in map(json.loads, answers_path.read_text().splitlines())}
        for line in path.read_text().splitlines():
            q = json.loads(line)
            refs.append(reference_from_bfcl(q, answers.get(q["id"])))
    if refs:
        return refs
    print("(BFCL fixtures absent: synthetic weather references)")
    weather = {"name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}
    cities = ["Paris", "Rome", "Oslo", "Lima", "Kyoto", "Cairo", "Quito", "Perth"]
    return [Reference(item_id=f"w{i}", tools=[weather], calls=[{"name": "get_weather", "arguments": {
        "city": c, "days": i % 7 + 1}}], user_text=f"Weather in {c} for {i % 7 + 1} days?") for i, c in enumerate(cities * 50)]


def make_output(ref: Reference, rng: random.Random) -> str:
    roll = rng.random()
    think = "<think>\nThe user wants this; I will use the matching tool.\n</think>\n\n" if rng.random() < 0.3 else ""
    if ref.decision != "call":
        return think + ("I'm sorry, none of the available tools can help with that." if roll < 0.7
                        else '<tool_call>\n{"name": "%s", "arguments": {}}\n</tool_call>' % ref.tools[0]["name"])
    call = ref.calls[0]
    if roll < 0.40:
        return think + reference_output(ref, "tool_call") + "<|im_end|>"
    if roll < 0.55:
        return reference_output(ref, "python")
    if roll < 0.65:
        return reference_output(ref, "json")
    if roll < 0.75:  # a wrong value
        args = dict(call["arguments"])
        if args:
            key = rng.choice(sorted(args))
            args[key] = "something else"
        return think + '<tool_call>\n%s\n</tool_call>' % json.dumps({"name": call["name"], "arguments": args})
    if roll < 0.80:  # a missing argument
        args = dict(list(call["arguments"].items())[1:])
        return '<tool_call>\n%s\n</tool_call>' % json.dumps({"name": call["name"], "arguments": args})
    if roll < 0.85:  # malformed JSON
        return '<tool_call>\n{"name": "%s", "arguments": {\n</tool_call>' % call["name"]
    if roll < 0.95:
        return think + "I think the answer is probably 42, no tool needed."
    return reference_output(ref, "tool_call") * 2  # a repeated call


def main() -> None:
    rng = random.Random(7)
    pool = load_references()
    refs = [pool[i % len(pool)] for i in range(N)]
    outputs = [make_output(r, rng) for r in refs]
    stored = [json.dumps({"output": o}) for o in outputs]  # as a JSONL results file holds them

    t0 = time.perf_counter()
    loaded = [json.loads(s)["output"] for s in stored]
    t_load = time.perf_counter() - t0

    body_re = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
    t0 = time.perf_counter()
    naive = 0
    for o in loaded:
        for body in body_re.findall(o):
            try:
                json.loads(body)
                naive += 1
            except ValueError:
                pass
    t_naive = time.perf_counter() - t0

    t0 = time.perf_counter()
    parsed = [parse_output(o) for o in loaded]
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = [score_output(p, r) for p, r in zip(parsed, refs)]
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    aggregate(scores), breakdown(scores), label_table(scores), confusion(scores), when2call_table(scores)
    t_agg = time.perf_counter() - t0
    total = t_parse + t_score + t_agg

    # The same outputs again: jsonschema validators of the tools are compiled by now (once per
    # distinct tool schema and process), so this is the steady-state rate.
    t0 = time.perf_counter()
    for o, r in zip(loaded, refs):
        score_output(parse_output(o), r)
    t_warm = time.perf_counter() - t0

    correct = sum(s.correct for s in scores)
    print(f"{N} outputs over {len(pool)} references; {correct} scored correct ({correct / N:.0%})")
    print(f"  baseline, json.loads of the stored outputs: {t_load:8.3f} s")
    print(f"  baseline, regex + json.loads of calls:      {t_naive:8.3f} s")
    print(f"  parse:     {t_parse:8.3f} s")
    print(f"  score:     {t_score:8.3f} s")
    print(f"  aggregate: {t_agg:8.3f} s")
    print(f"  total:     {total:8.3f} s  (target <= 10 s: {'met' if total <= 10 else 'MISSED'})")
    print(f"  ratio to json.loads: {total / t_load:,.0f}x; to the naive parse: {total / t_naive:,.1f}x;"
          f" {N / total:,.0f} outputs/s")
    print(f"  again, tool validators compiled: parse + score {t_warm:.3f} s, {N / t_warm:,.0f} outputs/s")

    # What the first pass spent compiling validators (annotate.findings checks each tool schema
    # against the JSON Schema meta-schema once per process).
    from annotate.findings import _validator, argument_errors

    called = {json.dumps(t["parameters"], sort_keys=True) for r, p in zip(refs, parsed) for c in p.tool_calls
              for t in r.tools if t["name"] == c.name}
    _validator.cache_clear()
    t0 = time.perf_counter()
    for schema in called:
        argument_errors(json.loads(schema), {})
    t_compile = time.perf_counter() - t0
    print(f"  of the first pass, compiling validators for the {len(called)} distinct tool schemas called:"
          f" {t_compile:.3f} s")

    if WITH_TEMPLATE:
        template = trl_response_template("qwen3")
        if template is None:
            print("  (trl not available: no template timing)")
            return
        t0 = time.perf_counter()
        via = [parse_output(o, template) for o in loaded]
        t_template = time.perf_counter() - t0
        same = sum(
            [(c.name, c.arguments) for c in a.tool_calls] == [(c.name, c.arguments) for c in b.tool_calls]
            for a, b in zip(via, parsed)
        )
        print(f"  parse through TRL's qwen3 response template: {t_template:8.3f} s"
              f" ({t_template / t_parse:.1f}x the fallback parser; same calls on {same}/{N})")


if __name__ == "__main__":
    main()
