"""Creating a project and managing it from the app: who may, what changes, and that a refusal changes nothing."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Membership, Project, Tool

pytestmark = pytest.mark.django_db


def settings_url(project) -> str:
    return reverse("annotate:project-settings", args=[project.slug])


def snapshot_of(project) -> dict:
    project.refresh_from_db()
    return {"project": {f: getattr(project, f) for f in ("name", "description", "guidelines", "error_labels",
                                                         "required_case_types", "target_template")},
            "members": sorted(project.memberships.values_list("user__username", "role")),
            "tools": sorted(project.tools.values_list("name", flat=True))}


def api_for(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


# Creating a project ----------------------------------------------------------------------------


def test_staff_create_a_project_and_become_its_lead(client, make_user):
    staff = make_user("sam")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    assert "New project" in client.get("/").content.decode()
    r = client.post(reverse("annotate:project-new"), {"name": "Flight helper", "slug": "", "description": ""})
    project = Project.objects.get(slug="flight-helper")
    assert r.status_code == 302 and r["Location"] == project.get_absolute_url()
    assert list(project.memberships.values_list("user__username", "role")) == [("sam", "lead")]
    assert project.required_case_types and project.error_labels  # the defaults


def test_a_plain_user_may_not_create_a_project_unless_the_setting_says_so(client, lead, settings):
    client.force_login(lead)
    assert "New project" not in client.get("/").content.decode()
    assert client.post(reverse("annotate:project-new"), {"name": "Mine"}).status_code == 403
    assert not Project.objects.filter(name="Mine").exists()
    settings.ANYONE_CREATES_PROJECTS = True
    assert client.post(reverse("annotate:project-new"), {"name": "Mine"}).status_code == 302
    assert Project.objects.get(name="Mine").memberships.get().user == lead


def test_a_taken_or_reserved_address_is_refused_under_its_field(client, admin_user_, project):
    client.force_login(admin_user_)
    r = client.post(reverse("annotate:project-new"), {"name": "Another", "slug": project.slug})
    assert r.status_code == 400 and "there is already a project at /p/weather/" in r.content.decode()
    r = client.post(reverse("annotate:project-new"), {"name": "New", "slug": "new"})
    assert r.status_code == 400 and "names a page" in r.content.decode()
    assert Project.objects.count() == 1


# Settings and members: only leads; a refusal changes nothing --------------------------------------


@pytest.mark.parametrize("post", [
    {"section": "general", "name": "Renamed", "guidelines": "new"},
    {"section": "member-add", "user": "ann", "role": "lead"},
    {"section": "member-role", "member": "lena", "role": "annotator"},
    {"section": "member-remove", "member": "lena"},
    {"section": "labels", "error_labels": "only_one"},
    {"section": "tools", "tools": "[]"},
    {"section": "case-types"},
])
def test_an_annotator_gets_403_and_an_outsider_404_and_nothing_changes(client, project, lead, annotator,
                                                                        outsider, post):
    before = snapshot_of(project)
    client.force_login(annotator)
    assert client.get(settings_url(project)).status_code == 403
    assert client.post(settings_url(project), post).status_code == 403
    client.force_login(outsider)
    assert client.post(settings_url(project), post).status_code == 404
    assert snapshot_of(project) == before


def test_a_lead_adds_a_member_by_email_changes_the_role_and_removes_them(client, project, lead, make_user):
    make_user("ann").__class__.objects.filter(username="ann").update(email="Ann@Example.org")
    client.force_login(lead)
    r = client.post(settings_url(project), {"section": "member-add", "user": "ann@example.org", "role": "annotator"})
    assert r.status_code == 302
    assert project.memberships.get(user__username="ann").role == "annotator"
    client.post(settings_url(project), {"section": "member-role", "member": "ann", "role": "lead"})
    assert project.memberships.get(user__username="ann").role == "lead"
    client.post(settings_url(project), {"section": "member-remove", "member": "ann"})
    assert not project.memberships.filter(user__username="ann").exists()


def test_the_last_lead_cannot_be_demoted_or_removed(client, project, lead, annotator):
    client.force_login(lead)
    for post in ({"section": "member-role", "member": "lena", "role": "annotator"},
                 {"section": "member-remove", "member": "lena"}):
        r = client.post(settings_url(project), post)
        assert r.status_code == 400
        assert "lena is the project&#x27;s last lead" in r.content.decode()
    assert project.memberships.get(user=lead).role == "lead"
    page = client.get(settings_url(project)).content.decode()
    assert "the only lead" in page and 'aria-label="Remove lena"' not in page and 'aria-label="Remove ann"' in page


def test_an_unknown_user_is_named_under_the_field(client, project, lead):
    client.force_login(lead)
    r = client.post(settings_url(project), {"section": "member-add", "user": "nobody", "role": "annotator"})
    assert r.status_code == 400
    html = r.content.decode()
    assert "no user with the username or e-mail &#x27;nobody&#x27;" in html and 'value="nobody"' in html


def test_a_lead_edits_guidelines_labels_tools_and_case_types(client, project, lead):
    client.force_login(lead)
    client.post(settings_url(project), {"section": "general", "name": "Weather bot", "description": "",
                                        "guidelines": "Ask before guessing a city.", "target_template": "qwen3",
                                        "target_tokenizer": ""})
    client.post(settings_url(project), {"section": "labels", "error_labels": "wrong_tool: picked the wrong one\nrude"})
    tools = [{"name": "get_weather", "description": "Weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    client.post(settings_url(project), {"section": "tools", "tools": json.dumps(tools)})
    client.post(settings_url(project), {"section": "case-types", "required_case_types": ["no_tool", "tool_required"]})
    project.refresh_from_db()
    assert project.guidelines == "Ask before guessing a city."
    assert project.error_labels == [{"name": "wrong_tool", "description": "picked the wrong one"},
                                    {"name": "rude", "description": ""}]
    assert project.tool_specs() == tools
    assert project.required_case_types == ["tool_required", "no_tool"]
    page = client.get(settings_url(project)).content.decode()
    assert "wrong_tool: picked the wrong one" in page and "Ask before guessing a city." in page


def test_broken_tool_json_names_the_line_and_keeps_the_text(client, project, lead):
    Tool.objects.create(project=project, name="keep_me")
    client.force_login(lead)
    r = client.post(settings_url(project), {"section": "tools", "tools": '[\n{"name": "x",}\n]'})
    assert r.status_code == 400
    html = r.content.decode()
    assert "line 2, column" in html and "{&quot;name&quot;: &quot;x&quot;,}" in html
    assert list(project.tools.values_list("name", flat=True)) == ["keep_me"]


# The API -------------------------------------------------------------------------------------------


def test_the_api_creates_manages_and_refuses_like_the_pages(project, lead, annotator, make_user):
    make_user("bob")
    c = api_for(lead)
    assert c.post("/api/projects/new/", {"name": "Nope"}, format="json").status_code == 403
    r = c.post("/api/projects/weather/members/", {"user": "bob", "role": "annotator"}, format="json")
    assert r.status_code == 201 and r.data == {"username": "bob", "email": "", "role": "annotator"}
    assert c.patch("/api/projects/weather/members/bob/", {"role": "lead"}, format="json").data["role"] == "lead"
    assert c.delete("/api/projects/weather/members/bob/").status_code == 204
    assert c.patch("/api/projects/weather/members/bob/", {"role": "lead"}, format="json").status_code == 404
    r = c.delete("/api/projects/weather/members/lena/")
    assert r.status_code == 400 and r.data["errors"][0]["field"] == "member"
    before = snapshot_of(project)
    r = c.patch("/api/projects/weather/settings/", {"guidelines": "changed", "required_case_types": ["bogus"]},
                format="json")
    assert r.status_code == 400 and r.data["errors"][0]["field"] == "required_case_types"
    assert snapshot_of(project) == before  # the guidelines were not half-saved
    r = c.patch("/api/projects/weather/settings/", {"guidelines": "G", "error_labels": [{"name": "x"}]}, format="json")
    assert r.status_code == 200
    assert (r.data["guidelines"], r.data["error_labels"]) == ("G", [{"name": "x", "description": ""}])
    a = api_for(annotator)
    assert a.patch("/api/projects/weather/settings/", {"guidelines": "no"}, format="json").status_code == 403
    assert a.post("/api/projects/weather/members/", {"user": "bob"}, format="json").status_code == 403
    assert snapshot_of(project)["project"]["guidelines"] == "G"


def test_staff_create_a_project_over_the_api(make_user):
    staff = make_user("sam")
    staff.is_staff = True
    staff.save()
    r = api_for(staff).post("/api/projects/new/", {"name": "Flight helper"}, format="json")
    assert r.status_code == 201 and r.data["slug"] == "flight-helper"
    assert Membership.objects.get(project__slug="flight-helper").role == "lead"


def test_a_lead_who_leaves_lands_on_the_project_list(client, project, lead, make_user):
    other = make_user("olga", "lead", project)
    client.force_login(lead)
    r = client.post(settings_url(project), {"section": "member-remove", "member": "lena"})
    assert r.status_code == 302 and r["Location"] == "/"
    assert list(project.memberships.values_list("user__username", flat=True)) == [other.username]
    assert client.get(settings_url(project)).status_code == 404
