"""GRPO rollouts back into curation and the GRPO dashboard: the worker's tail stores each episode of
a ``rollouts`` event as a draft trajectory (once, whatever re-reads it), the run page charts the
rewards and lists the rollouts, and a lead turns a high- and a low-reward rollout of one prompt
into a preference pair in one click (the API does the same). No worker: the run folder's files are
written here as the GRPO runner writes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.urls import reverse

from annotate.models import Trajectory
from annotate.pairs.models import Pair
from annotate.trajectory import Trajectory as Canonical
from tests.conftest import PASSWORD
from tests.training.jobs_harness import bare_snapshot_dir, fast_users, make_snapshot
from tests.training.rollout_files import BAD, GOOD, append_events, episode_doc, line, log_event, write_rollouts
from training.jobs import RunMonitor
from training.models import MetricPoint, TrainingJob
from training.rollouts.episodes import RolloutError, pair_from_rollouts, read_episodes, rollouts_file


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path):
    fast_users(settings)
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"


@pytest.fixture
def grpo_job(project, tmp_path) -> TrainingJob:
    snapshot = make_snapshot(project, "prompt", bare_snapshot_dir(tmp_path / "prompts"), name="prompts v1")
    run_dir = tmp_path / "runs" / "7-grpo"
    run_dir.mkdir(parents=True)
    return TrainingJob.objects.create(project=project, snapshot=snapshot, kind="grpo", name="GRPO weather",
                                      base_model="/models/tiny", output_dir=str(run_dir), status="running",
                                      total_steps=20)


def ingest(job: TrainingJob) -> RunMonitor:
    """One read of the run's events by a fresh worker tail (as after a worker restart)."""
    monitor = RunMonitor(job)
    monitor.ingest()
    return monitor


@pytest.fixture
def stored(grpo_job) -> dict[str, Trajectory]:
    """Step 10's rollouts stored: prompt p1 answered well (reward 2) and badly (1), prompt p2 once."""
    run = Path(grpo_job.output_dir)
    rel = write_rollouts(run, 10, [line("p1", 10, GOOD, 1.0), line("p1", 10, BAD, 0.0),
                                   line("p2", 10, BAD, 0.0, user="Weather in Rome?")])
    append_events(run, log_event(5, 1.2), log_event(10, 1.5), {"event": "rollouts", "step": 10, "path": rel, "count": 3})
    monitor = ingest(grpo_job)
    grpo_job.summary = monitor.summary
    grpo_job.save(update_fields=["summary"])
    rows = {r.external_id: r for r in Trajectory.objects.filter(source="rollout")}
    return {"good": rows["rollout-%d-10-1" % grpo_job.pk], "bad": rows["rollout-%d-10-2" % grpo_job.pk],
            "other": rows["rollout-%d-10-3" % grpo_job.pk]}


def _login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


# The worker stores the episodes -----------------------------------------------------------------

def test_each_episode_becomes_a_draft_rollout_trajectory_with_its_rewards(grpo_job, stored):
    good = stored["good"]
    assert good.project_id == grpo_job.project_id and good.status == "draft" and good.source == "rollout"
    extra = good.extra
    assert (extra["training_job"], extra["step"], extra["prompt_id"], extra["total_reward"]) == (grpo_job.pk, 10, "p1", 2.0)
    assert extra["rewards"] == {"tool_name": 1.0, "format": 1.0} and extra["source_trajectory"] is None
    doc = good.to_canonical()
    assert [s.kind for s in doc.turns[0].steps] == ["tool_call", "tool_result", "answer"]
    assert "rollout" in good.tags and f"run-{grpo_job.pk}" in good.tags
    assert MetricPoint.objects.filter(job=grpo_job).count() == 2  # the log events still become points


def test_a_re_read_after_a_worker_restart_stores_nothing_twice(grpo_job, stored):
    assert Trajectory.objects.filter(source="rollout").count() == 3
    monitor = ingest(grpo_job)  # a new worker reads metrics.jsonl from the start again
    assert Trajectory.objects.filter(source="rollout").count() == 3
    assert monitor.summary["rollouts_stored"] == 3 + 0


def test_a_rollouts_path_outside_the_run_folder_is_refused_and_said_on_the_row(grpo_job, tmp_path):
    outside = tmp_path / "elsewhere"
    write_rollouts(outside, 4, [line("p1", 4, GOOD, 1.0)])
    append_events(Path(grpo_job.output_dir), {"event": "rollouts", "step": 4, "path": "../../elsewhere/rollouts/"
                                              "step-000004.jsonl", "count": 1})
    monitor = ingest(grpo_job)
    assert not Trajectory.objects.filter(source="rollout").exists()
    assert "outside the run folder" in monitor.summary["rollout_problems"][0]


def test_a_bad_line_stores_nothing_of_its_file_and_names_file_line_and_field(grpo_job):
    run = Path(grpo_job.output_dir)
    broken = line("p1", 6, GOOD, 1.0, total_reward="high")
    rel = write_rollouts(run, 6, [line("p1", 6, GOOD, 1.0), broken])
    append_events(run, {"event": "rollouts", "step": 6, "path": rel, "count": 2})
    monitor = ingest(grpo_job)
    assert not Trajectory.objects.filter(source="rollout").exists()
    [problem] = monitor.summary["rollout_problems"]
    assert "rollouts/step-000006.jsonl, line 2, total_reward" in problem


@pytest.mark.parametrize("rel", ["/etc/passwd", "", "../x.jsonl"])
def test_rollouts_file_accepts_only_paths_inside_the_run_folder(tmp_path, rel):
    with pytest.raises(RolloutError):
        rollouts_file(tmp_path, {"path": rel})
    assert rollouts_file(tmp_path, {"path": "rollouts/step-000001.jsonl"}) == tmp_path / "rollouts/step-000001.jsonl"


def test_the_examples_in_the_pure_module_hold():
    import doctest

    from training.rollouts import episodes

    assert doctest.testmod(episodes).failed == 0


def test_read_episodes_refuses_a_line_that_is_not_json_naming_it():
    with pytest.raises(RolloutError, match=r"step-000001.jsonl, line 2: not JSON"):
        read_episodes(json.dumps(line("p", 1, GOOD, 1.0)) + "\n{oops\n", "step-000001.jsonl")


# The pair two rollouts make ---------------------------------------------------------------------

def test_the_higher_reward_is_chosen_whichever_way_round_they_come():
    good, bad = Canonical.from_dict(episode_doc(GOOD)), Canonical.from_dict(episode_doc(BAD))
    for pair in (pair_from_rollouts(good, 2.0, bad, 1.0), pair_from_rollouts(bad, 1.0, good, 2.0)):
        assert [s.kind for s in pair.chosen] == ["tool_call", "tool_result", "answer"]
        assert [s.kind for s in pair.rejected] == ["answer"]
        assert pair.context.turns[0].user == "Weather in Paris?" and pair.context.turns[0].steps == []
        assert pair.source == "rollout"


def test_equal_rewards_or_different_prompts_make_no_pair():
    from annotate.pairs.core import PairError

    good, bad = Canonical.from_dict(episode_doc(GOOD)), Canonical.from_dict(episode_doc(BAD))
    with pytest.raises(PairError, match="both rollouts scored 1"):
        pair_from_rollouts(good, 1.0, bad, 1.0)
    with pytest.raises(PairError, match="different prompts"):
        pair_from_rollouts(good, 2.0, Canonical.from_dict(episode_doc(BAD, "Weather in Rome?")), 1.0)


# The run page -----------------------------------------------------------------------------------

def test_the_run_page_charts_each_reward_kl_and_the_episode_shares(client, annotator, grpo_job, stored):
    html = _login(client, annotator).get(reverse("training:job-detail", args=[grpo_job.pk])).content.decode()
    for title in ("Total reward", "Reward: tool_name", "Reward: format", "KL divergence",
                  "Completion length (tokens)", "Tool calls per episode"):
        assert f'data-chart="{title}" data-points="2"' in html, title
    assert 'data-chart="Episodes that hit a limit (share)" data-points="4"' in html  # two shares, two steps
    assert "± std" in html and "iteration limit" in html


def test_the_run_page_lists_rollouts_by_prompt_best_first_linking_the_editor(client, annotator, grpo_job, stored):
    html = _login(client, annotator).get(reverse("training:job-detail", args=[grpo_job.pk])).content.decode()
    good, bad = stored["good"], stored["bad"]
    assert html.index(f'data-rollout="{good.pk}"') < html.index(f'data-rollout="{bad.pk}"')
    assert reverse("annotate:trajectory-detail", args=[good.pk]) in html
    assert "Make pair" not in html  # annotators label rollouts; leads make pairs
    assert _login(client, annotator).get(reverse("annotate:trajectory-detail", args=[good.pk])).status_code == 200


def test_a_lead_makes_a_pair_in_one_click_and_the_higher_reward_is_chosen(client, lead, grpo_job, stored):
    html = _login(client, lead).get(reverse("training:job-detail", args=[grpo_job.pk])).content.decode()
    assert html.count("Make pair: best vs worst") == 1  # p1 has two rewards; p2 one episode
    response = client.post(reverse("training:rollout-pair", args=[grpo_job.pk]),
                           {"chosen": stored["good"].pk, "rejected": stored["bad"].pk})
    pair = Pair.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("annotate:pair-detail", args=[pair.pk])
    assert pair.source == "rollout" and pair.status == "draft" and pair.trajectory_id == stored["good"].pk
    assert [s["kind"] for s in pair.chosen] == ["tool_call", "tool_result", "answer"]
    assert [s["kind"] for s in pair.rejected] == ["answer"]
    client.post(reverse("training:rollout-pair", args=[grpo_job.pk]),
                {"chosen": stored["good"].pk, "rejected": stored["bad"].pk})
    assert Pair.objects.count() == 1  # the same click again opens the same pair


@pytest.mark.parametrize("who, code", [("annotator", 403), ("outsider", 404)])
def test_without_the_lead_role_the_pair_click_changes_nothing(client, request, grpo_job, stored, who, code):
    user = request.getfixturevalue(who)
    response = _login(client, user).post(reverse("training:rollout-pair", args=[grpo_job.pk]),
                                         {"chosen": stored["good"].pk, "rejected": stored["bad"].pk})
    assert response.status_code == code and not Pair.objects.exists()


def test_rollouts_of_different_prompts_make_no_pair_and_say_why(client, lead, grpo_job, stored):
    response = _login(client, lead).post(reverse("training:rollout-pair", args=[grpo_job.pk]),
                                         {"chosen": stored["good"].pk, "rejected": stored["other"].pk}, follow=True)
    assert not Pair.objects.exists()
    assert "answer different prompts" in response.content.decode()


def test_the_compare_page_overlays_the_total_reward_of_grpo_runs(client, lead, grpo_job, stored):
    url = reverse("training:run-list", args=[grpo_job.project.slug]) + f"?compare={grpo_job.pk}"
    html = _login(client, lead).get(url).content.decode()
    assert 'id="reward-overlay"' in html and "Total reward of 1 GRPO run" in html


# The API ----------------------------------------------------------------------------------------

def test_an_outsider_sees_no_rollouts_of_a_run(client, outsider, grpo_job, stored):
    assert _login(client, outsider).get(f"/api/training-jobs/{grpo_job.pk}/rollouts/").status_code == 404
    assert client.get(reverse("training:job-detail", args=[grpo_job.pk])).status_code == 404


def test_the_api_lists_a_runs_rollouts_to_any_member(client, annotator, grpo_job, stored):
    body = _login(client, annotator).get(f"/api/training-jobs/{grpo_job.pk}/rollouts/?step=10").json()
    rows = {r["id"]: r for r in body["results"]}
    assert set(rows) == {t.pk for t in stored.values()}
    good = rows[stored["good"].pk]
    assert (good["prompt_id"], good["step"], good["total_reward"], good["url"]) == (
        "p1", 10, 2.0, reverse("annotate:trajectory-detail", args=[stored["good"].pk]))
    assert client.get(f"/api/training-jobs/{grpo_job.pk}/rollouts/?step=11").json()["results"] == []


def test_the_api_pair_needs_a_lead_and_a_refusal_changes_nothing(client, annotator, lead, outsider, grpo_job, stored):
    url = f"/api/training-jobs/{grpo_job.pk}/rollouts/pair/"
    body = {"rollouts": [stored["bad"].pk, stored["good"].pk]}
    assert _login(client, annotator).post(url, body, content_type="application/json").status_code == 403
    assert _login(client, outsider).post(url, body, content_type="application/json").status_code == 404
    assert not Pair.objects.exists()
    made = _login(client, lead).post(url, body, content_type="application/json")
    assert made.status_code == 201 and made.json()["chosen"] == stored["good"].pk and made.json()["created"]
    again = client.post(url, body, content_type="application/json")
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    wrong = client.post(url, {"rollouts": [stored["good"].pk, stored["other"].pk]}, content_type="application/json")
    assert wrong.status_code == 400 and "different prompts" in wrong.json()["rollouts"][0]
    assert Pair.objects.count() == 1


def test_a_resumed_run_shows_and_pairs_the_rollouts_of_the_run_it_continues(client, lead, grpo_job, stored):
    run = Path(grpo_job.output_dir)  # the cancelled run went on past its checkpoint to step 12
    rel = write_rollouts(run, 12, [line("p1", 12, GOOD, 1.0)])
    append_events(run, {"event": "rollouts", "step": 12, "path": rel, "count": 1})
    ingest(grpo_job)
    resumed = TrainingJob.objects.create(project=grpo_job.project, snapshot=grpo_job.snapshot, kind="grpo",
                                         name="GRPO weather (resumed from step 10)", base_model="/models/tiny",
                                         output_dir=grpo_job.output_dir + "-resumed", resumed_from=grpo_job,
                                         resume_checkpoint=f"{run}/checkpoints/checkpoint-10")
    body = _login(client, lead).get(f"/api/training-jobs/{resumed.pk}/rollouts/").json()
    assert {r["id"] for r in body["results"]} == {t.pk for t in stored.values()}  # not step 12: played again
    made = client.post(f"/api/training-jobs/{resumed.pk}/rollouts/pair/",
                       {"rollouts": [stored["good"].pk, stored["bad"].pk]}, content_type="application/json")
    assert made.status_code == 201


def test_the_run_page_shows_the_newest_steps_rollouts_only(client, annotator, grpo_job, stored):
    from training.templatetags.grpo import ROLLOUT_STEPS_SHOWN

    run = Path(grpo_job.output_dir)
    for step in range(12, 12 + 2 * ROLLOUT_STEPS_SHOWN, 2):
        rel = write_rollouts(run, step, [line("p1", step, GOOD, 1.0)])
        append_events(run, {"event": "rollouts", "step": step, "path": rel, "count": 1})
    ingest(grpo_job)
    html = _login(client, annotator).get(reverse("training:job-detail", args=[grpo_job.pk])).content.decode()
    shown = [int(s) for s in re.findall(r'data-step="(\d+)"', html)]
    assert shown == list(range(10 + 2 * ROLLOUT_STEPS_SHOWN, 10, -2))  # newest first; step 10 left to the queue
    assert f"{3 + ROLLOUT_STEPS_SHOWN} rollouts of this run" in html
