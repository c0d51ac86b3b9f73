"""Template helpers for the editor: the parts repeated for every step, built in Python.

The editor draws every label of the project's taxonomy for every step; as template loops they
cost more than the rest of the page, so they are assembled here (escaped with format_html).
"""

from __future__ import annotations

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
    """``<li>`` per validation finding: its message and the field it concerns."""
    return format_html_join("", '<li class="{}">{}{}</li>', (
        (f.severity, f.message, format_html(" <code>{}</code>", f.field) if f.field else "") for f in findings))
