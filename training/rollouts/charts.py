"""The GRPO dashboard's band charts: a mean line over a shaded ± one-standard-deviation band (pure;
no Django). Inline SVG from pygal in the look of ``studio.charts``.

pygal has no band series, so the band is one filled series that runs along the upper edge and back
along the lower one: pygal closes a filled series down to the axis floor at its last point, which
is the first step again, so the area it fills is the band itself (``zero`` set to that point). The mean is drawn on top.
"""

from __future__ import annotations

import pygal
from pygal.style import Style

from studio.charts import CHART_STYLE, _step_ticks, nice_ticks, tick_formatter

BAND_TINT = "#c9d6fb"  # the accent (#2f5bea) lightened: the spread
MEAN_COLOUR = CHART_STYLE.colors[0]


def band_chart(title: str, mean: list[tuple[float, float]], upper: list[tuple[float, float]],
               lower: list[tuple[float, float]], *, width: int = 520, height: int = 300) -> str:
    """An inline SVG of ``mean`` per step with the band between ``lower`` and ``upper`` shaded."""
    values = [v for pts in (mean, upper, lower) for _, v in pts]
    steps = [x for x, _ in mean]
    y_ticks, y_step = nice_ticks(min(values), max(values)) if values else ([], 1.0)
    # The fill closes down to ``zero`` at the band's last point (its first step's lower edge): put
    # ``zero`` there, so the closing edge has no length.
    floor = lower[0][1] if lower else y_ticks[0] if y_ticks else 0.0
    style = Style(**{**CHART_STYLE.to_dict(), "colors": (BAND_TINT, MEAN_COLOUR),
                     "opacity": "1", "opacity_hover": "1"})
    chart = pygal.XY(title=title, width=width, height=height, style=style, js=[], disable_xml_declaration=True,
                     show_dots=len(mean) < 30, dots_size=2.5, stroke_style={"width": 2}, show_legend=True,
                     legend_at_bottom=True, legend_at_bottom_columns=3, zero=floor,
                     no_data_text="Waiting for the first logged step…", y_labels=y_ticks or None,
                     range=(y_ticks[0], y_ticks[-1]) if y_ticks else None,
                     value_formatter=tick_formatter(y_step, max(map(abs, values), default=1.0)),
                     x_value_formatter=lambda v: f"step {v:g}", x_labels=_step_ticks(steps), x_label_rotation=0,
                     show_minor_x_labels=True)
    if mean:
        chart.add("± std", list(upper) + list(reversed(lower)), fill=True, show_dots=False,
                  stroke_style={"width": 0})
        chart.add("mean", mean)
    return chart.render(is_unicode=True)
