"""Formatting for the evaluation dashboards: rates with their 95 % intervals, JSON for reading."""

from __future__ import annotations

import json

from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def rate_cell(r) -> str:
    """``72.0 %`` with its 95 % Wilson interval and ``k/n`` (a dash where the metric does not apply)."""
    if not r or not r.get("n") or r.get("rate") is None:
        return format_html('<span class="muted" title="does not apply">–</span>')
    return format_html('<span class="rate">{} %</span> <span class="ci" title="95 % confidence interval">'
                       '[{}, {}]</span> <span class="kn">{}/{}</span>',
                       f"{100 * r['rate']:.1f}", f"{100 * r['low']:.1f}", f"{100 * r['high']:.1f}", r["k"], r["n"])


@register.simple_tag
def mean_cell(m) -> str:
    """A mean with its 95 % interval (normal approximation)."""
    if not m or not m.get("n") or m.get("mean") is None:
        return format_html('<span class="muted">–</span>')
    return format_html('<span class="rate">{}</span> <span class="ci">[{}, {}]</span>',
                       f"{m['mean']:.2f}", f"{m['low']:.2f}", f"{m['high']:.2f}")


@register.filter
def pretty_json(value) -> str:
    """Indented JSON text (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)


@register.filter
def percent(value) -> str:
    return "" if value is None else f"{100 * value:.0f}"
