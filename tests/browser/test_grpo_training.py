"""End to end in Chromium against the app as `make run` starts it (a web server and a Celery worker
as subprocesses, sharing a SQLite file and a filesystem broker): a lead launches a GRPO run of the
tiny model against the demo environment from the form, watches rewards and KL appear on the charts
while it runs, cancels it after its step-10 checkpoint and resumes it to the end, compares the two
runs' rewards; its rollouts are in the annotators' queue.

Screenshots: var/screenshots/grpo-e2e-*.png.
"""

from __future__ import annotations

import re

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.evaluation.runs_harness import make_prompt_snapshot, prompt_snapshot_dir
from tests.training.jobs_harness import WebServer, Worker, shared_file_db

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("worker")]

RUN_TIMEOUT_MS = 600_000  # cold TRL processes and 30 GRPO steps on a busy 2-core machine
MAX_STEPS = 30  # cancelled after the step-10 checkpoint, with room to spare before the end
FORM = {"num_generations": "2", "prompts_per_step": "1", "max_completion_length": "24",
        "max_tool_calling_iterations": "2", "max_steps": str(MAX_STEPS), "rollout_every": "2", "save_steps": "10",
        "logging_steps": "1"}


@pytest.fixture(scope="module")
def app(tmp_path_factory, django_db_blocker, tiny_model_dir):
    from django.contrib.auth import get_user_model

    from annotate.models import Membership, Project

    data_dir = tmp_path_factory.mktemp("studio-grpo-e2e")
    (data_dir / "models").mkdir()
    (data_dir / "models" / "tiny-qwen3").symlink_to(tiny_model_dir)  # the form's default base model
    db_path = data_dir / "studio.sqlite3"
    with shared_file_db(db_path, django_db_blocker), override_settings(TRAINING_RUNS_DIR=data_dir / "runs"):
        project = Project.objects.create(name="Travel assistant", slug="travel")
        users = get_user_model().objects
        Membership.objects.create(project=project, user=users.create_user("lena", password="lena-pw-1"), role="lead")
        Membership.objects.create(project=project, user=users.create_user("ann", password="ann-pw-1"),
                                  role="annotator")
        prompts = make_prompt_snapshot(project, prompt_snapshot_dir(tiny_model_dir), name="travel prompts v1")
        worker = Worker(data_dir, db_path, queues="default,train")
        web = WebServer(data_dir, db_path)
        try:
            yield {"url": web.url, "project": project, "prompts": prompts, "web": web, "worker": worker}
        finally:
            web.stop()
            worker.stop()


@pytest.fixture
def context(browser, app):
    ctx = browser.new_context(base_url=app["url"], viewport={"width": 1366, "height": 900})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def _wait(page, app, selector: str, shot: str) -> None:
    try:
        page.wait_for_selector(selector, timeout=RUN_TIMEOUT_MS)
    except Exception:
        screenshot(page, f"grpo-e2e-timeout-{shot}")
        raise AssertionError(f"waited in vain for {selector}: {page.inner_text('#live')[:2000]}"
                             f"{app['worker'].tail()}{app['web'].tail()}") from None


def test_a_lead_runs_grpo_from_the_form_cancels_resumes_and_its_rollouts_reach_the_queue(context, app):
    page = context.new_page()
    login(page, "lena", "lena-pw-1")
    page.goto(f"/training/p/{app['project'].slug}/runs/")
    page.click("#new-grpo")  # the runs page offers GRPO beside SFT and DPO
    page.select_option("select[name=snapshot]", str(app["prompts"].pk))
    for name, value in FORM.items():
        page.fill(f"input[name={name}]", value)
    page.click("button[value=preview]")
    expect(page.locator("#preview")).to_contain_text("GRPOConfig(")
    expect(page.locator("#preview")).to_contain_text(f"max_steps={MAX_STEPS}")
    screenshot(page, "grpo-e2e-1-preview")
    page.click("button[value=launch]")
    try:
        page.wait_for_url(re.compile(r"/training/runs/\d+/(#preview)?$"))
    except Exception:
        screenshot(page, "grpo-e2e-timeout-launch")
        raise AssertionError(f"the launch did not go ahead: {page.inner_text('main')[:3000]}") from None

    # Rewards and KL on the charts while it runs (htmx swaps the live region every 2 s).
    _wait(page, app, 'figure[data-chart="Total reward"]:not([data-points="0"])', "rewards")
    _wait(page, app, 'figure[data-chart="KL divergence"]:not([data-points="0"])', "kl")
    assert page.get_attribute("#live", "data-status") == "running"
    for chart in ("Reward: format_reward", "Completion length (tokens)", "Tool calls per episode"):
        expect(page.locator(f'figure[data-chart="{chart}"]')).not_to_have_attribute("data-points", "0")
    _wait(page, app, "#rollouts li[data-rollout]", "rollouts")
    screenshot(page, "grpo-e2e-2-running")

    # Ten steps and their checkpoint, then cancel; the rest comes from the checkpoint.
    _wait(page, app, 'a[data-artifact="checkpoint-10"]', "checkpoint")
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel run #N? ... can be resumed"
    page.click("#cancel-run")
    _wait(page, app, '#live[data-status="cancelled"]', "cancelled")
    stopped_at = int(re.search(r"Step (\d+)", page.inner_text("#job-progress")).group(1))
    assert 10 <= stopped_at < MAX_STEPS
    page.click("#resume-run")
    page.wait_for_url(re.compile(r"/training/runs/\d+/(#preview)?$"))
    expect(page.locator("h1")).to_contain_text("resumed from step")
    _wait(page, app, '#live[data-status="succeeded"]', "resumed")
    expect(page.locator("#job-progress")).to_contain_text(f"Step {MAX_STEPS} of {MAX_STEPS}")
    points = int(page.get_attribute('figure[data-chart="Total reward"]', "data-points"))
    assert points >= MAX_STEPS - 1  # the old run's curve up to its checkpoint, then the resumed steps
    expect(page.locator("#rollouts li[data-rollout]").first).to_be_visible()
    screenshot(page, "grpo-e2e-3-resumed")

    # The two runs' reward curves side by side on the runs page.
    page.click("nav >> text=Runs")
    boxes = page.locator("#runs input[name=compare]")
    for i in range(boxes.count()):
        boxes.nth(i).check()
    page.click("#compare-runs")
    expect(page.locator("#reward-overlay")).to_contain_text("Total reward of 2 GRPO runs")
    screenshot(page, "grpo-e2e-5-compare")

    # An annotator finds the rollouts in the queue and opens one in the editor.
    other = context.browser.new_context(base_url=app["url"], viewport={"width": 768, "height": 900})
    try:
        annotator = other.new_page()
        login(annotator, "ann", "ann-pw-1")
        annotator.goto(f"/p/{app['project'].slug}/trajectories/?source=rollout")
        first = annotator.locator("a[href^='/t/']").first
        expect(first).to_be_visible()
        screenshot(annotator, "grpo-e2e-4-queue-768")
        first.click()
        annotator.wait_for_url(re.compile(r"/t/\d+/$"))
    finally:
        other.close()
