"""Creating a project and changing its settings and members (shared by the pages and the API).

Every refusal is an ``InputError`` naming the form / API field; nothing is half-saved.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify

from annotate.models import Membership, Project, Tool
from annotate.projects import rules
from core.errors import InputError


def can_create_projects(user) -> bool:
    """Staff and superusers create projects; everyone signed in does where ``STUDIO_ANYONE_CREATES_PROJECTS``."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.is_superuser or user.is_staff or getattr(settings, "ANYONE_CREATES_PROJECTS", False)


@transaction.atomic
def create_project(user, *, name: str, slug: str = "", description: str = "") -> Project:
    """A new project with the default labels and case types; its creator is its first lead."""
    name = name.strip()
    if not name:
        raise InputError("a project needs a name", "name")
    if len(name) > 200:
        raise InputError(f"at most 200 characters (this has {len(name)})", "name")
    slug = rules.check_slug(slug.strip() or slugify(name)[:100].strip("-"))
    if Project.objects.filter(slug=slug).exists():
        raise InputError(f"there is already a project at /p/{slug}/; choose another", "slug")
    project = Project.objects.create(name=name, slug=slug, description=description.strip())
    Membership.objects.create(project=project, user=user, role=Membership.LEAD)
    return project


def find_user(who: str, field: str = "user"):
    """The user with this username or e-mail address (case-insensitive)."""
    who = who.strip()
    if not who:
        raise InputError("give a username or an e-mail address", field)
    users = list(get_user_model().objects.filter(Q(username__iexact=who) | Q(email__iexact=who), is_active=True)[:2])
    if not users:
        raise InputError(f"no user with the username or e-mail {who!r}; an admin creates accounts", field)
    if len(users) > 1:
        raise InputError(f"{who!r} matches several users; give the username", field)
    return users[0]


def roles_of(project: Project) -> dict[str, str]:
    return dict(project.memberships.values_list("user__username", "role"))


@transaction.atomic
def add_member(project: Project, who: str, role: str) -> Membership:
    rules.check_role(role)
    user = find_user(who)
    if project.memberships.filter(user=user).exists():
        raise InputError(f"{user.get_username()} is already a member; change the role in the list below", "user")
    return Membership.objects.create(project=project, user=user, role=role)


class NotMember(InputError):
    """The named user is not a member of the project (the API answers 404)."""


def _membership(project: Project, username: str) -> Membership:
    m = project.memberships.select_related("user").filter(user__username=username).first()
    if m is None:
        raise NotMember(f"{username!r} is not a member of {project.name}", "member")
    return m


@transaction.atomic
def change_role(project: Project, username: str, role: str) -> Membership:
    rules.check_role(role)
    m = _membership(project, username)
    rules.check_roles_after(roles_of(project), username, role)
    m.role = role
    m.save(update_fields=["role"])
    return m


@transaction.atomic
def remove_member(project: Project, username: str) -> None:
    m = _membership(project, username)
    rules.check_roles_after(roles_of(project), username, None)
    m.delete()


GENERAL_FIELDS = ("name", "description", "guidelines", "target_template", "target_tokenizer")


def update_general(project: Project, data: dict) -> list[str]:
    """Name, description, guidelines and the target model; returns the fields that changed."""
    changed = []
    for f in GENERAL_FIELDS:
        if f not in data:
            continue
        value = str(data[f]).strip() if f != "guidelines" else str(data[f])
        if f == "name" and not value:
            raise InputError("a project needs a name", "name")
        limit = Project._meta.get_field(f).max_length
        if limit and len(value) > limit:
            raise InputError(f"at most {limit} characters (this has {len(value)})", f)
        if getattr(project, f) != value:
            setattr(project, f, value)
            changed.append(f)
    if changed:
        project.save(update_fields=changed)
    return changed


def update_labels(project: Project, text: str) -> list[dict]:
    project.error_labels = rules.parse_labels(text)
    project.save(update_fields=["error_labels"])
    return project.error_labels


@transaction.atomic
def update_tools(project: Project, text: str) -> list[dict]:
    """Replace the tool catalog (trajectories keep the tools they were imported with)."""
    tools = rules.parse_tools(text)
    project.tools.exclude(name__in=[t["name"] for t in tools]).delete()
    for t in tools:
        Tool.objects.update_or_create(project=project, name=t["name"], defaults={
            "description": t["description"], "parameters": t["parameters"]})
    return tools


def update_case_types(project: Project, chosen: list[str]) -> list[str]:
    project.required_case_types = rules.check_case_types(chosen)
    project.save(update_fields=["required_case_types"])
    return project.required_case_types
