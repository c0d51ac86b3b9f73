"""The stale-job sweep treats a GRPO row as a training row: a row whose worker went silent is
failed with the reason, and a GRPO runner left behind on this machine is stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from django.utils import timezone

from jobs.processes import HOST
from jobs.sweep import sweep_stale
from rl import runner
from tests.training.jobs_harness import bare_snapshot_dir, make_snapshot, wait_for
from training.models import JobStatus, TrainingJob


def test_the_sweep_fails_a_silent_grpo_row_and_stops_its_leftover_runner(project, tmp_path):
    snapshot = make_snapshot(project, "prompt", bare_snapshot_dir(tmp_path / "prompt"))
    # A stand-in for a runner whose worker died: its command line names the GRPO runner.
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "-m", "rl.runner",
                                 str(tmp_path / "job.json")], start_new_session=True)
    try:
        wait_for(lambda: b"rl.runner" in Path(f"/proc/{leftover.pid}/cmdline").read_bytes(), 10, "it to start")
        job = TrainingJob.objects.create(
            project=project, snapshot=snapshot, kind="grpo", base_model="m", config=runner.GRPOSettings().to_dict(),
            status=JobStatus.RUNNING, worker_pid=leftover.pid, worker_host=HOST,
            started_at=timezone.now() - timezone.timedelta(minutes=10),
            heartbeat_at=timezone.now() - timezone.timedelta(minutes=10))
        assert sweep_stale(TrainingJob, 60) == [job.pk]
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED and "No heartbeat for" in job.error
        wait_for(lambda: leftover.poll() is not None, 15, "the leftover GRPO runner to be stopped")
    finally:
        if leftover.poll() is None:
            leftover.kill()
        leftover.wait()
