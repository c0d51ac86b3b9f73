"""Helpers the management commands share (they act as an operator: no per-project role check)."""

from __future__ import annotations

from django.core.management.base import CommandError

from annotate.models import Project


def project_by_slug(slug: str) -> Project:
    """The project ``slug``, or a ``CommandError`` naming it."""
    try:
        return Project.objects.get(slug=slug)
    except Project.DoesNotExist:
        raise CommandError(f"no project '{slug}'") from None
