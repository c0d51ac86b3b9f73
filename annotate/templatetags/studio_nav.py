"""The top bar's links inside a project: the same on every project page (``{% project_nav project %}``)."""

from __future__ import annotations

from django import template

from annotate import permissions

register = template.Library()


@register.inclusion_tag("_project_nav.html", takes_context=True)
def project_nav(context, project):
    request = context.get("request")
    role = permissions.role_in(request.user, project) if request is not None else None
    return {"project": project, "lead": role in (permissions.LEAD, permissions.ADMIN)}
