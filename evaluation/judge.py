"""Judge runs: launching one, running it on a worker of the ``eval`` queue, and measuring the
judge against the humans.

The worker claims the row, builds the generator the evaluation runner builds (a local folder or
a training run's output with transformers; an endpoint under the allowlist), asks the judge about
each trajectory of the batch (``evaluation.judge_prompt``) and writes its proposals as
``StepSuggestion`` rows. A reply it cannot read is a problem on the run, per trajectory.
Callers check the role (lead) first; ``user=None`` is the CLI.
"""

from __future__ import annotations

import logging

from django.db import transaction

from annotate.models import Trajectory, documents_of
from annotate.permissions import author_of
from annotate.suggestions.models import StepSuggestion
from evaluation import runner
from evaluation.generate import GenerationSettings, message_text
from evaluation.judge_models import JudgeRun
from evaluation.judge_prompt import judge_agreement, judge_messages, read_reply
from evaluation.jobs import endpoint_allowlist_for, final_dir, launch_errors, model_spec_for
from evaluation.models import EvalRun
from jobs import queue
from jobs.rows import JobStatus, beat, claim, fail_before_start, finish
from training.jobs import LaunchError
from training.models import trust_remote_code_for
from training.roots import confined_model

logger = logging.getLogger(__name__)

MAX_BATCH = 5000


class _AnySet:
    """Stands in for an eval set in ``launch_errors``: a judge run reads trajectories, not items."""

    def __init__(self, project):
        self.project_id, self.item_count = project.pk, 1


def launch_judge(*, project, trajectory_ids: list[int], model_source: str, gen: GenerationSettings,
                 model_path: str = "", training_job=None, merge_adapter: bool = False, endpoint_url: str = "",
                 endpoint_model: str = "", name: str = "", user=None, enqueue: bool = True) -> JudgeRun:
    """Validate, create a queued judge run over ``trajectory_ids`` and send it to the eval queue."""
    errors = launch_errors(project, _AnySet(project), model_source, model_path=model_path,
                           training_job=training_job, endpoint_url=endpoint_url, gen=gen)
    ids = list(dict.fromkeys(int(i) for i in trajectory_ids))
    found = set(Trajectory.objects.filter(project=project, pk__in=ids).values_list("pk", flat=True))
    if not ids:
        errors["trajectories"] = "Choose at least one trajectory."
    elif len(ids) > MAX_BATCH:
        errors["trajectories"] = f"At most {MAX_BATCH} trajectories per judge run ({len(ids)} given)."
    elif missing := [i for i in ids if i not in found]:
        errors["trajectories"] = f"Not trajectories of this project: {', '.join(map(str, missing[:10]))}."
    if errors:
        raise LaunchError(errors)
    if model_source == EvalRun.FOLDER:
        model_path = confined_model(model_path.strip())
    with transaction.atomic():
        run = JudgeRun.objects.create(
            project=project, model_source=model_source,
            model_path=model_path if model_source == EvalRun.FOLDER else "",
            training_job=training_job if model_source == EvalRun.TRAINING_JOB else None,
            merge_adapter=merge_adapter, endpoint_url=endpoint_url.strip() if model_source == EvalRun.ENDPOINT else "",
            endpoint_model=endpoint_model.strip(), settings=gen.to_dict(), trajectory_ids=ids, total_items=len(ids),
            created_by=author_of(user), message="Waiting for a worker on the eval queue")
        run.name = (name.strip() or f"judge · {run.model_label}")[:200]
        run.save(update_fields=["name"])
        if enqueue:
            transaction.on_commit(lambda: queue.send(JudgeRun, run.pk))  # evaluation.tasks.judge_run
    return run


def _generator(run: JudgeRun):
    spec = model_spec_for(run)  # reads the same fields an EvalRun has
    cfg = runner.EvalConfig(model=spec, output_dir="", settings=GenerationSettings.from_dict(run.settings),
                            endpoint_allowlist=endpoint_allowlist_for(run),
                            trust_remote_code=trust_remote_code_for(spec.path) if spec.kind == "folder" else False)
    return runner.build_generator(cfg)


def run_judge_job(run_id: int, *, generator=None) -> str:
    """Claim judge run ``run_id`` and run it in this worker; a duplicate delivery does nothing."""
    if not claim(JudgeRun, run_id, message="Loading the judge"):
        return "not claimed"
    run = JudgeRun.objects.select_related("project", "training_job").get(pk=run_id)
    try:
        generator = generator or _generator(run)
    except Exception as exc:  # the model does not load, the endpoint is refused: the row says why
        logger.exception("judge run %s could not start", run_id)
        return fail_before_start(JudgeRun, run_id, exc, "The judge could not start")
    beat(JudgeRun, run_id, message="Judging")  # loading a large model takes a while: the sweep must not think it dead
    labels = run.project.label_names()
    batch = max(1, GenerationSettings.from_dict(run.settings).batch_size)
    ids, done, made, problems = list(run.trajectory_ids), 0, 0, []
    try:
        for start in range(0, len(ids), batch):
            if JudgeRun.objects.filter(pk=run_id, cancel_requested=True).exists():
                finish(JudgeRun, run_id, JobStatus.CANCELLED, message="Cancelled", problems=problems)
                return "cancelled"
            part = ids[start:start + batch]
            docs = documents_of(part)
            versions = dict(Trajectory.objects.filter(pk__in=part).values_list("pk", "version"))
            present = [i for i in part if i in docs]
            outputs = generator.generate([(judge_messages(docs[i], labels), []) for i in present])
            for tid, g in zip(present, outputs):
                if g.error:
                    problems.append({"trajectory": tid, "problem": f"the request failed: {g.error}"})
                    continue
                text = message_text(g.message) if g.message is not None else g.text
                proposals, issues = read_reply(text, docs[tid], labels)
                problems += [{"trajectory": tid, "problem": p} for p in issues]
                rows = [StepSuggestion(trajectory_id=tid, turn_index=p.turn, step_index=p.step,
                                       step_kind=docs[tid].turns[p.turn].steps[p.step].kind,
                                       version=versions[tid], label=p.label, note=p.note, judge_run_id=run_id,
                                       source=run.model_label[:500]) for p in proposals]
                # A restarted run (the sweep re-queues it) proposes the same rows again: kept once.
                StepSuggestion.objects.bulk_create(rows, ignore_conflicts=True)
            made = StepSuggestion.objects.filter(judge_run_id=run_id).count()
            done += len(part)
            beat(JudgeRun, run_id, done_items=done, suggestion_count=made, progress=done / max(1, len(ids)),
                 message=f"Judged {done} of {len(ids)}")
    except Exception as exc:
        logger.exception("judge run %s failed", run_id)
        finish(JudgeRun, run_id, JobStatus.FAILED, error=str(exc)[:5000], message="Failed", problems=problems)
        return "failed"
    finish(JudgeRun, run_id, JobStatus.SUCCEEDED, progress=1.0, done_items=done, suggestion_count=made,
           problems=problems, message=f"{made} suggestions on {done} trajectories")
    return "succeeded"


def judge_vs_humans(run: JudgeRun) -> list[dict]:
    """Per label, the judge's proposals against the humans' current labels, on every step of the
    run's trajectories (a step the judge said nothing about counts as "no label" from it)."""
    docs = documents_of(list(run.trajectory_ids))
    proposed: dict[tuple[int, int, int], set[str]] = {}
    for tid, ti, si, label in StepSuggestion.objects.filter(judge_run_id=run.pk).values_list(
            "trajectory_id", "turn_index", "step_index", "label"):
        proposed.setdefault((tid, ti, si), set()).add(label)
    pairs = []
    for tid, doc in docs.items():
        for ti, turn in enumerate(doc.turns):
            for si, step in enumerate(turn.steps):
                pairs.append((proposed.get((tid, ti, si), set()), set(step.labels)))
    return judge_agreement(pairs, run.project.label_names())


__all__ = ["launch_judge", "run_judge_job", "judge_vs_humans", "final_dir"]
