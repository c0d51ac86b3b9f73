"""Evaluate one model on one eval set: ``python -m evaluation.runner JOB.json``.

The worker (``evaluation.jobs.run_eval_job``) writes ``JOB.json`` and ``items.jsonl`` into the
run folder and starts this script in a process group of its own; so does ``manage.py evaluate``.
Read it top to bottom:

1. ``EvalConfig.load``: the job file (the model, ``GenerationSettings``, the items file).
2. ``build_generator``: a local model folder (+ LoRA adapter) or an OpenAI-compatible endpoint.
3. ``main``: items in chunks → generate (with replay) → parse → score → one JSON line per item
   in ``results.jsonl`` (multi-turn items are played against their environments instead,
   ``evaluation.multiturn``); progress events in ``events.jsonl`` (``jobs.runner_io.EventLog``).

The worker tails both files into the database, so the dashboard fills in while this runs. This
module imports no Django, and torch / transformers only for a local model: an endpoint run
starts in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from evaluation.generate import (EndpointGenerator, GenerationSettings, Generation, ItemOutput, LocalGenerator,
                                 generate_items, parse_generation)
from evaluation.environments.sandbox import Limits
from evaluation.items import EvalItem
from evaluation.multiturn import MultiTurnItem, item_from_document, play_items
from evaluation.outbound import OutboundPolicy
from evaluation.scoring import Reference, score_output
from evaluation.parse import ParsedOutput, trl_response_template
from jobs.runner_io import EventLog, JobFile, command_for, run_main
from training.chat_templates import identify

EVENTS_FILE = "events.jsonl"
RESULTS_FILE = "results.jsonl"
ITEMS_FILE = "items.jsonl"
LOG_FILE = "eval.log"
MODEL_KINDS = ("folder", "endpoint")


@dataclass
class ModelSpec:
    """Which model answers: a local folder (optionally a base model + LoRA adapter) or an endpoint."""

    kind: str = "folder"
    path: str = ""  # model folder; with an adapter, the base model it was trained from
    adapter: str = ""  # a peft (LoRA) adapter folder
    merge: bool = False  # merge the adapter into the base weights before generating
    url: str = ""  # endpoint base URL (http://host:8000/v1)
    name: str = ""  # the endpoint's model name
    api_key_env: str = ""  # the environment variable holding the endpoint's API key

    def describe(self) -> str:
        if self.kind == "endpoint":
            return f"{self.name or 'default model'} at {self.url}"
        if self.adapter:
            return f"{self.path} + adapter {self.adapter}" + (" (merged)" if self.merge else "")
        return self.path


@dataclass
class EvalConfig(JobFile):
    """Everything one evaluation needs: written by the worker as ``job.json`` in the run folder."""

    model: ModelSpec
    output_dir: str
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    items_file: str = ""  # JSON Lines of EvalItem dicts (default: items.jsonl in the run folder)
    run_id: int | None = None
    # Items per generate call, and so how often progress is reported. 0: one local batch (a local
    # model generates batch by batch anyway, so the page counts up with every batch), or 4 x
    # concurrency requests for an endpoint (keeps the request pool full between reports).
    chunk: int = 0
    trust_remote_code: bool = False
    # the endpoint allowlist when the run was prepared (evaluation.outbound.AllowRule dicts): an
    # endpoint's every request is checked against it here, where the connections are made
    endpoint_allowlist: list = field(default_factory=list)
    # multi-turn items: each episode's limits (evaluation.environments.sandbox.Limits) and the
    # environment classes an admin registered (STUDIO_ENVIRONMENT_CLASSES), as the worker read them
    environment_limits: dict = field(default_factory=dict)
    environment_classes: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalConfig":
        d = dict(d)
        d["model"] = ModelSpec(**d.get("model", {}))
        d["settings"] = GenerationSettings.from_dict(d.get("settings"))
        return cls(**d)

    @property
    def items_path(self) -> Path:
        return Path(self.items_file) if self.items_file else self.run_dir / ITEMS_FILE

    def chunk_size(self) -> int:
        if self.chunk:
            return self.chunk
        s = self.settings
        return 4 * s.concurrency if self.model.kind == "endpoint" else s.batch_size


def runner_command(job_file: str | Path, python: str = sys.executable) -> list[str]:
    """The command the worker runs (cwd: the app's root)."""
    return command_for("evaluation.runner", job_file, python)


def read_items(path: str | Path) -> list[EvalItem | MultiTurnItem]:
    with open(path, encoding="utf-8") as fh:
        return [item_from_document(json.loads(line)) for line in fh if line.strip()]


def write_items(items: list[EvalItem | MultiTurnItem], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps(it.to_dict(), ensure_ascii=False) + "\n")
    return path


def build_generator(cfg: EvalConfig):
    m = cfg.model
    if m.kind == "endpoint":
        key = os.environ.get(m.api_key_env, "") if m.api_key_env else ""
        return EndpointGenerator(m.url, m.name, cfg.settings, api_key=key,
                                 policy=OutboundPolicy.from_list(cfg.endpoint_allowlist))
    if m.kind != "folder":
        raise ValueError(f"unknown model kind {m.kind!r}; use one of {', '.join(MODEL_KINDS)}")
    return LocalGenerator(m.path, cfg.settings, adapter=m.adapter, merge=m.merge,
                          trust_remote_code=cfg.trust_remote_code)


def response_template_for(cfg: EvalConfig, generator) -> tuple[dict | None, str]:
    """The response template the outputs are parsed with, and where it came from.

    The tokenizer's own ``response_template`` first; else TRL's for the chat template's family
    (identified by its text); else none, and the fallbacks read the common formats.
    """
    if cfg.settings.response_parser != "auto" or not isinstance(generator, LocalGenerator):
        return None, "fallbacks"
    own = getattr(generator.tokenizer, "response_template", None)
    if isinstance(own, dict):
        return own, "the tokenizer's response template"


    known = identify(generator.tokenizer.chat_template or "")
    if known is None:
        return None, "fallbacks (the chat template is not one TRL ships)"
    template = trl_response_template(known.family)
    if template is None:
        return None, f"fallbacks (TRL has no response template for {known.family})"
    return template, f"TRL's {known.family} response template"


def score_item(item: EvalItem, out: ItemOutput) -> dict:
    """One line of ``results.jsonl``: the output, its score against the item's reference and, for a
    replayed episode that reached an answer, the answer's score against the turn's final answer."""
    line = out.to_dict()
    line["case_types"] = item.case_types
    if out.error:  # the request failed: the environment's fault, not scored
        line["score"] = None
        return line
    parsed = ParsedOutput.from_dict(out.parsed)
    line["score"] = score_output(parsed, Reference.from_dict(item.reference)).to_dict()
    ep = line["episode"]
    if ep and ep.get("ended") == "answered" and item.final_reference and len(ep["steps"]) > 1:
        last = ParsedOutput.from_dict(ep["steps"][-1]["parsed"])
        ep["final_score"] = score_output(last, Reference.from_dict(item.final_reference)).to_dict()
    return line


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def evaluate(cfg: EvalConfig, events: EventLog) -> dict[str, Any]:
    """Generate, parse and score every item, appending to ``results.jsonl``; return the totals."""
    items = read_items(cfg.items_path)
    events.write("status", message=f"Loading {cfg.model.describe()}")
    generator = build_generator(cfg)
    template, parser = response_template_for(cfg, generator)
    events.write("begin", total=len(items), parser=parser, model=cfg.model.describe())

    def parse(g: Generation, item: EvalItem) -> ParsedOutput:
        return parse_generation(g, item.tools, template, prefix=g.prompt_text if template else "")

    done, failed, started = 0, 0, time.perf_counter()
    with open(cfg.run_dir / RESULTS_FILE, "a", encoding="utf-8") as fh:
        for batch in chunks(items, cfg.chunk_size()):
            single = [it for it in batch if isinstance(it, EvalItem)]
            played = [it for it in batch if isinstance(it, MultiTurnItem)]
            lines = {id(item): score_item(item, out)
                     for item, out in zip(single, generate_items(single, generator, cfg.settings, parse))}
            if played:  # multi-turn: played against their environments (evaluation.multiturn)
                lines.update(zip(map(id, played), play_items(
                    played, generator, parse, max_steps=cfg.settings.max_steps,
                    limits=Limits.from_dict(cfg.environment_limits), allowed=cfg.environment_classes)))
            for item in batch:  # in item order: the worker numbers the lines
                line = lines[id(item)]
                failed += bool(line.get("error"))
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            fh.flush()
            done += len(batch)
            events.write("progress", done=done, total=len(items), failed=failed)
    seconds = time.perf_counter() - started
    return {"items": done, "failed_requests": failed, "seconds": round(seconds, 3),
            "items_per_second": round(done / seconds, 3) if seconds > 0 else None, "parser": parser}


def main(argv: list[str] | None = None) -> int:
    return run_main(argv, module="evaluation.runner", load=EvalConfig.load, events_file=EVENTS_FILE, work=evaluate)


if __name__ == "__main__":
    sys.exit(main())
