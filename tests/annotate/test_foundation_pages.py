"""Foundation pages: login, project list, project page, trajectories, import (UI and API)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import ImportBatch, Trajectory
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

GOOD = "\n".join(json.dumps(r) for r in [
    {"system": "s", "tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
     "turns": [{"user": "weather in Paris?", "assistant_tool": {"name": "get_weather", "arguments": {"city": "Paris"}},
                               "tool_result": "18C", "assistant_answer": "18 degrees."}]},
    {"turns": [{"user": "hello", "assistant_answer": "Hi! How can I help?"}]},
]) + "\n"
BAD_LINE_2 = GOOD.splitlines()[0] + "\n{not json\n"


def client_for(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


def upload(name: str, text: str | bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text)


def test_every_page_requires_login(client, project, demo_trajectories):
    t = demo_trajectories[0]
    for url in ["/", f"/p/{project.slug}/", f"/p/{project.slug}/trajectories/", f"/p/{project.slug}/import/",
                f"/t/{t.pk}/"]:
        r = client.get(url)
        assert r.status_code == 302 and r.url.startswith("/login/"), url


def test_the_api_answers_anonymous_clients_with_401_or_403(client, project):
    r = client.get("/api/projects/")
    assert r.status_code in (401, 403)


def test_annotator_sees_only_their_projects(client, annotator, outsider):
    r = client_for(client, annotator).get("/")
    assert b"Weather bot" in r.content and b"Other" not in r.content


def test_outsider_gets_404_for_another_projects_pages(client, outsider, project, demo_trajectories):
    c = client_for(client, outsider)
    assert c.get(f"/p/{project.slug}/").status_code == 404
    assert c.get(f"/t/{demo_trajectories[0].pk}/").status_code == 404
    assert c.get(f"/api/projects/{project.slug}/trajectories/").status_code == 404


def test_annotator_may_not_import(client, annotator, project):
    c = client_for(client, annotator)
    assert c.get(f"/p/{project.slug}/import/").status_code == 403
    r = c.post(f"/p/{project.slug}/import/", {"file": upload("a.jsonl", GOOD), "format": "auto"})
    assert r.status_code == 403 and Trajectory.objects.count() == 0


def test_lead_imports_a_file_and_sees_its_trajectories(client, lead, project):
    c = client_for(client, lead)
    r = c.post(f"/p/{project.slug}/import/", {"file": upload("a.jsonl", GOOD), "format": "auto"}, follow=True)
    assert r.status_code == 200
    assert b"Imported 2 trajectories" in r.content
    assert b"weather in Paris?" in r.content
    assert project.trajectories.count() == 2
    assert set(project.tools.values_list("name", flat=True)) == {"get_weather"}


def test_a_bad_line_imports_nothing_and_names_the_line(client, lead, project):
    c = client_for(client, lead)
    r = c.post(f"/p/{project.slug}/import/", {"file": upload("bad.jsonl", BAD_LINE_2), "format": "auto"})
    assert r.status_code == 200
    assert b"Nothing was imported" in r.content
    assert b"bad.jsonl" in r.content and b">2<" in r.content  # the line number in the report table
    assert project.trajectories.count() == 0


def test_skip_invalid_imports_the_good_records_and_reports_the_rest(client, lead, project):
    c = client_for(client, lead)
    r = c.post(f"/p/{project.slug}/import/",
               {"file": upload("bad.jsonl", BAD_LINE_2), "format": "auto", "skip_invalid": "on"})
    assert b"skipped 1" in r.content
    assert project.trajectories.count() == 1


def test_a_file_over_the_size_limit_is_refused_with_the_limit_named(client, lead, project, settings):
    settings.IMPORT_MAX_BYTES = 100
    c = client_for(client, lead)
    r = c.post(f"/p/{project.slug}/import/", {"file": upload("big.jsonl", GOOD), "format": "auto"})
    assert b"the limit is 100 bytes" in r.content
    assert project.trajectories.count() == 0


def test_trajectory_page_escapes_tool_output(client, lead, project):
    payload = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    rec = {"turns": [{"user": "q", "assistant_tool": {"name": "t", "arguments": {}}, "tool_result": payload,
                      "assistant_answer": "ok"}]}
    c = client_for(client, lead)
    c.post(f"/p/{project.slug}/import/", {"file": upload("x.jsonl", json.dumps(rec)), "format": "raw"})
    t = project.trajectories.get()
    r = c.get(f"/t/{t.pk}/")
    assert b"<script>alert(1)" not in r.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in r.content


def test_api_import_with_a_token(client, lead, project):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=lead)
    r = client.post(f"/api/projects/{project.slug}/import/", {"file": upload("a.jsonl", GOOD), "format": "auto"},
                    HTTP_AUTHORIZATION=f"Token {token.key}")
    assert r.status_code == 201, r.content
    assert r.json()["imported"] == 2
    r = client.get(f"/api/projects/{project.slug}/trajectories/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert r.json()["count"] == 2


def test_api_import_of_a_bad_file_is_400_with_line_and_nothing_written(client, lead, project):
    c = client_for(client, lead)
    r = c.post(f"/api/projects/{project.slug}/import/", {"file": upload("bad.jsonl", BAD_LINE_2)})
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert errors and errors[0]["line"] == 2 and errors[0]["file"] == "bad.jsonl"
    assert project.trajectories.count() == 0
    assert ImportBatch.objects.get().imported == 0


def test_api_document_carries_validation_findings(client, lead, project, demo_trajectories):
    fix_me = next(t for t in demo_trajectories if t.external_id == "demo-needs-fixing")
    r = client_for(client, lead).get(f"/api/trajectories/{fix_me.pk}/")
    codes = {f["code"] for f in r.json()["findings"]}
    assert "schema_violation" in codes


def test_openapi_schema_is_served(client, lead):
    r = client_for(client, lead).get("/api/schema/")
    assert r.status_code == 200 and b"/api/projects/" in r.content


def test_the_project_page_leads_a_lead_to_every_stage_of_the_flow(client, lead, project, demo_trajectories):
    r = client_for(client, lead).get(f"/p/{project.slug}/")
    for url in (f"/p/{project.slug}/import/", f"/p/{project.slug}/trajectories/", f"/training/p/{project.slug}/snapshots/",
                f"/training/p/{project.slug}/runs/", f"/evaluation/p/{project.slug}/"):
        assert f'href="{url}'.encode() in r.content, url
        assert client.get(url).status_code == 200, url
    t = demo_trajectories[0]
    assert f'href="/training/t/{t.pk}/preview/"'.encode() in client.get(f"/t/{t.pk}/").content
