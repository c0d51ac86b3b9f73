"""The charts' look and the line charts of the run pages: inline SVG from pygal (no JavaScript),
with round-numbered ticks. Training's job pages and evaluation's dashboards share ``CHART_STYLE``.

Pure: no Django.
"""

from __future__ import annotations

import math

import pygal
from pygal.style import Style

CHART_STYLE = Style(background="#ffffff", plot_background="#ffffff", foreground="#1d2430",
                    foreground_strong="#1d2430", foreground_subtle="#dde1e7", opacity=".9", opacity_hover="1",
                    colors=("#2f5bea", "#c2410c", "#15803d", "#7c3aed", "#0e7490", "#b7791f", "#be185d", "#475569"),
                    font_family="system-ui, sans-serif", title_font_size=15, label_font_size=11,
                    major_label_font_size=11, legend_font_size=12, tooltip_font_size=12)


def nice_ticks(lo: float, hi: float, most: int = 6) -> tuple[list[float], float]:
    """Round-numbered axis ticks covering [lo, hi] (about ``most`` of them), and their spacing.

    >>> nice_ticks(187, 799)[0]
    [0, 200, 400, 600, 800]
    """
    if hi == lo:
        hi, lo = hi + (abs(hi) or 1) * 0.05, lo - (abs(lo) or 1) * 0.05
    raw = (hi - lo) / max(1, most - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [math.floor(lo / step) * step]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(ticks[-1] + step)
    precision = max(0, 12 - math.floor(math.log10(step)))
    return [round(t, precision) if step < 1 else int(round(t)) if float(step).is_integer() else t
            for t in ticks], step


def tick_formatter(step: float, top: float):
    """Labels with as many digits as the tick spacing needs (scientific below 0.001)."""
    exp_step = math.floor(math.log10(step))
    extra = 0 if round(step / 10 ** exp_step, 6) in (1, 2, 5, 10) else 1
    if 0 < top < 1e-3:
        decimals = max(0, math.floor(math.log10(top)) - exp_step + extra)
        return lambda v: f"{v:.{decimals}e}"
    decimals = max(0, -exp_step + extra)
    return lambda v: f"{v:,.{decimals}f}"


def _step_ticks(steps: list[float], most: int = 8) -> list[int]:
    """Round whole-number step ticks covering ``steps``, at most about ``most`` of them.

    >>> _step_ticks([100, 12000])
    [0, 2000, 4000, 6000, 8000, 10000, 12000]
    """
    if not steps:
        return []
    lo, hi = min(steps), max(steps)
    if hi - lo < 1:
        return [int(lo)]
    ticks, spacing = nice_ticks(lo, hi, most)
    if spacing < 1:
        return list(range(int(lo), int(math.ceil(hi)) + 1))
    return [int(t) for t in ticks]


def line_chart(title: str, series: list[tuple[str, list[tuple[float, float]]]], *, width: int = 520,
               height: int = 300, legend: bool | None = None) -> str:
    """An inline SVG line chart (pygal, no JavaScript) of ``[(label, [(step, value), ...]), ...]``."""
    series = [(label, points) for label, points in series if points]
    values = [v for _, points in series for _, v in points]
    steps = [x for _, points in series for x, _ in points]
    y_ticks, y_step = nice_ticks(min(values), max(values)) if values else ([], 1.0)
    y_format = tick_formatter(y_step, max(map(abs, values), default=1.0))
    show_legend = len(series) > 1 if legend is None else legend
    # pygal puts a bottom legend a few pixels above the bottom edge, wherever the axis title sits:
    # a taller chart and a bottom margin give it a row of its own instead of half of one.
    extra = {"margin_bottom": 36} if show_legend else {}
    if show_legend:
        height += 30
    chart = pygal.XY(title=title, width=width, height=height, style=CHART_STYLE, js=[], disable_xml_declaration=True,
                     show_dots=max((len(p) for _, p in series), default=0) < 30, dots_size=2.5,
                     stroke_style={"width": 2}, show_legend=show_legend, **extra,
                     legend_at_bottom=True,
                     legend_at_bottom_columns=4, truncate_legend=60, no_data_text="No data yet",
                     y_labels=y_ticks or None, value_formatter=y_format,
                     # Bare numbers under an axis title: "step 1200" on each tick did not fit and
                     # pygal cut every label to "step…". -1: never truncate a tick label.
                     x_title="step", x_value_formatter=lambda v: f"{v:,g}" if abs(v) < 1e6 else f"{v:.3g}",
                     truncate_label=-1, x_labels=_step_ticks(steps), x_label_rotation=0, show_minor_x_labels=True)
    for label, points in series:
        chart.add(label, points)
    return chart.render(is_unicode=True)
