"""Evaluation pages: eval sets, launch, the run dashboard (polled by htmx while it runs), each
item's drill-down with "send to annotation" and "make pair", and runs side by side.

Each view reads: fetch → check permission → form → change → respond. Annotators may look at
every dashboard of their projects (failures become their annotation work); launching,
cancelling, creating eval sets, and sending failures on need the lead role. Model output is
untrusted: it reaches the page only through Django's autoescaping, never ``|safe``.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
import pygal

from annotate import permissions
from annotate.pairs import PairError
from annotate.trajectory import CASE_TYPE_NAMES, DEFAULT_ERROR_LABELS
from evaluation import jobs
from evaluation.eval_sets import EvalSetError, create_eval_set
from evaluation.forms import EvalSetForm, LaunchForm
from evaluation.models import EvalRun, EvalSet
from evaluation.scoring import DECISIONS, METRICS, Reference, reference_output
from jobs.rows import JobStatus, cancel_message, request_cancel
from studio.charts import CHART_STYLE
from studio.forms import id_or_none, ids_of, next_path

METRIC_NAMES = {
    "format_ok": "Format valid",
    "schema_ok": "Calls schema-valid",
    "tool_selection_ok": "Right tools called",
    "args_ok": "Arguments acceptable",
    "call_count_ok": "Right number of calls",
    "calls_ok": "Calls exactly right (BFCL AST)",
    "no_tool_ok": "No call when none is needed",
    "clarification_ok": "Asks for the missing argument",
    "decline_ok": "Declines when the tools can't help",
    "grounded": "Answer grounded in the results",
    "answer_ok": "Final answer correct",
    "decision_ok": "Decision right (call / answer / ask / decline)",
    "correct": "Fully correct",
}
LABEL_NAMES = dict(DEFAULT_ERROR_LABELS)
MAX_COMPARED = 6


def _run(request: HttpRequest, pk: int, minimum: str = permissions.ANNOTATOR) -> tuple[EvalRun, str]:
    run = get_object_or_404(EvalRun.objects.select_related("project", "eval_set", "training_job", "created_by"), pk=pk)
    return run, permissions.require_role(request.user, run.project, minimum)


def _result(request: HttpRequest, pk: int, position: int, minimum: str = permissions.ANNOTATOR):
    run, role = _run(request, pk, minimum)
    result = get_object_or_404(run.results.select_related("set_item", "sent_trajectory", "pair"), position=position)
    return run, result, role


# --- the table rows the templates show ----------------------------------------------------------

def meter(r: dict) -> dict:
    """Widths (in %) of a rate's bar and of its 95 % interval's whisker."""
    return {"fill": round(100 * (r.get("rate") or 0), 1), "lo": round(100 * r["low"], 1),
            "span": round(100 * (r["high"] - r["low"]), 1)}


def metric_rows(summary: dict) -> list[dict]:
    metrics = summary.get("overall", {}).get("metrics", {})
    return [{"key": m, "name": METRIC_NAMES[m], "rate": metrics[m], "meter": meter(metrics[m])}
            for m in METRICS if metrics.get(m, {}).get("n")]


def case_type_rows(summary: dict) -> list[dict]:
    out = []
    for case, agg in summary.get("by_case_type", {}).items():
        m = agg["metrics"]
        out.append({"case_type": case, "name": CASE_TYPE_NAMES.get(case, case or "(none)"), "n": agg["n"],
                    "correct": m["correct"], "decision": m["decision_ok"],
                    "calls": agg["counts"]["n_calls"]})
    return out


def label_rows(summary: dict) -> list[dict]:
    return [{"label": lab, "description": LABEL_NAMES.get(lab, ""), "rate": r}
            for lab, r in summary.get("labels", {}).items()]


def confusion_rows(summary: dict) -> list[dict]:
    return table_rows(summary.get("confusion") or {}, DECISIONS)


def table_rows(table: dict, labels) -> list[dict]:
    """A confusion table (``{gold: {predicted: count}}``) as rows of cells, gold rows with no item left out."""
    rows = []
    for gold in labels:
        counts = table.get(gold, {})
        cells = [{"decision": d, "count": counts.get(d, 0), "hit": d == gold} for d in labels]
        rows.append({"gold": gold, "cells": cells, "n": sum(c["count"] for c in cells)})
    return [r for r in rows if r["n"]]


def when2call_rows(summary: dict) -> dict | None:
    """When2Call's table (``summary["when2call"]``) laid out for the page: the confusion rows with
    each gold category's F1, and the headline figures."""
    table = summary.get("when2call")
    if not table:
        return None
    rows = table_rows(table["confusion"], table["categories"])
    return {**table, "rows": [{**r, "f1": table["f1"].get(r["gold"])} for r in rows]}


def dashboard_context(run: EvalRun, request: HttpRequest) -> dict:
    summary = jobs.live_summary(run)
    f = {k: request.GET.get(k, "").strip() for k in ("show", "case_type", "label", "decision")}
    results = run.results.all()
    if f["show"] == "failed":
        results = results.filter(correct=False)
    elif f["show"] == "errors":
        results = results.exclude(error="")
    if f["decision"] in DECISIONS:
        results = results.filter(decision=f["decision"])
    rows = list(results.only("position", "item_id", "case_types", "labels", "decision", "gold_decision", "correct",
                             "error", "raw_output", "sent_trajectory", "pair"))
    if f["case_type"]:  # JSON containment is not portable to SQLite: filter the run's rows here
        rows = [r for r in rows if f["case_type"] in r.case_types]
    if f["label"]:
        rows = [r for r in rows if f["label"] in r.labels]
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    query = urlencode({k: v for k, v in f.items() if v})
    return {"run": run, "project": run.project, "summary": summary, "metrics": metric_rows(summary),
            "case_types": case_type_rows(summary), "labels": label_rows(summary),
            "confusion": confusion_rows(summary), "decisions": DECISIONS, "episodes": summary.get("episodes"),
            "page": page, "filters": f, "query": query, "case_type_names": CASE_TYPE_NAMES,
            "when2call": when2call_rows(summary), "checkers": run.checker_versions or summary.get("checkers") or {}}


# --- pages -------------------------------------------------------------------------------------

def run_list(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug)
    runs = project.eval_runs.select_related("eval_set", "created_by", "training_job")
    f = {k: request.GET.get(k, "").strip() for k in ("status", "eval_set")}
    if f["status"]:
        runs = runs.filter(status=f["status"])
    if (eval_set_id := id_or_none(f["eval_set"])) is not None:
        runs = runs.filter(eval_set_id=eval_set_id)
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    for run in page.object_list:
        run.correct_rate = (run.summary.get("overall", {}).get("metrics", {}).get("correct") or {})
    return render(request, "evaluation/run_list.html", {
        "project": project, "role": role, "page": page, "filters": f, "statuses": JobStatus.choices,
        "eval_sets": project.eval_sets.all()})


def launch_run(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug, permissions.LEAD)
    # The form starts from the project's latest evaluation, and says so (with a way back to the defaults).
    from_defaults = request.GET.get("defaults") == "1"
    last = None if from_defaults else project.eval_runs.select_related("training_job", "created_by").order_by(
        "-created_at").first()
    if request.method == "POST":
        form = LaunchForm(request.POST, project=project)
    else:
        initial = LaunchForm.initial_for(project, model_path=str(settings.DEMO_MODEL_DIR), last=last)
        for key in ("eval_set", "training_job"):
            if (chosen := id_or_none(request.GET.get(key))) is not None:
                initial[key] = chosen
                if key == "training_job":
                    initial["model_source"] = EvalRun.TRAINING_JOB
        form = LaunchForm(initial=initial, project=project)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            run = jobs.launch_eval(project=project, eval_set=d["eval_set"], model_source=d["model_source"],
                                   gen=form.gen, model_path=d["model_path"] or "", training_job=d["training_job"],
                                   merge_adapter=d["merge_adapter"], endpoint_url=d["endpoint_url"] or "",
                                   endpoint_model=d["endpoint_model"] or "", limit=d["limit"] or 0, name=d["name"],
                                   user=request.user)
        except jobs.LaunchError as exc:  # the eval set or training run changed since the form check
            for name, message in exc.errors.items():
                form.add_error(name if name in form.fields else None, message)
        else:
            messages.success(request, f"Queued {run}. It starts when a worker on the eval queue is free.")
            return redirect("evaluation:run-detail", pk=run.pk)
    return render(request, "evaluation/run_form.html", {
        "project": project, "role": role, "form": form, "has_sets": project.eval_sets.exists(), "last": last,
        "from_defaults": from_defaults, "defaults_query": with_query(request.get_full_path(), defaults=1),
        "last_query": with_query(request.get_full_path(), defaults=0)})


def with_query(url: str, **params) -> str:
    """``url`` with ``params`` set in its query string (replacing any already there)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def eval_sets(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug)
    form = None
    if role != permissions.ANNOTATOR:
        form = EvalSetForm(project=project, initial={"source": EvalSet.SNAPSHOT, "split": "eval"})
    if request.method == "POST":
        permissions.require_role(request.user, project, permissions.LEAD)
        form = EvalSetForm(request.POST, request.FILES, project=project)
        if form.is_valid():
            d = form.cleaned_data
            upload = (d["file"].read(), d["file"].name) if d.get("file") else None
            try:
                es = create_eval_set(project, d["source"], name=d["name"], user=request.user,
                                          snapshot=d.get("snapshot"), split=d.get("split") or "eval",
                                          filters=form.filters(), upload=upload)
            except EvalSetError as exc:
                field = {"filters": None, "source": "source"}.get(exc.field, exc.field)
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Made eval set #{es.pk} ({es.item_count} items): {es.name}")
                if nxt := next_path(request):  # back to the evaluation being set up, with the new set chosen
                    return redirect(with_query(nxt, eval_set=es.pk))
                return redirect(f"{request.path}#set-{es.pk}")
    sets = project.eval_sets.select_related("snapshot", "created_by")
    return render(request, "evaluation/eval_sets.html", {
        "project": project, "role": role, "form": form, "sets": sets, "case_type_names": CASE_TYPE_NAMES,
        "next": next_path(request)})


def live_version(run: EvalRun) -> str:
    """Changes whenever the live region would: a poll that has nothing new gets 204 (htmx keeps the page),
    so open dashboards don't re-summarise every result every 2 s (as ``training.views.live_version``)."""
    parts = (run.status, run.done_items, run.total_items, run.message, run.cancel_requested, len(run.error))
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run, role = _run(request, pk)
    version = live_version(run)
    if request.htmx and request.GET.get("v") == version:
        return HttpResponse(status=204)  # nothing new since the last poll
    context = dashboard_context(run, request)
    context.update(role=role, version=version,  # flash messages about the status loaded go once it changes
                   shown_status=request.GET.get("shown", run.status) if request.htmx else run.status)
    template = "evaluation/run_detail.html#live" if request.htmx else "evaluation/run_detail.html"
    return render(request, template, context)


@require_POST
def cancel_run(request: HttpRequest, pk: int) -> HttpResponse:
    run, _ = _run(request, pk, permissions.LEAD)
    outcome = request_cancel(run)
    messages.info(request, cancel_message(run, outcome))
    return redirect("evaluation:run-detail", pk=run.pk)


def item_detail(request: HttpRequest, pk: int, position: int) -> HttpResponse:
    run, result, role = _result(request, pk, position)
    item = result.set_item.document if result.set_item else {}
    ref = Reference.from_dict(item["reference"]) if item.get("reference") else None
    metrics = [{"key": m, "name": METRIC_NAMES[m], "value": (result.score or {}).get("metrics", {}).get(m)}
               for m in METRICS]
    siblings = run.results.order_by("position")
    if request.GET.get("show") == "failed":
        siblings = siblings.filter(correct=False)
    prev_pos = siblings.filter(position__lt=position).order_by("-position").values_list("position", flat=True).first()
    next_pos = siblings.filter(position__gt=position).values_list("position", flat=True).first()
    return render(request, "evaluation/item_detail.html", {
        "run": run, "project": run.project, "role": role, "result": result, "item": item, "reference": ref,
        "gold_text": reference_output(ref) if ref else "", "metrics": [m for m in metrics if m["value"] is not None],
        "label_names": LABEL_NAMES, "case_type_names": CASE_TYPE_NAMES, "prev_pos": prev_pos, "next_pos": next_pos,
        "show": request.GET.get("show", ""), "can_act": role != permissions.ANNOTATOR and result.set_item_id})


def _result_to_act_on(request: HttpRequest, pk: int, position: int):
    """A result a lead turns into annotation work (404 when its eval set item is gone)."""
    _, result, _ = _result(request, pk, position, permissions.LEAD)
    if result.set_item is None:
        raise Http404("The eval set item of this result is gone")
    return result


@require_POST
def send_to_annotation(request: HttpRequest, pk: int, position: int) -> HttpResponse:
    result = _result_to_act_on(request, pk, position)
    try:
        outcome = jobs.send_to_annotation(result, user=request.user)
    except ValueError as exc:
        messages.error(request, f"Could not send it to annotation: {exc}")
    else:
        traj = outcome.obj
        messages.success(request, f"{'Created' if outcome.created else 'Already sent as'} draft trajectory "
                                  f"#{traj.pk} for an annotator to correct.")
    return redirect(result.get_absolute_url())


@require_POST
def make_pair(request: HttpRequest, pk: int, position: int) -> HttpResponse:
    result = _result_to_act_on(request, pk, position)
    try:
        outcome = jobs.make_pair(result, user=request.user)
    except (PairError, ValueError) as exc:
        messages.error(request, f"Could not make a pair: {getattr(exc, 'message', exc)}")
    else:
        pair = outcome.obj
        messages.success(request, f"{'Made' if outcome.created else 'Already made'} draft pair #{pair.pk} "
                                  f"({pair.category}): the reference chosen, the model's output rejected.")
    return redirect(result.get_absolute_url())


def compare_runs(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug)
    ids = ids_of(request.GET.getlist("runs"))[:MAX_COMPARED]
    runs = list(project.eval_runs.filter(pk__in=ids).select_related("eval_set").order_by("pk"))  # oldest first
    table = jobs.compare(runs) if runs else None
    same_set = len({r.eval_set_id for r in runs}) <= 1
    chart = comparison_chart(runs, table) if table else None
    return render(request, "evaluation/compare.html", {
        "project": project, "role": role, "runs": runs, "table": table, "same_set": same_set, "chart": chart,
        "metric_names": METRIC_NAMES, "case_type_names": CASE_TYPE_NAMES, "label_names": LABEL_NAMES,
        "candidates": project.eval_runs.filter(status=JobStatus.SUCCEEDED).select_related("eval_set")[:50]})


def comparison_chart(runs: list[EvalRun], table: dict) -> str:
    """Grouped bars: the main metrics per run (pygal SVG, no JavaScript)."""

    shown = [row for row in table["metrics"] if row["metric"] in (
        "format_ok", "tool_selection_ok", "args_ok", "no_tool_ok", "clarification_ok", "decline_ok", "grounded",
        "answer_ok", "decision_ok", "correct")]
    chart = pygal.Bar(width=1000, height=360, style=CHART_STYLE, js=[], disable_xml_declaration=True, range=(0, 100),
                      legend_at_bottom=True, legend_at_bottom_columns=3, truncate_legend=50, x_label_rotation=20,
                      value_formatter=lambda v: f"{v:.0f} %", title="Rates by run (%)")
    chart.x_labels = [METRIC_NAMES[row["metric"]] for row in shown]
    for i, run in enumerate(runs):
        chart.add(f"#{run.pk} {run.name}", [None if c["rate"] is None else round(100 * c["rate"], 1)
                                            for c in (row["cells"][i] for row in shown)])
    return chart.render(is_unicode=True)
