"""The shared third-party fixtures that carry tool calls, as canonical trajectories (test helper).

Uses the project's importers (``annotate/formats/``). BFCL questions carry no assistant turn, so
the gold call of ``possible_answer`` (first acceptable value of each argument) is added as one.
A few records per fixture keep the suite fast.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from annotate.trajectory import Step, Trajectory

SHARED = (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()
FIXTURES = SHARED / "fixtures"
TOKENIZERS = SHARED / "tokenizers"

TOOL_CALL_FIXTURES = ("tau_bench", "toolrl", "toucan", "hermes", "bfcl")


def fixture_path(*parts: str) -> Path:
    p = FIXTURES.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the shared third-party fixtures at {p} (absent in this checkout)")
    return p


def tokenizer_path(name: str) -> Path:
    p = TOKENIZERS / name
    if not p.exists():
        pytest.skip(f"needs the shared tokenizer at {p} (absent in this checkout)")
    return p


def load(name: str, n: int = 2) -> list[Trajectory]:
    """The first ``n`` records of a fixture that carry tool calls, as canonical trajectories."""
    out = [t for t in _load_all(name) if any(s.kind == "tool_call" for _, _, s in t.steps())]
    return out[:n]


@lru_cache(maxsize=None)
def _load_all(name: str) -> tuple[Trajectory, ...]:
    loader = {"tau_bench": _tau, "toolrl": _toolrl, "toucan": _toucan, "hermes": _hermes, "bfcl": _bfcl}[name]
    return tuple(loader())


def _tau():
    from annotate.formats.tau_bench import to_trajectory

    tools = json.loads(fixture_path("tau_bench", "airline_tools.json").read_text())
    records = json.loads(fixture_path("tau_bench", "gpt-4o-airline_trial0.json").read_text())
    return [to_trajectory(r, tools=tools) for r in records[:6]]


def _toolrl():
    from annotate.formats.toolrl import to_trajectory

    records = json.loads(fixture_path("toolrl", "rlla_sft_first200.json").read_text())
    return [to_trajectory(r) for r in records[:6]]


def _toucan():
    from annotate.formats.messages import to_trajectory

    records = json.loads(fixture_path("adp", "toucan_1_5m", "sample_raw.json").read_text())
    return [to_trajectory(r) for r in records]


def _hermes():
    from annotate.formats.toolrl import to_trajectory

    records = json.loads(fixture_path("hermes_fc", "few_shot.json").read_text())
    return [to_trajectory(r) for r in records]


def _bfcl():
    from annotate.formats.bfcl import to_trajectory

    questions = [json.loads(line) for line in fixture_path("bfcl", "BFCL_v4_multiple.json").read_text().splitlines()[:4]]
    answers = {a["id"]: a for a in (json.loads(line) for line in
               fixture_path("bfcl", "possible_answer", "BFCL_v4_multiple.json").read_text().splitlines()[:4])}
    out = []
    for q in questions:
        t = to_trajectory(q, answer=answers.get(q["id"]))
        for i, gold in enumerate(answers[q["id"]]["ground_truth"]):
            (fn, args), = gold.items()
            values = {k: next((v for v in vs if v != ""), None) for k, vs in args.items()}
            t.turns[-1].steps.append(Step(kind="tool_call", name=fn, call_id=f"gold_{i}",
                                          arguments={k: v for k, v in values.items() if v is not None}))
        out.append(t)
    return out


def trl_prepare(records: list[dict], tokenizer, chat_template: str, max_length: int | None = None) -> list[dict]:
    """TRL's own SFTTrainer preprocessing (``_prepare_dataset``) with ``assistant_only_loss=True``.

    The trainer object is built without a model: dataset preparation only reads the tokenizer, the
    chat template and whether the loss is completion-only (set as ``SFTTrainer.__init__`` sets them).
    Rows TRL drops (all labels cut by ``max_length``) are absent from the result, as in training;
    each kept row carries its input position as ``row``.
    """
    import copy
    import tempfile

    from datasets import Dataset, Features, Json, List, Value
    from trl import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = chat_template
    trainer = SFTTrainer.__new__(SFTTrainer)
    trainer._tokenizer = tok
    trainer.chat_template = None  # the template has {% generation %} markers: TRL uses it as is
    columns = [k for k in ("messages", "prompt", "completion", "tools") if k in records[0]]
    trainer.completion_only_loss = "prompt" in columns
    ds = Dataset.from_list([{**{k: r[k] for k in columns}, "row": i} for i, r in enumerate(records)],
                           features=Features({**{k: List(Json()) for k in columns}, "row": Value("int64")}))
    args = SFTConfig(output_dir=tempfile.mkdtemp(), assistant_only_loss=True, max_length=max_length, report_to=[],
                     use_cpu=True, bf16=False, disable_tqdm=True)
    out = trainer._prepare_dataset(ds, tok, args, packing=False, formatting_func=None, dataset_name="train")
    return [{"row": r["row"], "input_ids": r["input_ids"], "labels": r["labels"]} for r in out]
