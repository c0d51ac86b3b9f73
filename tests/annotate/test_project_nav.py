"""The top bar inside a project: the same links on every project page, whatever app drew it."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

PAGES = [("annotate:project-detail", "Dashboard"), ("annotate:trajectory-list", "Queue"),
         ("annotate:import", "Import"), ("annotate:pair-list", "Pairs"), ("training:snapshot-list", "Snapshots"),
         ("training:run-list", "Runs"), ("evaluation:run-list", "Evaluations")]


def top_bar(html: str) -> list[str]:
    nav = html.split("<nav>")[1].split("</nav>")[0]
    return re.findall(r">([^<>]+)</a>", nav)


@pytest.mark.parametrize("name, _", PAGES)
def test_every_project_page_offers_the_same_links_to_a_lead(client, lead, project, name, _):
    client.force_login(lead)
    page = client.get(reverse(name, args=[project.slug]))
    assert page.status_code == 200
    assert top_bar(page.content.decode()) == ["Projects", "Dashboard", "Queue", "Pairs", "Snapshots", "Runs",
                                              "Evaluations", "Adjudication", "Settings", "API", "Notifications"]


@pytest.mark.parametrize("name", ["annotate:project-detail", "annotate:trajectory-list", "training:run-list",
                                  "evaluation:run-list"])
def test_an_annotator_sees_the_same_bar_without_snapshots(client, annotator, project, name):
    client.force_login(annotator)
    html = client.get(reverse(name, args=[project.slug])).content.decode()
    assert top_bar(html) == ["Projects", "Dashboard", "Queue", "Pairs", "Runs", "Evaluations", "API", "Notifications"]
