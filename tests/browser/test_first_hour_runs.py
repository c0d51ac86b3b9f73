"""In Chromium, the first hour on the run pages: a snapshot made with the form's defaults is one
training accepts, and its audit speaks plainly; the forms say when they bring back old values and
never pre-select a choice that fails; the run page before its first logged step; confirmations
before cancelling. Screenshots at 1366 and 768 px: var/screenshots/first-hour-*.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def both_widths(page, name: str) -> None:
    """Screenshots at 1366 and 768 px, and nothing wider than the window at 768 px."""
    screenshot(page, f"first-hour-{name}-1366")
    page.set_viewport_size({"width": 768, "height": 900})
    screenshot(page, f"first-hour-{name}-768")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.set_viewport_size({"width": 1366, "height": 800})
    assert overflow <= 0, f"{name} is {overflow} px wider than a 768 px window"


@pytest.fixture
def demo_project(project, demo_trajectories, tiny_model_dir, settings):
    """The demo as `make run` seeds it: no target template or tokenizer chosen, so the form's own."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DEMO_MODEL_DIR = tiny_model_dir
    project.trajectories.update(status="approved")
    return project


@pytest.fixture
def queued(monkeypatch):
    """Exports the page queues, for the test to run as the worker would (no worker in this test)."""
    from training.snapshots.tasks import export_snapshot

    sent: list[int] = []
    monkeypatch.setattr(export_snapshot, "delay", sent.append)
    return sent


def _snapshot_with_defaults(page, project, queued, name: str, *, untick_tokenized: bool = False):
    from training.snapshots.tasks import export_snapshot

    page.goto(f"/training/p/{project.slug}/snapshots/new/")
    both_widths(page, "snapshot-form")
    if untick_tokenized:
        page.uncheck("input[name=tokenized]")
    page.click("#create-snapshot")
    page.wait_for_selector("#live[data-status=queued]")
    export_snapshot(queued[-1])  # the worker's part; the page polls and picks up the result
    page.wait_for_selector("#live[data-status=succeeded]", timeout=60000)
    return page


def test_a_snapshot_made_with_the_defaults_is_one_training_accepts(page, demo_project, lead, queued):
    login(page, lead.username, PASSWORD)
    _snapshot_with_defaults(page, demo_project, queued, "defaults")
    expect(page.locator("#audit-verdict")).to_have_text(re.compile(r"^\s*The audit found no errors"))
    expect(page.locator("ul.messages")).to_have_count(0)  # "Queued …" went when the export finished
    both_widths(page, "snapshot-defaults")


def test_audit_findings_say_in_plain_words_what_they_mean_and_what_to_do(page, demo_project, lead, queued):
    login(page, lead.username, PASSWORD)
    _snapshot_with_defaults(page, demo_project, queued, "untokenized", untick_tokenized=True)
    expect(page.locator("#audit-verdict")).to_contain_text("Blocked")
    row = page.locator("#audit-findings tr[data-code=masks_need_tokenized]")
    expect(row.locator(".finding-title")).to_have_text(re.compile(r"cannot say so"))
    expect(row).to_contain_text("TRL would train on steps you excluded")
    expect(row.locator(".finding-todo")).to_contain_text("Add input_ids, labels and assistant_masks")
    code = row.locator("code.finding-code")
    expect(code).to_have_text("masks_need_tokenized")  # still there for those who know it, but smaller
    title_size = row.locator(".finding-title").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert code.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") < title_size
    for tr in page.locator("#audit-findings tr[data-code]").all():  # every finding has a title, not just a code
        assert tr.locator(".finding-title").inner_text().strip() != tr.get_attribute("data-code")
    both_widths(page, "snapshot-blocked")


# --- forms that bring back old values ------------------------------------------------------------

@pytest.fixture
def sent(monkeypatch):
    """Rows the pages send to a worker (no worker in these tests)."""
    out: list[tuple[str, int]] = []
    monkeypatch.setattr("jobs.queue.send", lambda model, pk: out.append((model.__name__, pk)))
    return out


@pytest.fixture
def trained(demo_project, tmp_path, settings):
    """A finished SFT run with a final model folder, as a lead would have after training."""
    from tests.training.jobs_harness import bare_snapshot_dir, make_snapshot
    from training import runner
    from training.models import JobStatus, TrainingJob

    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    snap = make_snapshot(demo_project, "sft", bare_snapshot_dir(tmp_path / "sft"), name="demo sft")
    out = tmp_path / "runs" / "1"
    (out / runner.FINAL_DIR).mkdir(parents=True)
    return TrainingJob.objects.create(project=demo_project, snapshot=snap, kind="sft", name="first model",
                                      base_model=str(settings.DEMO_MODEL_DIR), status=JobStatus.SUCCEEDED,
                                      output_dir=str(out), config={"method": "full"})


@pytest.fixture
def prompt_snapshot(demo_project, tiny_model_dir):
    from tests.evaluation.runs_harness import make_prompt_snapshot, prompt_snapshot_dir

    return make_prompt_snapshot(demo_project, prompt_snapshot_dir(tiny_model_dir))


def test_evaluate_this_model_then_make_an_eval_set_comes_back_with_the_run_still_chosen(
        page, demo_project, lead, trained, prompt_snapshot, sent):
    from evaluation.models import EvalRun

    login(page, lead.username, PASSWORD)
    page.goto(f"/training/runs/{trained.pk}/")
    page.click("#evaluate-run")
    expect(page.locator("select[name=training_job]")).to_have_value(str(trained.pk))
    page.click("#make-set-link")  # the project has no eval set yet
    expect(page.locator("#back-to-next")).to_be_visible()
    both_widths(page, "eval-sets-from-launch")
    page.click("#make-set")  # the newest prompt snapshot is chosen already
    page.wait_for_url(re.compile(r"/evaluation/p/weather/new/\?"))
    expect(page.locator("select[name=training_job]")).to_have_value(str(trained.pk))
    expect(page.locator("input[name=model_source][value=training_job]")).to_be_checked()
    expect(page.locator("select[name=eval_set]")).not_to_have_value("")
    page.click("#launch")
    page.wait_for_url(re.compile(r"/evaluation/runs/\d+/$"))
    run = EvalRun.objects.get()
    assert run.training_job_id == trained.pk and run.model_source == EvalRun.TRAINING_JOB


def test_the_next_page_after_making_an_eval_set_stays_inside_the_site(page, demo_project, lead, prompt_snapshot):
    login(page, lead.username, PASSWORD)
    for away in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        page.goto(f"/evaluation/p/{demo_project.slug}/sets/?next={away}")
        expect(page.locator("#back-to-next")).to_have_count(0)
        page.click("#make-set")
        page.wait_for_load_state("networkidle")
        assert page.url.startswith(page.evaluate("location.origin")) and "/evaluation/p/weather/sets/" in page.url


def test_the_evaluation_form_never_preselects_a_training_run_that_is_not_chosen(
        page, demo_project, lead, trained, prompt_snapshot, sent):
    """The last evaluation was of a training run since deleted: the first submit succeeds with the defaults."""
    from evaluation import jobs
    from evaluation.eval_sets import create_eval_set
    from evaluation.generate import GenerationSettings
    from evaluation.models import EvalRun, EvalSet

    es = create_eval_set(demo_project, EvalSet.SNAPSHOT, snapshot=prompt_snapshot)
    jobs.launch_eval(project=demo_project, eval_set=es, model_source=EvalRun.TRAINING_JOB, training_job=trained,
                     gen=GenerationSettings(), enqueue=False)
    trained.delete()
    login(page, lead.username, PASSWORD)
    page.goto(f"/evaluation/p/{demo_project.slug}/new/")
    expect(page.locator("input[name=model_source][value=training_job]")).not_to_be_checked()
    both_widths(page, "eval-form")
    page.click("#launch")
    page.wait_for_url(re.compile(r"/evaluation/runs/\d+/$"))
    assert EvalRun.objects.count() == 2


def test_the_training_form_says_when_it_brings_back_the_last_runs_values_and_resets(page, demo_project, lead, trained):
    from django.utils import timezone

    from training.models import TrainingDefaults

    TrainingDefaults.objects.create(project=demo_project, kind="sft", updated_by=lead,
                                    values={"learning_rate": 0.001, "max_steps": 7})
    login(page, lead.username, PASSWORD)
    page.goto(f"/training/p/{demo_project.slug}/runs/new/?kind=sft")
    today = timezone.localtime().strftime("%-d %b %Y")
    expect(page.locator("#remembered")).to_contain_text(f"from your last SFT run on {today}")
    expect(page.locator("input[name=learning_rate]")).to_have_value("0.001")
    expect(page.locator("input[name=max_steps]")).to_have_value("7")
    both_widths(page, "train-form-remembered")
    page.click("#reset-defaults")
    expect(page.locator("input[name=learning_rate]")).to_have_value(re.compile(r"^(2e-05|0\.00002)$"))
    expect(page.locator("input[name=max_steps]")).to_have_value("")
    expect(page.locator("#remembered")).to_contain_text("defaults")


# --- the run page before, during and after its first steps ---------------------------------------

@pytest.fixture
def running(trained, tmp_path):
    """A run that has started but logged no step yet."""
    from training.models import JobStatus, TrainingJob

    out = tmp_path / "runs" / "2"
    (out / "checkpoints").mkdir(parents=True)
    return TrainingJob.objects.create(project=trained.project, snapshot=trained.snapshot, kind="sft",
                                      name="second model", base_model=trained.base_model, status=JobStatus.RUNNING,
                                      output_dir=str(out), total_steps=1200,
                                      config={"method": "full", "logging_steps": 100, "max_steps": 1200},
                                      message="Loading the model")


def test_before_the_first_logged_step_the_run_page_shows_an_empty_state_not_empty_axes(page, lead, running):
    login(page, lead.username, PASSWORD)
    page.goto(f"/training/runs/{running.pk}/")
    empty = page.locator("#charts-empty")
    expect(empty).to_contain_text("No step logged yet")
    expect(empty).to_contain_text("every 100 steps")
    expect(page.locator("#live svg")).to_have_count(0)  # no axes with nothing on them
    both_widths(page, "run-before-first-step")


def test_chart_axis_labels_are_whole_numbers_under_a_step_title_never_cut(page, lead, running):
    from training.models import MetricPoint

    MetricPoint.objects.bulk_create([MetricPoint(job=running, step=s, values={
        "loss": 2 - s / 1e4, "eval_loss": 2.1 - s / 1e4, "learning_rate": 2e-5, "grad_norm": 1.0,
        "tokens_per_second": 900.0}) for s in range(100, 1201, 100)])
    login(page, lead.username, PASSWORD)
    page.goto(f"/training/runs/{running.pk}/")
    loss = page.locator('figure[data-chart="loss"] svg')
    expect(loss).to_be_visible()
    labels = [t.strip() for t in page.eval_on_selector_all("#charts svg text", "els => els.map(e => e.textContent)")]
    assert not [t for t in labels if t.endswith("…")], labels
    assert "1,200" in labels and "step" in labels
    clipped = loss.evaluate("""svg => { const box = svg.getBoundingClientRect();
        return [...svg.querySelectorAll('text')].filter(t => t.textContent.trim())
          .filter(t => { const r = t.getBoundingClientRect(); return r.bottom > box.bottom + 1 || r.right > box.right + 1; })
          .map(t => t.textContent); }""")
    assert not clipped, f"cut off at the chart's edge: {clipped}"  # the legend (train, eval) included
    both_widths(page, "run-with-steps")


def test_a_launch_message_goes_once_the_run_it_announced_has_moved_on(page, demo_project, lead, trained, sent):
    from training.models import JobStatus, MetricPoint, TrainingJob

    login(page, lead.username, PASSWORD)
    page.goto(f"/training/p/{demo_project.slug}/runs/new/?kind=sft")
    page.click("button[value=launch]")  # the defaults, the newest snapshot
    page.wait_for_url(re.compile(r"/training/runs/\d+/$"))
    expect(page.locator("ul.messages")).to_contain_text("Queued")
    job = TrainingJob.objects.order_by("-pk").first()
    MetricPoint.objects.create(job=job, step=1, values={"loss": 1.0})
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, current_step=1, total_steps=1,
                                                 progress=1.0, message="Finished")
    expect(page.locator("#live")).to_have_attribute("data-status", "succeeded", timeout=10000)
    expect(page.locator("ul.messages")).to_have_count(0)  # "Queued …" no longer true
    expect(page.locator("#job-status")).to_have_text("Succeeded")


def test_the_file_list_keeps_pace_with_the_step_counter(page, lead, running):
    from training.models import TrainingJob

    for step in (100, 200):  # the trainer saved step 200 before the worker wrote the counter
        (Path(running.output_dir) / "checkpoints" / f"checkpoint-{step}").mkdir()
    TrainingJob.objects.filter(pk=running.pk).update(current_step=150)
    login(page, lead.username, PASSWORD)
    page.goto(f"/training/runs/{running.pk}/")
    expect(page.locator("#job-progress")).to_contain_text("Step 150 of 1200")
    expect(page.locator("#artifacts [data-artifact=checkpoint-100]")).to_have_count(1)
    expect(page.locator("#artifacts [data-artifact=checkpoint-200]")).to_have_count(0)  # not reached on the page yet


# --- confirmations before cancelling; evaluation progress -----------------------------------------

def test_cancelling_a_training_run_asks_first(page, lead, running):
    login(page, lead.username, PASSWORD)
    page.goto(f"/training/runs/{running.pk}/")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#cancel-run")
    page.wait_for_timeout(300)
    running.refresh_from_db()
    assert asked and "Cancel run" in asked[0] and "resumed" in asked[0]
    assert not running.cancel_requested  # "no" leaves it running
    page.once("dialog", lambda d: d.accept())
    page.click("#cancel-run")
    page.wait_for_load_state("networkidle")
    running.refresh_from_db()
    assert running.cancel_requested or running.status == "cancelled"


@pytest.fixture
def eval_running(demo_project, prompt_snapshot, tiny_model_dir):
    from evaluation import jobs
    from evaluation.eval_sets import create_eval_set
    from evaluation.generate import GenerationSettings
    from evaluation.models import EvalRun, EvalSet

    es = create_eval_set(demo_project, EvalSet.SNAPSHOT, snapshot=prompt_snapshot)
    run = jobs.launch_eval(project=demo_project, eval_set=es, model_source=EvalRun.FOLDER,
                           model_path=str(tiny_model_dir), gen=GenerationSettings(), enqueue=False)
    EvalRun.objects.filter(pk=run.pk).update(status="running", done_items=1, message="Generating")
    run.refresh_from_db()
    return run


def test_an_evaluation_shows_items_done_live_and_asks_before_cancelling(page, lead, eval_running):
    from evaluation.models import EvalRun

    total = eval_running.total_items
    assert total >= 3
    login(page, lead.username, PASSWORD)
    page.goto(f"/evaluation/runs/{eval_running.pk}/")
    expect(page.locator("#run-progress")).to_contain_text(f"1 of {total} items evaluated")
    page.evaluate("window.__stillHere = true")
    EvalRun.objects.filter(pk=eval_running.pk).update(done_items=2)
    expect(page.locator("#run-progress")).to_contain_text(f"2 of {total} items evaluated", timeout=10000)
    assert page.evaluate("window.__stillHere") is True  # updated in place, no reload
    both_widths(page, "eval-running")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#cancel-run")
    page.wait_for_timeout(300)
    eval_running.refresh_from_db()
    assert asked and f"2 of {total}" in asked[0] and not eval_running.cancel_requested


def test_the_evaluation_form_says_when_it_brings_back_the_last_evaluations_settings(
        page, demo_project, lead, prompt_snapshot, tiny_model_dir):
    from evaluation import jobs
    from evaluation.eval_sets import create_eval_set
    from evaluation.generate import GenerationSettings
    from evaluation.models import EvalRun, EvalSet

    es = create_eval_set(demo_project, EvalSet.SNAPSHOT, snapshot=prompt_snapshot)
    last = jobs.launch_eval(project=demo_project, eval_set=es, model_source=EvalRun.FOLDER, user=lead,
                            model_path=str(tiny_model_dir), gen=GenerationSettings(max_new_tokens=64), enqueue=False)
    login(page, lead.username, PASSWORD)
    page.goto(f"/evaluation/p/{demo_project.slug}/new/")
    expect(page.locator("#remembered")).to_contain_text(f"from your last evaluation (#{last.pk})")
    expect(page.locator("input[name=max_new_tokens]")).to_have_value("64")
    page.click("#reset-defaults")
    expect(page.locator("input[name=max_new_tokens]")).to_have_value(str(GenerationSettings().max_new_tokens))
    expect(page.locator("#remembered")).to_contain_text("defaults")


# Each option of each select on the page that is wider than the select can show (its text at the
# select's font against the select's width less its padding and arrow): what a user would see cut.
CUT_OPTIONS = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  const cut = [];
  for (const s of document.querySelectorAll('select')) {
    if (!s.offsetParent) continue;  // (hidden: another kind's fields)
    const st = getComputedStyle(s);
    ctx.font = `${st.fontWeight} ${st.fontSize} ${st.fontFamily}`;
    const room = s.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight) - 16;
    for (const o of s.options) {
      const width = ctx.measureText(o.text).width;
      if (width > room) cut.push(`${s.name}: "${o.text}" (${Math.round(width)} px in ${Math.round(room)})`);
    }
  }
  return cut;
}"""


@pytest.mark.parametrize("form", ["/training/p/{}/runs/new/?kind=sft", "/training/p/{}/runs/new/?kind=dpo",
                                  "/rl/p/{}/grpo/new/"])
def test_no_option_of_the_run_forms_selects_is_cut_at_1366_px(page, demo_project, lead, form):
    login(page, lead.username, PASSWORD)
    page.set_viewport_size({"width": 1366, "height": 800})
    page.goto(form.format(demo_project.slug))
    assert page.locator("select:visible").count() >= 4
    assert page.evaluate(CUT_OPTIONS) == []
    both_widths(page, "run-form-" + ("grpo" if "grpo" in form else form.rsplit("=", 1)[1]))
