"""End to end in Chromium against the app as `make run` starts it: a web server and a Celery worker
(subprocesses, sharing a SQLite file and a filesystem broker). A lead launches an SFT run and a
DPO run of the tiny model from the form, watches the charts fill in, and reads the model card.

Screenshots: var/screenshots/training-*.png.
"""

from __future__ import annotations

import re

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.training.jobs_harness import WebServer, Worker, export_snapshot_files, make_snapshot, shared_file_db

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("worker")]

RUN_TIMEOUT_MS = 300_000  # a cold training process on a busy 2-core machine; a healthy run takes well under a minute


@pytest.fixture(scope="module")
def app(tmp_path_factory, django_db_blocker, tiny_model_dir):
    """Data dir with the demo model, a shared database with a lead and two snapshots, web + worker."""
    from django.contrib.auth import get_user_model

    from annotate.models import Membership, Project

    data_dir = tmp_path_factory.mktemp("studio-e2e")
    (data_dir / "models").mkdir()
    (data_dir / "models" / "tiny-qwen3").symlink_to(tiny_model_dir)  # the form's default base model
    db_path = data_dir / "studio.sqlite3"
    with shared_file_db(db_path, django_db_blocker), override_settings(TRAINING_RUNS_DIR=data_dir / "runs"):
        project = Project.objects.create(name="Travel assistant", slug="travel")
        lead = get_user_model().objects.create_user("lena", password="lena-pw-1")
        Membership.objects.create(project=project, user=lead, role="lead")
        snaps = tmp_path_factory.mktemp("snapshots")
        sft = make_snapshot(project, "sft", export_snapshot_files("sft", snaps / "sft", tiny_model_dir),
                            name="travel sft v1")
        dpo = make_snapshot(project, "dpo", export_snapshot_files("dpo", snaps / "dpo", tiny_model_dir),
                            name="travel pairs v1")
        worker = Worker(data_dir, db_path, queues="default,train")
        web = WebServer(data_dir, db_path)
        try:
            yield {"url": web.url, "project": project, "sft": sft, "dpo": dpo, "web": web, "worker": worker}
        finally:
            web.stop()
            worker.stop()


@pytest.fixture
def page(browser, app):
    ctx = browser.new_context(base_url=app["url"], viewport={"width": 1366, "height": 900})
    ctx.set_default_timeout(30_000)
    p = ctx.new_page()
    yield p
    ctx.close()


def _launch(page, app, kind: str, snapshot, steps: str):
    login(page, "lena", "lena-pw-1")
    page.goto(f"/training/p/{app['project'].slug}/runs/")
    page.click(f"#new-{kind}")
    expect(page.locator("input[name=base_model]")).to_have_value(re.compile(r"models/tiny-qwen3$"))  # the default
    page.select_option("select[name=snapshot]", str(snapshot.pk))
    page.fill("input[name=max_steps]", steps)
    page.fill("input[name=batch_size]", "1")
    page.fill("input[name=eval_steps]", "2")
    page.fill("input[name=save_steps]", "2")
    page.click("button[value=preview]")
    preview = page.locator("#preview")
    for words in (f"{kind.upper()}Config(", f"max_steps={steps},", "python -m training.runner"):
        expect(preview).to_contain_text(words)
    screenshot(page, f"training-{kind}-preview")
    page.click("button[value=launch]")
    page.wait_for_url(re.compile(r"/training/runs/\d+/$"))  # no #preview carried over
    return int(re.search(r"/runs/(\d+)/", page.url).group(1))


def _watch(page, app, kind: str):
    try:
        # htmx swaps the live region every 2 s; a chart with points means metrics arrived while it ran.
        page.wait_for_selector('figure[data-chart="loss"]:not([data-points="0"])', timeout=RUN_TIMEOUT_MS)
        screenshot(page, f"training-{kind}-running")
        page.wait_for_selector('#live[data-status="succeeded"]', timeout=RUN_TIMEOUT_MS)
    except Exception:
        screenshot(page, f"training-{kind}-timeout")
        raise AssertionError(f"the run did not succeed: {page.inner_text('#live')[:2000]}"
                             f"{app['worker'].tail()}{app['web'].tail()}") from None
    expect(page.locator("#job-status")).to_have_text("Succeeded")
    expect(page.locator("#charts svg").nth(3)).to_be_attached()  # at least four charts
    screenshot(page, f"training-{kind}-succeeded")


def _read_card(page, snapshot) -> str:
    page.click("a[data-artifact=card]")
    expect(page.locator("body")).to_contain_text(snapshot.content_hash)
    expect(page.locator("body")).to_contain_text(snapshot.name)
    return page.inner_text("body")


def test_a_lead_trains_sft_from_the_form_and_watches_it_succeed(page, app):
    job_id = _launch(page, app, "sft", app["sft"], "4")
    _watch(page, app, "sft")
    expect(page.locator("#latest-values")).to_contain_text("eval loss")  # the snapshot's eval split was evaluated
    job_url = page.url
    card = _read_card(page, app["sft"])
    assert "# SFT model of" in card and "qwen3_training" in card and "trl " in card
    page.goto(job_url)
    with page.expect_download() as download:
        page.click("a[data-artifact=model]")
    assert download.value.suggested_filename == f"run-{job_id}-model.zip"


def test_a_lead_trains_dpo_from_the_form_and_compares_runs(page, app):
    _launch(page, app, "dpo", app["dpo"], "3")
    _watch(page, app, "dpo")
    expect(page.locator('figure[data-chart="rewards/margins"]:not([data-points="0"])')).to_have_count(1)
    job_url = page.url
    card = _read_card(page, app["dpo"])
    assert "# DPO model of" in card and '"beta": 0.1' in card
    page.goto(job_url)
    page.click("nav >> text=Runs")
    boxes = page.locator("#runs input[name=compare]")
    for i in range(boxes.count()):
        boxes.nth(i).check()
    page.click("#compare-runs")
    try:
        expect(page.locator("#overlay")).to_contain_text("Training loss")
    except AssertionError:
        screenshot(page, "training-runs-overlay-missing")
        raise
    expect(page.locator("#overlay")).to_contain_text("travel pairs v1")
    screenshot(page, "training-runs-overlay")
