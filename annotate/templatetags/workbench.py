"""Template helpers for the editor: the parts repeated for every step, built in Python.

The editor draws every label of the project's taxonomy for every step; as template loops they
cost more than the rest of the page, so they are assembled here (escaped with format_html).
"""

from __future__ import annotations

import json

from django import template
from django.utils.html import format_html, format_html_join

register = template.Library()


@register.simple_tag
def label_boxes(panel, can_edit: bool):
    """The error-label checkboxes of one step (name ``labels``), checked where the step has them."""
    disabled = "" if can_edit else " disabled"
    return format_html_join(
        "", '<label class="check" title="{}"><input type="checkbox" name="labels" value="{}"{}{}> {}</label>',
        ((lab.description, lab.name, " checked" if lab.checked else "", disabled, lab.name) for lab in panel.labels))


@register.simple_tag
def findings_items(findings):
    """``<li>`` per validation finding: its message, and the argument it concerns (the other
    fields, such as ``name`` or ``call_id``, are plain from the message)."""
    return format_html_join("", '<li class="{}">{}{}</li>', (
        (f.severity, f.message, format_html(" <code>({})</code>", f.field) if f.field.startswith("arguments.") else "")
        for f in findings))


@register.simple_tag
def select(bound_field):
    """A form's choice field as ``<select>``, without Django's per-option widget templates (the
    queue draws eight of them on every filter change)."""
    value = bound_field.value()
    value = "" if value is None else str(value)
    options = format_html_join("", '<option value="{}"{}>{}</option>', (
        (str(k), " selected" if str(k) == value else "", label) for k, label in bound_field.field.choices))
    return format_html('<select name="{}" id="{}">{}</select>', bound_field.html_name, bound_field.id_for_label,
                       options)


@register.inclusion_tag("annotate/_from_source.html")
def from_source(extra, what: str = "step"):
    """The values a source record had with no canonical place (``extra``), read-only, as JSON."""
    return {"extra": extra, "what": what,
            "text": json.dumps(extra, ensure_ascii=False, indent=2) if extra else ""}
