"""API routes for projects' settings and members, included from ``annotate/api_urls.py`` (mounted at /api/).

``projects/new/`` comes before ``projects/<slug>/`` there, so "new" is reserved (``rules.RESERVED_SLUGS``).
"""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from annotate.projects import api


def _view(cls):
    return login_not_required(cls.as_view())


urlpatterns = [
    path("projects/new/", _view(api.ProjectCreateAPI), name="api-project-new"),
    path("projects/<slug:slug>/settings/", _view(api.ProjectSettingsAPI), name="api-project-settings"),
    path("projects/<slug:slug>/members/", _view(api.MemberListAPI), name="api-members"),
    path("projects/<slug:slug>/members/<str:username>/", _view(api.MemberDetailAPI), name="api-member"),
]
