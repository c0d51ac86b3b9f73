"""The first hour, in Chromium, as a new lead on an empty project (issue 18): create the project, invite an
annotator, import a file, annotate, snapshot with the defaults, train, evaluate. No error on the way and no
field changed from its default (fields with no default, such as a name or a file, are filled; choices
the app has pre-selected are left alone).

The app runs as `make run` starts it: a web server and a Celery worker (subprocesses sharing a SQLite file
and a filesystem broker). Each page is photographed at 1366 and 768 px into var/test/screenshots/first-hour/.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM
from tests.training.jobs_harness import WebServer, Worker, shared_file_db

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("worker")]

SHOTS = Path(__file__).resolve().parents[2] / "var" / "test" / "screenshots" / "first-hour"
PASSWORD = "pw-first-hour-1"
JOB_TIMEOUT = 300_000  # ms: a cold torch start on a busy 2-core machine


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_blocker, tiny_model_dir):
    """An empty database with two accounts (a staff member who will lead, an annotator), a worker on every
    queue, the web server, and the demo model where the training form looks for it by default."""
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); `make test` installs it")
    from django.contrib.auth import get_user_model

    data_dir = tmp_path_factory.mktemp("first-hour")
    (data_dir / "models").mkdir()
    (data_dir / "models" / "tiny-qwen3").symlink_to(tiny_model_dir)
    db = data_dir / "studio.sqlite3"
    with shared_file_db(db, django_db_blocker), override_settings(TRAINING_RUNS_DIR=data_dir / "runs",
                                                                  EVAL_RUNS_DIR=data_dir / "eval-runs"):
        users = get_user_model().objects
        users.create_user("lena", email="lena@example.org", password=PASSWORD, is_staff=True)
        users.create_user("ann", email="ann@example.org", password=PASSWORD)
        worker = Worker(data_dir, db, queues="default,export,train,eval")
        web = WebServer(data_dir, db)
        try:
            yield {"web": web, "worker": worker, "data_dir": data_dir}
        finally:
            web.stop()
            worker.stop()


def demo_file(path: Path) -> Path:
    """The demo trajectories as OpenAI / TRL messages records: what a new user most likely has."""
    from annotate.demo import demo_trajectories
    from annotate.formats import export_records

    path.write_text("".join(json.dumps(r) + "\n" for r in export_records(demo_trajectories(), "messages")))
    return path


class Walk:
    """The page, every page photographed at both widths, and no error page on the way."""

    def __init__(self, page, stack):
        self.page, self.stack, self.n = page, stack, 0
        shutil.rmtree(SHOTS, ignore_errors=True)  # only this walk's photos
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.on("dialog", lambda d: d.accept())  # "are you sure?" confirmations: the user says yes
        self.failed: list[str] = []  # pages and htmx requests answered 4xx / 5xx
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 400 and r.request.resource_type in ("document", "xhr", "fetch") else None)

    def shoot(self, name: str) -> None:
        self.n += 1
        self.page.wait_for_load_state("networkidle")
        for width in (1366, 768):
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.screenshot(path=str(SHOTS / f"{self.n:02d}-{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": 1366, "height": 900})

    def no_error(self) -> None:
        """No error page, flash or form error here (the failure names them, with a photo of the page)."""
        self.page.wait_for_load_state("networkidle")
        errors = self.page.locator("[role=alert].error, .msg-error, #form-errors, .field-errors li, .errorlist li")
        title = self.page.title()
        if errors.count() or self.failed or re.search(r"server error|forbidden|not found|bad request", title, re.I):
            self.shoot("unexpected-error")
            raise AssertionError(f"an error on {self.page.url} ({title!r}): {errors.all_inner_texts()} {self.failed}")

    def wait_job(self, selector: str, status: str, what: str) -> None:
        try:
            expect(self.page.locator(selector)).to_have_text(re.compile(status), timeout=JOB_TIMEOUT)
        except AssertionError:
            self.shoot(f"{what}-timeout")
            raise AssertionError(f"{what} did not reach {status}: {self.page.inner_text('main')[:3000]}"
                                 f"{self.stack['worker'].tail()}{self.stack['web'].tail()}") from None


def test_a_new_lead_gets_from_an_empty_app_to_an_evaluated_model(browser, stack, tmp_path):
    ctx = browser.new_context(base_url=stack["web"].url, viewport={"width": 1366, "height": 900})
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    walk = Walk(page, stack)

    # 1. Log in; the project list is empty and offers "New project".
    page.goto("/login/")
    page.fill("input[name=username]", "lena")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    walk.shoot("projects-empty")
    page.get_by_role("link", name="New project").click()
    walk.shoot("new-project")
    page.get_by_label("Name").fill("Travel assistant")
    page.get_by_role("button", name="Create the project").click()
    page.wait_for_url("**/p/travel-assistant/")
    walk.no_error()
    panel = page.locator("#getting-started")
    expect(panel.locator(".gs-step")).to_have_count(5)
    expect(panel.locator(".gs-next")).to_contain_text("Import trajectories")
    walk.shoot("dashboard-getting-started")

    # 2. Invite an annotator from the settings (the default role is annotator).
    page.get_by_role("link", name="Settings").first.click()
    walk.shoot("settings")
    page.get_by_label("Add a member (username or e-mail)").fill("ann@example.org")
    page.get_by_role("button", name="Add", exact=True).click()
    walk.no_error()
    expect(page.locator("tr[data-member=ann]")).to_contain_text("Annotator")
    walk.shoot("settings-member-added")

    # 3. Import a file, from the panel's first step.
    page.goto("/p/travel-assistant/")
    panel.get_by_role("link", name="Import trajectories").click()
    walk.shoot("import")
    page.set_input_files("input[type=file][name=file]", str(demo_file(tmp_path / "travel.jsonl")))
    page.get_by_role("button", name="Preview", exact=True).click()
    walk.no_error()
    walk.shoot("import-preview")
    page.get_by_role("button", name=re.compile(r"Import \d+ trajectories")).click()
    page.wait_for_load_state("networkidle")
    walk.no_error()
    walk.shoot("import-done")

    # 4. Annotate: from the panel to the queue; fix an answer, submit, approve; hand in a few more.
    page.goto("/p/travel-assistant/")
    expect(panel.locator('.gs-step[data-step="import"]')).to_have_class(re.compile("gs-done"))
    panel.get_by_role("link", name="Annotate").click()
    walk.shoot("queue")
    links = page.locator("table a[href^='/t/']")
    hrefs = [links.nth(i).get_attribute("href") for i in range(min(links.count(), 4))]
    assert len(hrefs) == 4, "the queue lists the imported trajectories"
    for i, href in enumerate(hrefs):
        page.goto(href)
        if i == 0:
            walk.shoot("editor")
            answer = page.locator("section.step.answer").first
            text = answer.locator("textarea[name=text]")
            text.fill(text.input_value() + " Anything else?")
            answer.get_by_role("button", name="Save step").click()
            expect(answer.locator(".saved-mark")).to_contain_text("saved")
        page.get_by_role("button", name="Submit for review").click()
        page.wait_for_load_state("networkidle")
        walk.no_error()
        page.goto(href)
        page.get_by_role("button", name="Approve").click()
        page.wait_for_load_state("networkidle")
        walk.no_error()
        if i == 0:
            walk.shoot("approved")

    # 5. Snapshot with the defaults.
    page.goto("/p/travel-assistant/")
    expect(panel.locator('.gs-step[data-step="annotate"]')).to_have_class(re.compile("gs-done"))
    panel.get_by_role("link", name="Snapshot a dataset").click()
    walk.shoot("snapshot-form")
    page.locator("#snapshot-form button[type=submit].primary").first.click()
    page.wait_for_url(re.compile(r"/training/snapshots/\d+/$"))
    walk.no_error()
    walk.wait_job("#snapshot-status, #job-status, .status-badge", "Succeeded|Ready|Done", "the snapshot export")
    walk.shoot("snapshot-done")
    # The defaults make a snapshot that training takes (issue 18, item 1): no blocking audit error.
    expect(page.locator("body")).not_to_contain_text(re.compile(r"Blocked|blocks training", re.I))

    # 6. Train with the defaults.
    page.goto("/p/travel-assistant/")
    expect(panel.locator('.gs-step[data-step="snapshot"]')).to_have_class(re.compile("gs-done"))
    panel.get_by_role("link", name="Train").click()
    walk.shoot("train-form")
    page.get_by_role("button", name=re.compile("^Launch")).first.click()
    page.wait_for_url(re.compile(r"/training/runs/\d+/$"))
    walk.no_error()
    walk.wait_job("#job-status", "Succeeded|Failed|Cancelled", "the training run")
    walk.shoot("train-done")
    expect(page.locator("#job-status")).to_have_text("Succeeded")

    # 7. Evaluate the trained model, from its run page.
    page.get_by_role("link", name=re.compile("Evaluate this model")).click()
    walk.shoot("eval-form")
    if page.locator("#id_eval_set option").count() <= 1:  # no eval set yet: make one, then come back
        page.get_by_role("link", name="Make one").click()
        walk.shoot("eval-sets")
        page.get_by_role("button", name=re.compile("Make the eval set")).click()
        walk.no_error()
        page.wait_for_url(re.compile(r"/evaluation/p/[\w-]+/new/"))  # back to the form: the run, the new set
        walk.shoot("eval-form-again")
    page.get_by_role("button", name="Launch evaluation").click()
    page.wait_for_url(re.compile(r".*/evaluation/runs/\d+/$"))
    walk.no_error()
    walk.wait_job("#run-status", "Succeeded|Failed|Cancelled", "the evaluation")
    walk.shoot("eval-done")
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    # What was measured is the model just trained, not the base model the form also offers.
    expect(page.locator("#run-what a[href*='/training/runs/']")).to_have_count(1)

    page.goto("/p/travel-assistant/")
    walk.shoot("dashboard-after")
    expect(page.locator("#getting-started")).to_have_count(0)  # every step done: the panel has gone
    ctx.close()
