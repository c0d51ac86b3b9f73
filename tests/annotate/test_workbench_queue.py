"""The dashboard (coverage warnings, labels, progress) and the queue (filters, search, sort,
pagination, next in my queue, bulk assignment)."""

from __future__ import annotations

import re

import pytest

from annotate.models import Trajectory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def listed(response) -> list[str]:
    """The titles the queue shows, in order."""
    return re.findall(r'<td class="title-cell"><a href="/t/\d+/">([^<]*)</a>', response.content.decode())


def titles(trajectories, *external_ids) -> list[str]:
    by_id = {t.external_id: t for t in trajectories}
    return [by_id[e].title.replace("'", "&#x27;") for e in external_ids]


# --- dashboard ---------------------------------------------------------------------------------------------

def test_the_dashboard_warns_when_a_required_case_type_is_missing(client, lead, project, demo_trajectories):
    Trajectory.objects.filter(project=project, case_types_index="|clarification|").delete()
    client.force_login(lead)
    html = client.get(f"/p/{project.slug}/").content.decode()
    warning = re.search(r'<div class="coverage-warning" role="alert">(.*?)</div>', html, re.S).group(1)
    assert "1 required case type missing or thin" in warning and "Clarification needed (none)" in warning
    assert "calls tools too often" in " ".join(warning.split()) or "call tools too often" in " ".join(warning.split())


def test_a_complete_demo_project_has_no_coverage_warning(client, lead, project, demo_trajectories):
    client.force_login(lead)
    html = client.get(f"/p/{project.slug}/").content.decode()
    assert "coverage-warning" not in html
    assert re.search(r"Tool required</a>.*?<span class=\"bar-n\">4</span>", html, re.S)


def test_a_thin_case_type_is_flagged_and_a_case_type_not_required_is_not(client, lead, project, demo_trajectories):
    from annotate.demo import demo_trajectories as records
    from annotate.ingest.writer import write_trajectories

    write_trajectories(project, [records()[0] for _ in range(30)])  # 40 trajectories; one clarification: 2.5 %
    project.required_case_types = ["tool_required", "clarification"]
    project.save()
    client.force_login(lead)
    html = client.get(f"/p/{project.slug}/").content.decode()
    assert "Clarification needed (1)" in html and "Tool unavailable (" not in html


def test_the_dashboard_counts_labels_and_progress_per_annotator(client, lead, annotator, project, demo_trajectories):
    Trajectory.objects.filter(pk__in=[t.pk for t in demo_trajectories[:3]]).update(assignee=annotator)
    Trajectory.objects.filter(pk=demo_trajectories[0].pk).update(status="approved")
    client.force_login(lead)
    r = client.get(f"/api/projects/{project.slug}/dashboard/")
    data = r.json()
    assert data["total"] == 10 and data["by_status"]["approved"] == 1 and data["warnings"] == []
    assert {row["label"]: row["steps"] for row in data["labels"]} == {"missing_required_arg": 1, "unexpected_arg": 1}
    ann = next(p for p in data["progress"] if p["user"] == "ann")
    assert (ann["assigned"], ann["approved"], ann["draft"], ann["percent"]) == (3, 1, 2, 33)
    html = client.get(f"/p/{project.slug}/").content.decode()
    assert re.search(r'\?assignee=\d+">ann</a>', html)


# --- queue --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("status=submitted", ["demo-clarify"]),
    ("case_type=multi_turn", ["demo-multi-turn"]),
    ("case_type=no_tool", ["demo-no-tool", "demo-unnecessary-call"]),
    ("label=unexpected_arg", ["demo-needs-fixing"]),
    ("assignee=me", ["demo-parallel"]),
    ("assignee=none&split=eval", ["demo-clarify", "demo-irrelevant"]),
    ("source=elsewhere", ["demo-failure"]),
    ("q=HAT145", ["demo-multi-turn"]),
    ("q=hat14", ["demo-multi-turn"]),
    ("q=Oslo+snow", ["demo-parallel"]),
    ("q=tokyo+fahrenheit", ["demo-needs-fixing"]),
    ("q=argument+called+city", ["demo-needs-fixing"]),  # a step's note
    ("q=Oslo+Tokyo", []),
    ("case_type=tool_required&sort=-id", ["demo-needs-fixing", "demo-multi-turn", "demo-parallel", "demo-weather"]),
])
def test_the_queue_filters(client, annotator, project, demo_trajectories, query, expected):
    by_id = {t.external_id: t for t in demo_trajectories}
    Trajectory.objects.filter(pk=by_id["demo-clarify"].pk).update(status="submitted")
    Trajectory.objects.filter(pk=by_id["demo-parallel"].pk).update(assignee=annotator)
    Trajectory.objects.filter(pk=by_id["demo-failure"].pk).update(source="elsewhere")
    client.force_login(annotator)
    r = client.get(f"/p/{project.slug}/trajectories/?{query}")
    assert r.status_code == 200
    assert listed(r) == titles(demo_trajectories, *expected)


def test_search_sees_an_edit_as_soon_as_it_is_saved(client, lead, project, demo_trajectories):
    from tests.annotate.test_workbench_editor import HTMX, step_form

    t = next(t for t in demo_trajectories if t.external_id == "demo-no-tool")
    client.force_login(lead)
    assert listed(client.get(f"/p/{project.slug}/trajectories/?q=zeppelin")) == []
    client.post(f"/t/{t.pk}/steps/0/1/", step_form(t, 0, 1, text="Like a zeppelin."), **HTMX)
    assert listed(client.get(f"/p/{project.slug}/trajectories/?q=zeppelin")) == [t.title]


def test_an_htmx_filter_answers_with_the_results_only(client, lead, project, demo_trajectories):
    client.force_login(lead)
    r = client.get(f"/p/{project.slug}/trajectories/?status=draft", HTTP_HX_REQUEST="true",
                   HTTP_HX_TARGET="queue-results")
    html = r.content.decode()
    assert html.lstrip().startswith('<div id="queue-results">') and "<html" not in html


def test_an_unknown_filter_value_is_reported_and_ignored(client, lead, project, demo_trajectories):
    client.force_login(lead)
    r = client.get(f"/p/{project.slug}/trajectories/?status=lost&case_type=no_tool")
    assert "status: Select a valid choice." in r.content.decode()
    assert len(listed(r)) == 2


def test_the_queue_pages_keep_the_filters(client, lead, project):
    from annotate.demo import demo_trajectories as records
    from annotate.ingest.writer import write_trajectories

    write_trajectories(project, [records()[2] for _ in range(60)])
    client.force_login(lead)
    first = client.get(f"/p/{project.slug}/trajectories/?case_type=no_tool").content.decode()
    assert "page 1 of 2 · 60 trajectories" in first
    assert 'href="?case_type=no_tool&page=2"' in first
    second = client.get(f"/p/{project.slug}/trajectories/?case_type=no_tool&page=2")
    assert len(listed(second)) == 10


# --- next in my queue, assignment ------------------------------------------------------------------------------

def test_next_in_my_queue_gives_my_rejected_work_first_then_claims_a_draft(client, annotator, project,
                                                                           demo_trajectories):
    mine, rejected = demo_trajectories[4], demo_trajectories[6]
    Trajectory.objects.filter(pk=mine.pk).update(assignee=annotator)
    Trajectory.objects.filter(pk=rejected.pk).update(assignee=annotator, status="rejected")
    client.force_login(annotator)
    assert client.post(f"/p/{project.slug}/next/").url == f"/t/{rejected.pk}/"
    assert client.post(f"/p/{project.slug}/next/", {"after": rejected.pk}).url == f"/t/{mine.pk}/"
    Trajectory.objects.filter(pk__in=[mine.pk, rejected.pk]).update(status="submitted")
    claimed = client.post(f"/p/{project.slug}/next/").url
    assert claimed == f"/t/{demo_trajectories[0].pk}/"
    assert Trajectory.objects.get(pk=demo_trajectories[0].pk).assignee == annotator


def test_two_annotators_never_claim_the_same_trajectory(client, annotator, make_user, project, demo_trajectories):
    from annotate.workbench.queue import next_in_queue

    other = make_user("bea", "annotator", project)
    got = [next_in_queue(u, project) for u in (annotator, other, annotator)]
    assert got[0].pk != got[1].pk and got[2].pk == got[0].pk


def test_a_lead_is_sent_to_the_next_review(client, lead, project, demo_trajectories):
    Trajectory.objects.filter(pk=demo_trajectories[3].pk).update(status="submitted")
    client.force_login(lead)
    assert client.post(f"/p/{project.slug}/next/").url == f"/t/{demo_trajectories[3].pk}/"


def test_an_empty_queue_says_so(client, annotator, project, demo_trajectories):
    Trajectory.objects.filter(project=project).update(status="approved")
    client.force_login(annotator)
    r = client.post(f"/p/{project.slug}/next/", follow=True)
    assert "Your queue is empty" in r.content.decode()


def test_a_lead_assigns_ticked_trajectories_in_bulk(client, lead, annotator, project, demo_trajectories):
    ids = [t.pk for t in demo_trajectories[:3]]
    client.force_login(lead)
    r = client.post(f"/p/{project.slug}/assign/", {"ids": ids, "assignee": annotator.pk,
                                                   "next": f"/p/{project.slug}/trajectories/?status=draft"})
    assert r.url == f"/p/{project.slug}/trajectories/?status=draft"
    assert set(Trajectory.objects.filter(assignee=annotator).values_list("pk", flat=True)) == set(ids)
    client.post(f"/p/{project.slug}/assign/", {"ids": ids[:1], "assignee": ""})
    assert Trajectory.objects.filter(assignee=annotator).count() == 2


def test_assignment_never_reaches_another_projects_trajectories(client, lead, annotator, project, demo_trajectories):
    from annotate.models import Project
    from annotate.ingest.writer import write_trajectories
    from annotate.demo import demo_trajectories as records

    elsewhere = write_trajectories(Project.objects.create(name="X", slug="x"), records()[:1])[0]
    client.force_login(lead)
    client.post(f"/p/{project.slug}/assign/", {"ids": [elsewhere.pk], "assignee": annotator.pk})
    assert Trajectory.objects.get(pk=elsewhere.pk).assignee is None


def test_an_off_site_next_address_is_ignored(client, lead, project, demo_trajectories):
    client.force_login(lead)
    r = client.post(f"/p/{project.slug}/assign/", {"ids": [demo_trajectories[0].pk], "assignee": "",
                                                   "next": "https://evil.example/"})
    assert r.url == f"/p/{project.slug}/trajectories/"


def test_column_headers_sort_and_keep_the_filters(client, lead, project, demo_trajectories):
    client.force_login(lead)
    html = client.get(f"/p/{project.slug}/trajectories/?case_type=tool_required").content.decode()
    link = re.search(r'<a href="([^"]*)">Steps</a>', html).group(1)
    assert link == "?case_type=tool_required&amp;sort=-step_count"
    most_steps = client.get(f"/p/{project.slug}/trajectories/?case_type=tool_required&sort=-step_count")
    assert listed(most_steps)[0] == titles(demo_trajectories, "demo-multi-turn")[0]
    assert "Steps↓" in most_steps.content.decode()


def test_the_queue_count_stops_at_its_limit_on_the_page_and_in_the_api(client, lead, project, monkeypatch):
    """Past QueuePaginator.limit the page says "more than N" and the API says count_capped; the
    pages past the limit are still reachable (the count follows the requested page)."""
    from annotate.demo import demo_trajectories as records
    from annotate.ingest.writer import write_trajectories
    from annotate.workbench.queue import QueuePaginator

    monkeypatch.setattr(QueuePaginator, "limit", 60)
    write_trajectories(project, [records()[2] for _ in range(130)])
    client.force_login(lead)
    first = client.get(f"/p/{project.slug}/trajectories/?case_type=no_tool").content.decode()
    assert "page 1 · more than 60 trajectories" in first and 'href="?case_type=no_tool&page=2"' in first
    second = client.get(f"/p/{project.slug}/trajectories/?case_type=no_tool&page=2").content.decode()
    assert "page 2 · more than 100 trajectories" in second and 'href="?case_type=no_tool&page=3"' in second
    third = client.get(f"/p/{project.slug}/trajectories/?case_type=no_tool&page=3")
    assert "page 3 of 3 · 130 trajectories" in third.content.decode() and len(listed(third)) == 30

    api = client.get(f"/api/projects/{project.slug}/trajectories/?case_type=no_tool").json()
    assert (api["count"], api["count_capped"], len(api["results"])) == (60, True, 50) and api["next"]
    last = client.get(f"/api/projects/{project.slug}/trajectories/?case_type=no_tool&page=3").json()
    assert (last["count"], last["count_capped"], len(last["results"]), last["next"]) == (130, False, 30, None)
    monkeypatch.setattr(QueuePaginator, "limit", 1000)
    exact = client.get(f"/api/projects/{project.slug}/trajectories/?case_type=no_tool").json()
    assert (exact["count"], exact["count_capped"]) == (130, False)
