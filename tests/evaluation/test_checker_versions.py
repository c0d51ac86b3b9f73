"""An evaluation run records the checkers that scored it (our scorer's version, and ``bfcl-eval``'s
release where BFCL items were scored), shown on its page and in the API."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.formats.bfcl import to_trajectory
from evaluation import bfcl_package, jobs
from evaluation.generate import GenerationSettings
from evaluation.items import items_from_prompt_rows, rows_from_trajectory
from evaluation.models import EvalRun, EvalSet, EvalSetItem
from evaluation.scoring import SCORER_VERSION
from tests.conftest import PASSWORD
from tests.evaluation.bfcl_reference import BFCL_FIXTURES
from tests.evaluation.runs_harness import ChatServer, oracle
from tests.evaluation.test_bfcl_agreement import load_category
from tests.training.jobs_harness import fast_users
from training.models import JobStatus


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path, monkeypatch):
    fast_users(settings)
    settings.EVAL_RUNS_DIR = tmp_path / "eval-runs"
    settings.ENDPOINT_ALLOWLIST = ""
    monkeypatch.setattr("evaluation.tasks.eval_run.delay", lambda pk: None)  # no broker in these tests


def eval_set_of(project, items) -> EvalSet:
    es = EvalSet.objects.create(project=project, name="bfcl", source=EvalSet.TRAJECTORIES, item_count=len(items))
    EvalSetItem.objects.bulk_create([EvalSetItem(eval_set=es, position=i, item_id=it.id, document=it.to_dict())
                                     for i, it in enumerate(items)])
    return es


def bfcl_items(n: int):
    if not (BFCL_FIXTURES / "BFCL_v4_simple_python.json").exists():
        pytest.skip(f"needs the shared BFCL fixtures at {BFCL_FIXTURES.resolve()}")
    rows = [row for q, a in load_category("simple_python", BFCL_FIXTURES)[:n]
            for row in rows_from_trajectory(to_trajectory(q, answer=a), q["id"])]
    return items_from_prompt_rows(rows)


def test_a_run_over_bfcl_items_records_our_scorer_and_the_bfcl_eval_release(client, lead, project):
    items = bfcl_items(3)
    with ChatServer(oracle(items)) as server:
        server.allow()
        run = jobs.launch_eval(project=project, eval_set=eval_set_of(project, items), model_source=EvalRun.ENDPOINT,
                               endpoint_url=server.url, endpoint_model="oracle", gen=GenerationSettings(), enqueue=False)
        assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED
    run.refresh_from_db()
    expected = {"studio-scorer": SCORER_VERSION, "bfcl-eval": bfcl_package.VERSION}
    assert run.checker_versions == expected
    assert run.summary["overall"]["metrics"]["correct"]["rate"] == 1.0
    assert client.login(username=lead.username, password=PASSWORD)
    html = client.get(reverse("evaluation:run-detail", args=[run.pk])).content.decode()
    cell = html.split('id="checker-versions">')[1].split("</td>")[0]
    assert f"studio-scorer {SCORER_VERSION}" in cell and f"bfcl-eval {bfcl_package.VERSION}" in cell
    assert client.get(reverse("evaluation:api-eval-run", args=[run.pk])).json()["checker_versions"] == expected


def test_a_run_without_bfcl_items_records_only_our_scorer(project):
    from annotate.trajectory import Trajectory
    from tests.evaluation.cases import TOOLS, call

    t = Trajectory.from_dict({"tools": TOOLS, "meta": {"external_id": "w", "case_types": ["tool_required"]},
                              "turns": [{"user": "Weather in Lyon?", "steps": [call("get_weather", {"city": "Lyon"}, "c1")]}]})
    items = items_from_prompt_rows(rows_from_trajectory(t, "w"))
    with ChatServer(oracle(items)) as server:
        server.allow()
        run = jobs.launch_eval(project=project, eval_set=eval_set_of(project, items), model_source=EvalRun.ENDPOINT,
                               endpoint_url=server.url, endpoint_model="oracle", gen=GenerationSettings(), enqueue=False)
        assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.checker_versions == {"studio-scorer": SCORER_VERSION}
