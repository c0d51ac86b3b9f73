"""In Chromium: the page of a running GRPO job fills in its reward bands, KL and episode charts as
the worker's tail reads the run's events, then lists the rollouts; an annotator finds them in the
queue, a lead turns the best and the worst of one prompt into a preference pair in one click.

The run's files are written here as the GRPO runner writes them and read by the worker's own tail
(``training.jobs.RunMonitor``); the end-to-end run from the form is ``test_grpo_training.py``.
Screenshots: var/screenshots/grpo-*.png at 1366 and 768 px.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from annotate.pairs.models import Pair
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD
from tests.training.jobs_harness import bare_snapshot_dir, make_snapshot
from tests.training.rollout_files import BAD, GOOD, append_events, line, log_event, write_rollouts
from training.jobs import RunMonitor
from training.models import TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def grpo_job(project, tmp_path) -> TrainingJob:
    snapshot = make_snapshot(project, "prompt", bare_snapshot_dir(tmp_path / "prompts"), name="prompts v1")
    run_dir = tmp_path / "runs" / "grpo"
    run_dir.mkdir(parents=True)
    return TrainingJob.objects.create(project=project, snapshot=snapshot, kind="grpo", name="GRPO weather",
                                      base_model="/models/tiny", output_dir=str(run_dir), status="running",
                                      total_steps=20, current_step=0, message="Training")


class Tail:
    """The worker's side: read the run's new events into rows, as the supervision loop does."""

    def __init__(self, job: TrainingJob):
        self.job, self.monitor = job, RunMonitor(job)

    def read(self) -> None:
        self.monitor.ingest()
        TrainingJob.objects.filter(pk=self.job.pk).update(**self.monitor.fields())


def test_a_running_grpo_job_charts_rewards_and_its_rollouts_become_pairs(new_page, lead, annotator, grpo_job):
    run = Path(grpo_job.output_dir)
    tail = Tail(grpo_job)
    page = new_page()
    login(page, lead.username, PASSWORD)
    page.goto(f"/training/runs/{grpo_job.pk}/")
    expect(page.locator("#grpo-waiting")).to_be_visible()
    expect(page.locator("#rollouts-none")).to_be_visible()

    append_events(run, {"event": "step", "step": 5, "max_steps": 20}, log_event(5, 1.1))
    tail.read()
    # htmx polls the live region every 2 s: the charts fill in without a reload.
    for chart in ("Total reward", "Reward: tool_name", "KL divergence"):
        expect(page.locator(f'figure[data-chart="{chart}"]')).to_have_attribute("data-points", "1", timeout=15000)

    rel = write_rollouts(run, 10, [line("p1", 10, GOOD, 1.0), line("p1", 10, BAD, 0.0),
                                   line("p2", 10, BAD, 0.0, user="Weather in Rome?")])
    append_events(run, {"event": "step", "step": 10, "max_steps": 20}, log_event(10, 1.6),
                  {"event": "rollouts", "step": 10, "path": rel, "count": 3})
    tail.read()
    expect(page.locator('figure[data-chart="Total reward"]')).to_have_attribute("data-points", "2", timeout=15000)
    expect(page.locator("#rollouts table[data-step='10'] li[data-rollout]")).to_have_count(3)
    expect(page.locator("#job-progress")).to_contain_text("Step 10 of 20")
    screenshot(page, "grpo-1-running-1366")
    page.set_viewport_size({"width": 768, "height": 900})
    screenshot(page, "grpo-1-running-768")
    page.set_viewport_size({"width": 1366, "height": 900})

    other = new_page()  # an annotator finds the rollouts in the queue and opens one
    login(other, annotator.username, PASSWORD)
    other.goto(f"/training/runs/{grpo_job.pk}/")
    expect(other.locator(".make-pair")).to_have_count(0)
    other.click("#rollouts-in-queue")
    expect(other.locator("body")).to_contain_text("Weather in Rome?")
    screenshot(other, "grpo-2-queue-768")

    best = page.locator("tr[data-prompt='p1'] li[data-rollout]").first.get_attribute("data-rollout")
    page.locator("tr[data-prompt='p1'] .make-pair").click()
    page.wait_for_url("**/pairs/*/")
    screenshot(page, "grpo-3-pair-1366")
    pair = Pair.objects.get()
    assert (pair.source, pair.status, pair.trajectory_id) == ("rollout", "draft", int(best))
    assert [s["kind"] for s in pair.chosen] == ["tool_call", "tool_result", "answer"]
    assert [s["kind"] for s in pair.rejected] == ["answer"]
