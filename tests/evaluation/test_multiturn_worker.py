"""The tiny model plays a multi-turn eval set (BFCL's own items, from the wheel) on a real Celery
worker on the ``eval`` queue, sharing a SQLite file with this process: every turn played against its
environment in a child process, the per-turn verdicts on the result row, the dashboard's table.

Slow by nature (the worker starts Python and torch, the runner loads the model)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from evaluation import bfcl_package, eval_sets
from tests.training.jobs_harness import Worker, publish, shared_file_db, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("worker"),
              pytest.mark.skipif(not bfcl_package.available(), reason="bfcl-eval is not unpacked (make setup)")]


def test_the_tiny_model_plays_a_multi_turn_eval_on_a_real_worker(tmp_path_factory, django_db_blocker, tiny_model_dir):
    from annotate.formats.bfcl_multi_turn import to_trajectory
    from annotate.models import Project
    from annotate.ingest.writer import write_trajectories
    from evaluation import jobs
    from evaluation.generate import GenerationSettings
    from evaluation.models import EvalRun, EvalSet
    from evaluation.multiturn import MODE
    from evaluation.tasks import eval_run
    from tests.evaluation.multiturn_harness import bfcl_records
    from training.models import JobStatus

    data_dir = tmp_path_factory.mktemp("multi-turn-worker")
    db = data_dir / "studio.sqlite3"
    with shared_file_db(db, django_db_blocker), override_settings(EVAL_RUNS_DIR=data_dir / "eval-runs"):
        project = Project.objects.create(name="Multi-turn", slug="multi-turn")
        write_trajectories(project, [to_trajectory(q, answer=a, source="bfcl")
                                     for q, a in bfcl_records("multi_turn_base", 2)])
        eval_set = eval_sets.create_eval_set(project, EvalSet.TRAJECTORIES, filters={"tag": "bfcl:multi_turn_base"})
        run = jobs.launch_eval(project=project, eval_set=eval_set, model_source=EvalRun.FOLDER,
                               model_path=str(tiny_model_dir), enqueue=False,
                               gen=GenerationSettings(max_new_tokens=8, max_steps=2, response_parser="fallbacks"))
        worker = Worker(data_dir, db, queues="eval")
        try:
            publish(eval_run, run.pk, data_dir=data_dir)
            wait_for(lambda: EvalRun.objects.get(pk=run.pk).is_finished, 300, f"evaluation {run.pk} to finish",
                     on_timeout=worker.tail)
        finally:
            worker.stop()
        run.refresh_from_db()
        assert run.status == JobStatus.SUCCEEDED, (run.error, run.log_tail)
        results = list(run.results.order_by("position"))
        assert [r.item_id for r in results] == list(eval_set.items.values_list("item_id", flat=True))
        for r in results:
            turns = r.episode["turns"]
            assert r.error == "" and r.episode["mode"] == MODE and len(turns) == r.episode["n_turns"] >= 3
            assert all(t["steps"] and t["check"] is not None for t in turns)  # every turn played and checked
            assert r.correct is False and r.episode["first_failing_turn"] == 0  # 8 tokens of garbage move no file
            assert r.prompt_text.startswith("<|im_start|>") and r.new_tokens > 0
        table = run.summary["multi_turn"]
        assert (table["n"], table["passed"]) == (2, 0) and table["turns"][0] == {"turn": 0, "passed": 0, "n": 2, "rate": 0.0}
