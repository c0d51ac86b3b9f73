"""``{% load projects %}``: ``user|can_create_projects`` (whether the project list offers "New project")."""

from __future__ import annotations

from django import template

from annotate.projects.services import can_create_projects as _can_create
from annotate.workbench.dashboard import getting_started as steps_of

register = template.Library()


@register.filter
def can_create_projects(user) -> bool:
    return _can_create(user)


@register.inclusion_tag("annotate/projects/_getting_started.html")
def getting_started(project, role):
    """The "Getting started" panel: for leads, until every first-hour step is done."""
    if role not in ("lead", "admin"):
        return {"show": False}
    steps = steps_of(project)
    next_key = next((s["key"] for s in steps if not s["done"]), None)
    return {"show": next_key is not None, "project": project, "steps": steps, "next": next_key}
