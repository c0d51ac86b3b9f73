"""In Chromium, end to end: a lead makes an eval set from a prompt snapshot, launches two evaluations
from the form (the tiny model, then an OpenAI-compatible endpoint that answers with the references),
a real Celery worker on the ``eval`` queue runs them, the dashboard fills in without a reload, the
two runs compare side by side, and a failure becomes a preference pair. Screenshots in var/screenshots/.

The web server and the worker are subprocesses sharing a SQLite file with this process (pytest's
in-memory test database is invisible to them); the endpoint is a local HTTP server in this process.
"""

from __future__ import annotations

import re

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM, screenshot
from tests.evaluation.runs_harness import ChatServer, make_prompt_snapshot, oracle, prompt_snapshot_dir
from tests.training.jobs_harness import WebServer, Worker, shared_file_db

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("worker")]

PASSWORD = "pw-for-e2e-1"
RUN_TIMEOUT = 240_000  # ms: a cold start of torch on a busy 2-core machine is slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("eval-e2e")


@pytest.fixture(scope="module")
def stack(data_dir, django_db_blocker, tiny_model_dir):
    """The shared database with a lead and a prompt snapshot, a worker on the eval queue, the web server."""
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); `make test` installs it")
    from django.contrib.auth import get_user_model

    from annotate.models import Membership, Project

    db = data_dir / "studio.sqlite3"
    with shared_file_db(db, django_db_blocker), override_settings(EVAL_RUNS_DIR=data_dir / "eval-runs"):
        project = Project.objects.create(name="Eval e2e", slug="eval-e2e")
        lead = get_user_model().objects.create_user("lead-e2e", password=PASSWORD)
        Membership.objects.create(user=lead, project=project, role="lead")
        snapshot = make_prompt_snapshot(project, prompt_snapshot_dir(tiny_model_dir))
        worker = Worker(data_dir, db, queues="eval")
        web = WebServer(data_dir, db)
        try:
            yield {"project": project, "snapshot": snapshot, "web": web, "worker": worker}
        finally:
            web.stop()
            worker.stop()


def test_a_lead_launches_two_evaluations_watches_them_fill_in_and_compares_them(browser, stack, tiny_model_dir):
    from evaluation.items import EvalItem
    from evaluation.models import EvalRun, EvalSet

    project, snapshot, web = stack["project"], stack["snapshot"], stack["web"]
    ctx = browser.new_context(base_url=web.url, viewport={"width": 1366, "height": 900})
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    page.goto("/login/")
    page.fill("input[name=username]", "lead-e2e")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")

    # 0. An eval set: the snapshot's eval split, frozen with its gold references.
    page.goto(f"/evaluation/p/{project.slug}/")
    page.get_by_role("link", name=re.compile("Eval sets")).click()
    page.check("input[name=source][value=snapshot]")
    page.select_option("#id_snapshot", str(snapshot.pk))
    page.select_option("#id_split", "eval")
    page.get_by_role("button", name="Make the eval set").click()
    eval_set = EvalSet.objects.get()
    expect(page.locator(f"#set-{eval_set.pk}")).to_contain_text("4")
    screenshot(page, "evaluation-0-eval-sets")
    items = [EvalItem.from_dict(d) for d in eval_set.items.order_by("position").values_list("document", flat=True)]

    # 1. The tiny model, from the launch form.
    page.goto(f"/evaluation/p/{project.slug}/")
    page.get_by_role("link", name="New evaluation").click()
    page.select_option("#id_eval_set", str(eval_set.pk))
    page.check("input[name=model_source][value=folder]")
    page.fill("#id_model_path", str(tiny_model_dir))
    page.fill("#id_name", "tiny base")
    page.fill("#id_max_new_tokens", "8")
    page.fill("#id_batch_size", "2")
    page.select_option("#id_response_parser", "fallbacks")
    screenshot(page, "evaluation-1-launch")
    page.get_by_role("button", name="Launch evaluation").click()
    page.wait_for_url(re.compile(r".*/evaluation/runs/\d+/$"))
    base = EvalRun.objects.get(name="tiny base")
    page.evaluate("window.__notReloaded = true")  # htmx swaps the live region; the page itself stays
    expect(page.locator("#run-status")).to_have_text(re.compile("Queued|Running"))
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#run-progress")).to_contain_text(f"{len(items)} of {len(items)} items evaluated")
    expect(page.locator("#metrics tr[data-metric=correct]")).to_contain_text("0.0 %")
    expect(page.locator("#items-table tr[data-position]")).to_have_count(len(items))
    screenshot(page, "evaluation-2-tiny-model-dashboard")

    # 2. An endpoint that answers with the references.
    with ChatServer(oracle(items)) as server:
        server.allow()  # an admin put it on the endpoint allowlist (loopback allowed for it)
        page.goto(f"/evaluation/p/{project.slug}/new/")
        page.select_option("#id_eval_set", str(eval_set.pk))
        page.check("input[name=model_source][value=endpoint]")
        page.fill("#id_endpoint_url", server.url)
        page.fill("#id_endpoint_model", "oracle")
        page.fill("#id_name", "oracle endpoint")
        page.get_by_role("button", name="Launch evaluation").click()
        page.wait_for_url(re.compile(r".*/evaluation/runs/\d+/$"))
        expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
        assert server.requests  # the worker's runner called it
    expect(page.locator("#metrics tr[data-metric=correct]")).to_contain_text("100.0 %")
    expect(page.locator("#confusion td.miss.nonzero")).to_have_count(0)
    oracle_run = EvalRun.objects.get(name="oracle endpoint")
    screenshot(page, "evaluation-3-endpoint-dashboard")

    # 3. Side by side.
    page.goto(f"/evaluation/p/{project.slug}/")
    page.check(f"input[name=runs][value='{base.pk}']")
    page.check(f"input[name=runs][value='{oracle_run.pk}']")
    page.get_by_role("button", name="Compare the selected runs side by side").click()
    page.wait_for_url(re.compile(r".*/compare/\?.*"))
    row = page.locator("#comparison tr[data-metric=correct]")
    expect(row.locator("td").nth(1)).to_contain_text(re.compile(r"^0\.0 %"))  # oldest first: the base run
    expect(row.locator("td").nth(2)).to_contain_text(re.compile(r"^100\.0 %"))
    expect(page.locator("#comparison-chart svg")).to_have_count(1)
    screenshot(page, "evaluation-4-compare")

    # 4. A failure of the tiny model becomes a pair: its output rejected, the reference chosen.
    page.goto(f"/evaluation/runs/{base.pk}/?show=failed")
    page.locator("#items-table tr[data-position] a").first.click()
    expect(page.locator("#item-verdict")).to_have_text("failed")
    page.get_by_role("button", name="Make pair").click()
    expect(page.locator(".messages")).to_contain_text("draft pair #")
    expect(page.locator("#made-pair")).to_be_visible()
    screenshot(page, "evaluation-5-item-pair")
    ctx.close()
