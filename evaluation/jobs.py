"""Evaluation jobs: launching, running (the worker side), dashboards' numbers, and
turning failures into annotation work or preference pairs.

The job mechanics are the ``jobs`` package's (``claim``, ``beat``, ``finish``,
``request_cancel``, ``sweep_stale``, process groups, the supervision loop): an ``EvalRun`` row is
the single source of truth the pages read. ``run_eval_job`` claims the row, writes ``job.json``
and ``items.jsonl`` into the run folder, starts ``python -m evaluation.runner`` in its own process
group, and while it runs ``EvalMonitor`` tails ``results.jsonl`` into ``EvalItemResult`` rows and
``events.jsonl`` into the row's progress, heartbeating and honouring a cancel.

Every function takes the acting user and leaves the permission check to its caller (views and
API ask ``annotate.permissions``; the CLI acts as an operator).

Eval sets are ``evaluation.eval_sets``; saving a result's draft trajectory or pair is
``evaluation.to_annotation``; multi-turn's Django side is ``evaluation.multiturn_jobs``.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.db import transaction

from annotate.formats.messages import to_trajectory
from annotate.pairs import FORMAT, guess_category
from annotate.permissions import author_of
from annotate.trajectory import Step
from evaluation import multiturn_jobs
from evaluation import runner
from evaluation.generate import GenerationSettings, chat_completions_url
from evaluation.items import EvalItem, steps_from_output, steps_from_reference
from evaluation.multiturn import MultiTurnItem, is_multi_turn, item_from_document, multi_turn_table
from evaluation.models import AllowedEndpoint, EvalItemResult, EvalRun, EvalSet, EvalSetItem
from evaluation.outbound import OutboundPolicy, OutboundRefused, parse_allowlist
from evaluation.to_annotation import save_draft_pair, save_draft_trajectory
from evaluation.scoring import (METRICS, ItemScore, aggregate, breakdown, checker_versions, confusion, label_table,
                                mean_interval, rate, when2call_table)
from training.jobs import LaunchError  # one launch error for training and evaluation alike
from training.models import TrainingJob, trust_remote_code_for
from training.runner import FINAL_DIR
from training.roots import PathError, confined_model, model_error
from jobs import queue
from jobs.processes import HOST, FileTail, last_lines
from jobs.rows import JobStatus, claim, fail_before_start
from jobs.supervisor import Monitor, run_supervised
from jobs.sweep import sweep_stale

logger = logging.getLogger(__name__)


# --- launching ---------------------------------------------------------------------------------

def runs_root() -> Path:
    return Path(getattr(settings, "EVAL_RUNS_DIR", settings.DATA_DIR / "eval-runs"))


def final_dir(job: TrainingJob) -> Path:
    return Path(job.output_dir) / FINAL_DIR


def endpoint_policy() -> OutboundPolicy:
    """The endpoint allowlist as it stands: the admins' entries (``AllowedEndpoint``) and the
    ``STUDIO_ENDPOINT_ALLOWLIST`` setting. An entry that does not read (a row written past the
    admin's validation, a setting ``manage.py check`` reports) allows nothing and is logged."""
    rules = []
    for row in AllowedEndpoint.objects.all():
        try:
            rules.append(row.rule())
        except ValueError as exc:
            logger.error("Allowed endpoint #%s %r is ignored: %s", row.pk, row.pattern, exc)
    try:
        rules += parse_allowlist(getattr(settings, "ENDPOINT_ALLOWLIST", ""))
    except ValueError as exc:
        logger.error("STUDIO_ENDPOINT_ALLOWLIST is ignored: %s", exc)
    return OutboundPolicy(tuple(rules))


def endpoint_url_error(url: str, policy: OutboundPolicy | None = None) -> str | None:
    """Why an evaluation may not call ``url``, or None: not a plain http(s) URL, not on the
    allowlist, or its host resolves (here) to an address the allowlist does not allow.

    A host this machine cannot resolve passes: the eval workers may see names the web server does
    not, and the runner resolves and checks again on every connection.
    """
    policy = policy if policy is not None else endpoint_policy()
    try:
        policy.resolve(policy.allow(url))
    except OutboundRefused as exc:
        return str(exc)
    except OSError:  # not resolved here
        return None
    return None


def launch_errors(project, eval_set: EvalSet | None, model_source: str, *, model_path: str = "",
                  training_job: TrainingJob | None = None, endpoint_url: str = "",
                  gen: GenerationSettings | None = None) -> dict[str, str]:
    """Every problem with a launch, by form field (empty: it can run)."""
    errors: dict[str, str] = {}
    if eval_set is None:
        errors["eval_set"] = "Choose an eval set."
    elif eval_set.project_id != project.pk:
        errors["eval_set"] = "That eval set belongs to another project."
    elif not eval_set.item_count:
        errors["eval_set"] = "That eval set is empty."
    if model_source == EvalRun.FOLDER:
        if problem := model_error(model_path):
            errors["model_path"] = problem
    elif model_source == EvalRun.TRAINING_JOB:
        if training_job is None:
            errors["training_job"] = "Choose a training run."
        elif training_job.project_id != project.pk:
            errors["training_job"] = "That training run belongs to another project."
        elif training_job.status != JobStatus.SUCCEEDED:
            errors["training_job"] = f"Run #{training_job.pk} has not succeeded; evaluate a finished run."
        elif not final_dir(training_job).is_dir():
            errors["training_job"] = f"Run #{training_job.pk} has no final model folder ({final_dir(training_job)})."
    elif model_source == EvalRun.ENDPOINT:
        if problem := endpoint_url_error(endpoint_url):
            errors["endpoint_url"] = problem
    else:
        errors["model_source"] = f"Choose one of: {', '.join(k for k, _ in EvalRun.MODEL_SOURCES)}."
    if gen is not None:
        errors.update({k: v for k, v in gen.errors().items() if k not in errors})
    return errors


def default_run_name(eval_set: EvalSet, model_label: str) -> str:
    return f"{Path(model_label.rstrip('/')).name or model_label} · {eval_set}"[:200]


def launch_eval(*, project, eval_set: EvalSet | None, model_source: str, gen: GenerationSettings,
                model_path: str = "", training_job: TrainingJob | None = None, merge_adapter: bool = False,
                endpoint_url: str = "", endpoint_model: str = "", limit: int = 0, name: str = "", user=None,
                enqueue: bool = True) -> EvalRun:
    """Validate, create a queued run and (after commit) send it to the ``eval`` queue.

    The caller checks the role (``require_role(user, project, "lead")``); ``user=None`` is the CLI.
    """
    errors = launch_errors(project, eval_set, model_source, model_path=model_path, training_job=training_job,
                           endpoint_url=endpoint_url, gen=gen)
    if errors:
        raise LaunchError(errors)
    model_path = model_path.strip()
    if model_source == EvalRun.FOLDER:
        model_path = confined_model(model_path)  # a folder as its real path: workers run elsewhere (cwd)
    total = min(limit, eval_set.item_count) if limit else eval_set.item_count
    with transaction.atomic():
        run = EvalRun.objects.create(
            project=project, eval_set=eval_set, model_source=model_source,
            model_path=model_path if model_source == EvalRun.FOLDER else "",
            training_job=training_job if model_source == EvalRun.TRAINING_JOB else None,
            merge_adapter=merge_adapter, endpoint_url=endpoint_url.strip() if model_source == EvalRun.ENDPOINT else "",
            endpoint_model=endpoint_model.strip(), settings=gen.to_dict(), limit=limit, total_items=total,
            created_by=author_of(user), message="Waiting for a worker on the eval queue")
        if not name.strip():
            name = default_run_name(eval_set, run.model_label)
        run.name = name.strip()[:200]
        run.output_dir = str(runs_root() / f"{run.pk}-{run.created_at:%Y%m%d-%H%M%S}")
        run.save(update_fields=["name", "output_dir"])
        if enqueue:
            enqueue_eval(run)
    return run


def enqueue_eval(run: EvalRun) -> None:
    transaction.on_commit(lambda: queue.send(EvalRun, run.pk))  # evaluation.tasks.eval_run


# --- running (the worker side) -----------------------------------------------------------------

def model_spec_for(run: EvalRun) -> runner.ModelSpec:
    """The model of a run; a training run's LoRA output loads on its base model with peft."""
    if run.model_source == EvalRun.ENDPOINT:
        return runner.ModelSpec(kind="endpoint", url=run.endpoint_url, name=run.endpoint_model,
                                api_key_env=getattr(settings, "EVAL_ENDPOINT_API_KEY_ENV", "EVAL_ENDPOINT_API_KEY"))
    if run.model_source == EvalRun.TRAINING_JOB:
        job = run.training_job
        if job is None:
            raise ValueError("the training run of this evaluation was deleted")
        folder = final_dir(job)
        adapter_config = folder / "adapter_config.json"
        if adapter_config.is_file():
            base = json.loads(adapter_config.read_text()).get("base_model_name_or_path") or job.base_model
            if not Path(base).is_dir() and Path(job.base_model).is_dir():
                base = job.base_model
            return runner.ModelSpec(kind="folder", path=base, adapter=str(folder), merge=run.merge_adapter)
        return runner.ModelSpec(kind="folder", path=str(folder))
    return runner.ModelSpec(kind="folder", path=run.model_path)


def run_items(run: EvalRun) -> list[tuple[EvalSetItem, EvalItem | MultiTurnItem]]:
    qs = run.eval_set.items.order_by("position")
    if run.limit:
        qs = qs[:run.limit]
    return [(row, item_from_document(row.document)) for row in qs]


def remote_code_model(run: EvalRun) -> str:
    """The model whose admin grant decides ``trust_remote_code`` for ``run`` ("" for an endpoint):
    a training run's output carries its base model's code, so the base model's grant counts."""
    if run.model_source == EvalRun.FOLDER:
        return run.model_path
    if run.model_source == EvalRun.TRAINING_JOB and run.training_job is not None:
        return run.training_job.base_model
    return ""


def config_for(run: EvalRun) -> runner.EvalConfig:
    # Checked again in the worker: the row may predate the roots, or the roots may have changed.
    if run.model_source == EvalRun.FOLDER and (problem := model_error(run.model_path)):
        raise PathError(problem, "model_path")
    return runner.EvalConfig(model=model_spec_for(run), output_dir=run.output_dir,
                             settings=GenerationSettings.from_dict(run.settings), run_id=run.pk,
                             trust_remote_code=trust_remote_code_for(remote_code_model(run)),
                             environment_limits=multiturn_jobs.environment_limits(),
                             environment_classes=multiturn_jobs.environment_classes())


def endpoint_allowlist_for(run: EvalRun) -> list[dict]:
    """The allowlist entries that allow an endpoint run's URL now, for its job file (the runner
    checks every connection against them); :class:`OutboundRefused` when none does any longer (an
    admin removed the entry since the launch, or the row was written past the launch checks)."""
    if run.model_source != EvalRun.ENDPOINT:
        return []
    policy = endpoint_policy()
    target = policy.allow(chat_completions_url(run.endpoint_url))
    return [r.to_dict() for r in policy.rules if r.matches(target)]


class EvalMonitor(Monitor):
    """Tails the run's results into ``EvalItemResult`` rows and its events into the row's progress."""

    model = EvalRun
    process = "evaluation process"
    noun = "run"
    log_name = runner.LOG_FILE

    def __init__(self, run: EvalRun, set_items: list[EvalSetItem], echo: Callable[[str], None] | None = None):
        super().__init__(run, echo)
        self.run = run
        self.results = FileTail(self.run_dir / runner.RESULTS_FILE)
        self.events = FileTail(self.run_dir / runner.EVENTS_FILE)
        self.set_items = set_items
        self.done = run.results.count()
        self.failed = run.results.exclude(error="").count()
        self.total = run.total_items or len(set_items)
        self.message = ""
        self.totals: dict = {}
        self.summary: dict = {}

    def ingest(self) -> None:
        """Read the new results and events; they reach the row with the next heartbeat."""
        rows = []
        for line in self.results.read_lines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            position = self.done + len(rows)
            rows.append(result_row(self.run.pk, position, self.set_items[position] if position < len(self.set_items)
                                   else None, r))
        if rows:
            EvalItemResult.objects.bulk_create(rows, ignore_conflicts=True)
            self.done += len(rows)
            self.failed += sum(1 for r in rows if r.error)
        for line in self.events.read_lines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("event")
            if kind == "status":
                self.message = ev.get("message", "")[:500]
            elif kind == "begin":
                self.total = int(ev.get("total") or self.total)
                model, parser = ev.get("model", "the model"), ev.get("parser", "?")
                self.message = f"Generating with {model} (parsing: {parser})"[:500]
            elif kind == "progress":
                self.message = f"Evaluated {ev.get('done')} of {ev.get('total')} items"
            elif kind == "end":
                self.ended, self.totals = True, ev.get("results") or {}
            elif kind == "error":
                self.error = ev.get("message", "")
            else:
                continue
            if self.echo and kind in ("status", "begin", "progress"):
                self.echo(self.message)

    def fields(self) -> dict:
        out = {"done_items": self.done, "failed_items": self.failed, "total_items": self.total,
               "log_tail": last_lines(self.log_path)}
        if self.total:
            out["progress"] = round(min(1.0, self.done / self.total), 4)
        if self.message:
            out["message"] = self.message
        return out

    def final_fields(self) -> dict:
        self.summary = summarize(EvalRun.objects.get(pk=self.pk))
        return {**self.fields(), "summary": self.summary, "checker_versions": self.summary["checkers"]}

    def success_fields(self) -> dict:
        return {"summary": {**self.summary, "timing": self.totals}, "progress": 1.0,
                "message": f"Finished: {self.done} items"}

    def cancelled_message(self) -> str:
        return f"Cancelled after {self.done} of {self.total} items"

    def failed_message(self) -> str:
        return f"Failed after {self.done} of {self.total} items"


def result_row(run_id: int, position: int, set_item: EvalSetItem | None, r: dict) -> EvalItemResult:
    """An ``EvalItemResult`` from one line of ``results.jsonl`` (a multi-turn line carries its
    verdict in ``correct`` and ``labels``; its ``episode`` holds the turns)."""
    score = r.get("score")
    if r.get("mode") == "multi_turn":
        return EvalItemResult(
            run_id=run_id, set_item=set_item, position=position, item_id=str(r.get("item_id", ""))[:400],
            case_types=r.get("case_types") or [], prompt_text=r.get("prompt_text", ""), raw_output=r.get("raw", ""),
            parsed=r.get("parsed") or {}, score=None, labels=r.get("labels") or [], correct=r.get("correct"),
            error=r.get("error", ""), episode=r.get("episode"), seconds=float(r.get("seconds") or 0.0),
            new_tokens=int(r.get("new_tokens") or 0))
    return EvalItemResult(
        run_id=run_id, set_item=set_item, position=position, item_id=str(r.get("item_id", ""))[:400],
        case_types=r.get("case_types") or [], prompt_text=r.get("prompt_text", ""), raw_output=r.get("raw", ""),
        parsed=r.get("parsed") or {}, score=score, labels=(score or {}).get("labels", []),
        decision=(score or {}).get("decision", ""), gold_decision=(score or {}).get("gold_decision", ""),
        correct=bool((score or {}).get("metrics", {}).get("correct")) if score else None, error=r.get("error", ""),
        episode=r.get("episode"), seconds=float(r.get("seconds") or 0.0), new_tokens=int(r.get("new_tokens") or 0))


def run_eval_job(run_id: int, *, echo: Callable[[str], None] | None = None, poll: float = 0.5) -> str:
    """Claim ``run_id`` and run it to the end in a supervised subprocess; return the final status
    ("not claimed" when the row was not queued)."""
    if not claim(EvalRun, run_id, worker_host=HOST, message="Starting the evaluation process"):
        return "not claimed"
    run = EvalRun.objects.select_related("eval_set", "training_job").get(pk=run_id)
    run_dir = Path(run.output_dir)
    try:
        pairs = run_items(run)
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (runner.RESULTS_FILE, runner.EVENTS_FILE):
            (run_dir / stale).unlink(missing_ok=True)
        cfg = config_for(run)
        cfg.endpoint_allowlist = endpoint_allowlist_for(run)
        runner.write_items([it for _, it in pairs], cfg.items_path)
        path = cfg.write(run_dir / "job.json")
    except Exception as exc:  # a broken row or an unwritable data dir: say so on the row
        return fail_before_start(EvalRun, run_id, exc, "Failed before generation started")
    EvalRun.objects.filter(pk=run_id).update(total_items=len(pairs))
    run.total_items = len(pairs)
    monitor = EvalMonitor(run, [row for row, _ in pairs], echo)
    return run_supervised(monitor, runner.runner_command(path), poll=poll)


def sweep_stale_runs(timeout: float) -> list[int]:
    return sweep_stale(EvalRun, timeout, marker="evaluation.runner")


# --- the dashboard's numbers -------------------------------------------------------------------

def scores_of(run: EvalRun) -> tuple[list[ItemScore], list[dict]]:
    """The scored items of a run and their replayed episodes."""
    scores, episodes = [], []
    for score, episode in run.results.exclude(score=None).values_list("score", "episode"):
        scores.append(ItemScore.from_dict(score))
        if episode:
            episodes.append(episode)
    return scores, episodes


def episode_table(episodes: list[dict]) -> dict:
    """Replayed continuations: how they ended, final-answer quality, calls spent against the gold."""
    ended: dict[str, int] = {}
    finals = [e["final_score"] for e in episodes if e.get("final_score")]
    for e in episodes:
        ended[e.get("ended") or "?"] = ended.get(e.get("ended") or "?", 0) + 1

    def final_rate(metric: str) -> dict:
        vals = [f["metrics"].get(metric) for f in finals if f["metrics"].get(metric) is not None]
        return rate(sum(1 for v in vals if v), len(vals))

    return {"n": len(episodes), "ended": ended,
            "answered": rate(ended.get("answered", 0), len(episodes)),
            "final_answer_ok": final_rate("answer_ok"), "final_grounded": final_rate("grounded"),
            "calls": mean_interval([float(e.get("n_calls", 0)) for e in episodes]),
            "gold_calls": mean_interval([float(e.get("n_gold_calls", 0)) for e in episodes]),
            "redundant": mean_interval([float(e.get("n_redundant", 0)) for e in episodes])}


def summarize_scored(run: EvalRun) -> dict:
    """The dashboard's tables: overall metrics with 95 % intervals, by case type, by error label,
    the decision confusion table, and the replayed episodes."""
    scores, episodes = scores_of(run)
    return {"n": len(scores), "overall": aggregate(scores), "by_case_type": breakdown(scores, "case_type"),
            "labels": label_table(scores), "confusion": confusion(scores), "episodes": episode_table(episodes),
            "when2call": when2call_table(scores), "checkers": checker_versions(s.source for s in scores)}


def live_summary(run: EvalRun) -> dict:
    """The stored summary of a finished run; computed afresh while it runs."""
    if run.is_finished and run.summary.get("overall"):
        return run.summary
    return summarize(run)


def summarize(run: EvalRun) -> dict:
    """The scored items' tables (:func:`summarize_scored`) and the multi-turn episodes' per-turn table."""
    played = list(run.results.filter(score__isnull=True).exclude(episode__isnull=True)
                  .values_list("episode", flat=True))
    return {**summarize_scored(run), "multi_turn": multi_turn_table(played)}


def compare(runs: list[EvalRun]) -> dict:
    """Side by side (base vs SFT vs DPO): each metric's rate per run, and the correct rate per case type."""
    summaries = {run.pk: live_summary(run) for run in runs}
    metrics = [{"metric": m, "cells": [summaries[r.pk]["overall"]["metrics"][m] for r in runs]} for m in METRICS]
    case_types = []
    names = sorted({c for s in summaries.values() for c in s["by_case_type"]},
                   key=lambda c: list(summaries[runs[0].pk]["by_case_type"]).index(c)
                   if c in summaries[runs[0].pk]["by_case_type"] else 99)
    for c in names:
        case_types.append({"case_type": c, "cells": [
            (summaries[r.pk]["by_case_type"].get(c) or {}).get("metrics", {}).get("correct") for r in runs]})
    labels = sorted({lab for s in summaries.values() for lab in s["labels"]})
    label_rows = [{"label": lab, "cells": [summaries[r.pk]["labels"].get(lab) or rate(0, summaries[r.pk]["n"])
                                           for r in runs]} for lab in labels]
    counts = [{"count": c, "cells": [summaries[r.pk]["overall"]["counts"][c] for r in runs]}
              for c in ("n_calls", "n_redundant")]
    return {"metrics": metrics, "case_types": case_types, "labels": label_rows, "counts": counts,
            "n": [summaries[r.pk]["n"] for r in runs]}


# --- closing the loop --------------------------------------------------------------------------

@dataclass
class LoopOutcome:
    created: bool
    obj: object


def _context(result: EvalItemResult):
    item = EvalItem.from_dict(result.set_item.document)
    context = to_trajectory({"messages": item.messages, "tools": item.tools})
    context.meta.case_types = [c for c in item.case_types]
    if not context.turns:
        raise ValueError("the prompt has no user message to continue")
    return item, context


def _labelled(steps: list[Step], labels: list[str], note: str) -> list[Step]:
    """``steps`` with the output's error labels on its first step that is not reasoning."""
    for s in steps:
        if s.kind != "think":
            s.labels = sorted(set(labels))
            s.note = note[:1000]
            break
    return steps


def send_to_annotation(result: EvalItemResult, *, user) -> LoopOutcome:
    """A new draft trajectory holding the prompt and the model's output (labelled with what went
    wrong), for an annotator to correct. Sending the same item twice returns the first one."""
    if result.sent_trajectory_id:
        return LoopOutcome(False, result.sent_trajectory)
    if result.set_item is not None and is_multi_turn(result.set_item.document):
        return LoopOutcome(True, multiturn_jobs.send_to_annotation(result, user=user))
    run = result.run
    item, traj = _context(result)
    known = set(run.project.label_names())
    labels = [lab for lab in result.labels if lab in known]
    reasons = "; ".join((result.score or {}).get("reasons", []))
    note = f"Model output from evaluation run #{run.pk} ({run.name})." + (f" Why it failed: {reasons}" if reasons else "")
    traj.turns[-1].steps.extend(_labelled(steps_from_output(result.parsed), labels, note))
    traj.meta.extra = {"eval_run": run.pk, "eval_item": result.item_id, "labels": list(result.labels),
                       "source_trajectory": result.set_item.trajectory_id if result.set_item else None}
    return LoopOutcome(True, save_draft_trajectory(result, traj, user=user))


def make_pair(result: EvalItemResult, *, user) -> LoopOutcome:
    """A draft preference pair: the model's output rejected, the reference chosen (source
    ``evaluation``). Raises ``annotate.pairs.PairError`` when the pair is not acceptable."""
    if result.pair_id:
        return LoopOutcome(False, result.pair)
    if result.set_item is not None and is_multi_turn(result.set_item.document):
        return LoopOutcome(True, multiturn_jobs.make_pair(result, user=user))
    run = result.run
    item, context = _context(result)
    chosen = steps_from_reference(item.reference)
    rejected = steps_from_output(result.parsed)
    if result.parsed.get("format_errors"):
        category = FORMAT
    else:
        category = guess_category(context, chosen, _labelled(copy.deepcopy(rejected), result.labels, ""))
    reasons = "; ".join((result.score or {}).get("reasons", []))
    note = f"From evaluation run #{run.pk} ({run.name}), item {result.item_id}. {reasons}".strip()[:2000]
    return LoopOutcome(True, save_draft_pair(result, context=context, chosen=chosen, rejected=rejected,
                                             category=category, note=note, user=user))
