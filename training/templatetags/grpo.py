"""The GRPO run page's regions, drawn from the job's rows: ``{% grpo_dashboard job role %}`` (reward
bands, KL, completion length, tool calls, limit shares, the run's rollouts by step)."""

from __future__ import annotations

from django import template

from annotate import permissions
from studio.charts import line_chart
from training.rollouts.charts import band_chart
from training.rollouts.episodes import is_grpo_log, metric_series, reward_bands
from training.rollouts.store import rollout_rows, rollouts_by_step

register = template.Library()

ROLLOUT_STEPS_SHOWN = 5  # the newest steps' rollouts on the run page; the queue has them all


def grpo_charts(points: list[tuple[int, dict]]) -> list[dict]:
    """The GRPO charts: the total reward's and each reward function's band, then KL and the rest."""
    out = []
    for band in reward_bands(points):
        upper, lower = band.series()[1][1], band.series()[2][1]
        out.append({"title": band.title, "points": len(band.mean),
                    "svg": band_chart(band.title, band.mean, upper, lower)})
    for title, keys, series in metric_series(points):
        out.append({"title": title, "points": sum(len(p) for _, p in series), "svg": line_chart(title, series)})
    return out


@register.inclusion_tag("training/_grpo_dashboard.html", takes_context=True)
def grpo_dashboard(context, job, role: str) -> dict:
    points = list(job.metrics.values_list("step", "values"))
    return {
        "job": job, "project": job.project, "charts": grpo_charts(points), "logged": is_grpo_log(points),
        "steps": rollouts_by_step(job, last_steps=ROLLOUT_STEPS_SHOWN),
        "rollout_count": rollout_rows(job).count(), "is_lead": role in (permissions.LEAD, permissions.ADMIN),
        "problems": (job.summary or {}).get("rollout_problems", []), "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("training/_grpo_compare.html")
def grpo_compare(compared) -> dict:
    """The total reward of the compared runs side by side (only when some are GRPO runs)."""
    series = []
    for job in compared:
        points = [(step, values["reward"]) for step, values in job.metrics.values_list("step", "values")
                  if isinstance(values.get("reward"), (int, float))]
        if points:
            series.append((f"#{job.pk} {job.name}", points))
    svg = line_chart("Total reward", series, width=1100, height=420, legend=True) if series else ""
    return {"svg": svg, "runs": len(series)}
