"""In Chromium: a judge run (the tests' chat server as the judge) leaves suggestions that an
annotator accepts and dismisses in the editor; the judge run's page shows agreement per label."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from annotate.ingest.writer import write_trajectories
from annotate.models import Revision, StepLabel, StepSuggestion
from evaluation.generate import GenerationSettings
from evaluation.judge import launch_judge, run_judge_job
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD
from tests.evaluation.runs_harness import ChatServer
from tests.evaluation.test_judge import REPLY, weather_doc

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_annotator_accepts_and_dismisses_a_judges_suggestions(new_page, project, lead, annotator):
    t = write_trajectories(project, [weather_doc()])[0]
    t.assignee = annotator
    t.save(update_fields=["assignee"])
    with ChatServer(lambda body: {"content": json.dumps(REPLY)}) as server:
        server.allow(lead)
        run = launch_judge(project=project, trajectory_ids=[t.pk], model_source="endpoint", endpoint_url=server.url,
                           endpoint_model="judge-1", gen=GenerationSettings(), user=lead, enqueue=False)
        assert run_judge_job(run.pk) == "succeeded"

    page = new_page()
    login(page, "ann", PASSWORD)
    page.goto(f"/t/{t.pk}/")
    box = page.locator("section#suggestions")
    expect(box.locator("li[data-label]")).to_have_count(2)
    screenshot(page, "judge-suggestions-1366")
    box.locator("li[data-label=ungrounded_answer] button.dismiss-suggestion").click()
    expect(box.locator("li[data-label]")).to_have_count(1)
    box.locator("li[data-label=wrong_tool] button.accept-suggestion").click()
    # The editor reloads with the label on the step, and the box is empty.
    expect(page.locator("#no-suggestions")).to_be_visible()
    expect(page.locator("#step-0-0")).to_contain_text("wrong_tool")
    assert list(StepLabel.objects.filter(trajectory=t).values_list("label", flat=True)) == ["wrong_tool"]
    assert Revision.objects.get(trajectory=t, version=2).author == annotator
    assert set(StepSuggestion.objects.values_list("status", flat=True)) == {"accepted", "dismissed"}

    lead_page = new_page()
    login(lead_page, "lena", PASSWORD)
    lead_page.goto(f"/evaluation/judge/{run.pk}/")
    table = lead_page.locator("#judge-agreement")
    expect(table.locator("tr[data-label=wrong_tool] td.kappa")).to_have_text("1.00")
    expect(table.locator("tr[data-label=ungrounded_answer]")).to_contain_text("0.67")
    screenshot(lead_page, "judge-run-1366")
