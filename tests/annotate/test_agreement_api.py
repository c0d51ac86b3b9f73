"""The agreement API, page and CLI: leads change overlap and read the figures; annotators and
outsiders cannot, and their attempts change nothing."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from annotate.agreement import services
from annotate.agreement.models import AgreementReport, OverlapSettings, OverlapVersion

pytestmark = pytest.mark.django_db


def put(client, body):
    return client.put("/api/projects/weather/overlap/", data=json.dumps(body), content_type="application/json")


def test_a_lead_sets_overlap_and_makes_versions_over_the_api(client, lead, project, demo_trajectories):
    client.force_login(lead)
    r = put(client, {"annotators": 2, "share": 1.0, "threshold": 0.6, "seed": 3})
    assert r.status_code == 200, r.content
    assert client.get("/api/projects/weather/overlap/").json() == {"annotators": 2, "share": 1.0, "threshold": 0.6,
                                                                    "seed": 3}
    r = client.post("/api/projects/weather/overlap/versions/")
    assert r.json() == {"items": len(demo_trajectories)}
    assert OverlapVersion.objects.count() == 2 * len(demo_trajectories)
    for v in OverlapVersion.objects.select_related("original", "copy"):  # each copy of its own original
        assert (v.copy.external_id, v.copy.title, v.copy.step_count) == (
            v.original.external_id, v.original.title, v.original.step_count)


def test_bad_settings_name_the_field_and_change_nothing(client, lead, project):
    client.force_login(lead)
    r = put(client, {"annotators": 2, "share": 1.5, "threshold": 0.6, "seed": 0})
    assert r.status_code == 400 and "share" in r.json()
    r = put(client, {"annotators": 2, "share": 0.5, "threshold": 0.6, "seed": 0, "sheer": 1})
    assert r.status_code == 400 and "sheer" in r.json()
    assert services.settings_for(project).annotators == 1


def test_annotators_and_outsiders_cannot_change_overlap_or_read_figures(client, annotator, outsider, project,
                                                                       demo_trajectories):
    services.settings_for(project)
    for user, code in ((annotator, 403), (outsider, 404)):
        client.force_login(user)
        assert put(client, {"annotators": 3, "share": 1.0, "threshold": 0.5, "seed": 0}).status_code == code
        assert client.post("/api/projects/weather/overlap/versions/").status_code == code
        assert client.get("/api/projects/weather/agreement/").status_code == code
        assert client.get("/p/weather/agreement/").status_code == code
        assert client.post("/p/weather/agreement/", {"action": "settings", "annotators": 3, "share": 1,
                                                     "threshold": 0.5, "seed": 0}).status_code == code
    conf = OverlapSettings.objects.get(project=project)
    assert (conf.annotators, conf.share) == (1, 1.0)
    assert OverlapVersion.objects.count() == 0 and AgreementReport.objects.count() == 0


def test_the_page_saves_settings_and_shows_the_figures(client, lead, project, demo_trajectories):
    client.force_login(lead)
    r = client.post("/p/weather/agreement/", {"action": "settings", "annotators": 2, "share": 0.5,
                                              "threshold": 0.7, "seed": 0})
    assert r.status_code == 302
    assert services.settings_for(project).annotators == 2
    r = client.post("/p/weather/agreement/", {"action": "settings", "annotators": 2, "share": 2,
                                              "threshold": 0.7, "seed": 0})
    assert r.status_code == 200 and "A share between 0 and 1" in r.content.decode()
    assert "No figures yet" in client.get("/p/weather/agreement/").content.decode()
    services.compute_report(project, rounds=10)
    page = client.get("/p/weather/agreement/").content.decode()
    assert "Per error label" in page and "wrong_tool" in page


def test_the_cli_sets_overlap_makes_versions_assigns_and_prints_figures(project, demo_trajectories, annotator):
    out = StringIO()
    call_command("agreement", "settings", "--project", "weather", "--annotators", "2", "--share", "1", stdout=out)
    call_command("agreement", "versions", "--project", "weather", "--limit", "2", stdout=out)
    call_command("agreement", "assign", "--project", "weather", "--user", "ann", stdout=out)
    call_command("agreement", "figures", "--project", "weather", "--json", stdout=out)
    text = out.getvalue()
    assert "annotators=2 share=1.0" in text and "versions made for 2 trajectories" in text
    copy = OverlapVersion.objects.get(annotator=annotator).copy_id
    assert f"trajectory {copy}" in text
    assert '"items": 0' in text  # nothing submitted yet
