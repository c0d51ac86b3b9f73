"""Faults with real processes: no job is lost or stuck.

A redis-server with AOF on, a Celery worker on the ``export`` queue and ``celery beat`` sweeping every
second, all as subprocesses sharing a SQLite file with this process. The jobs are snapshot exports
slowed down per progress step (``STUDIO_EXPORT_STEP_DELAY``) so a kill lands mid-export. Short
timeouts come from the environment (``JOB_HEARTBEAT_TIMEOUT``, ``JOB_QUEUED_TIMEOUT``, ``JOB_SWEEP_EVERY``).

- kill -9 the worker while exports are queued and running: after a new worker starts, every export
  ends succeeded (the running one restarted, its half-written files never seen);
- restart Redis while exports are queued and running: the same worker carries on and consumes again
  (and the kombu failure that ended workers on a Redis restart, reproduced in one step);
- a queued export whose message was purged from Redis is sent again by the sweep (here the one a
  worker runs when it starts);
- the same message delivered twice runs the export once.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import override_settings

from tests.training.jobs_harness import Worker, _Subprocess, app_env, free_port, publish, shared_file_db, wait_for
from training.models import JobStatus, Snapshot

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.xdist_group("worker")]

FAST = {"JOB_HEARTBEAT_TIMEOUT": 4, "JOB_QUEUED_TIMEOUT": 3, "JOB_SWEEP_EVERY": 1, "JOB_MAX_ATTEMPTS": 3}
STEP_DELAY = 1.0  # seconds per progress step (~6 per export): an export runs ~6 s


class Redis:
    """redis-server on a free port, AOF on, restartable on the same port and data."""

    def __init__(self, data: Path):
        self.exe = shutil.which("redis-server")
        if not self.exe:
            pytest.skip("redis-server is not installed (apt-get install redis-server); `make test` installs it")
        self.data, self.port = data, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.up, 20, "redis-server to accept connections")

    def up(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def client(self):
        import redis

        return redis.Redis(port=self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


class Beat(_Subprocess):
    """``celery beat`` on its own, as deployed: it sends the sweep every ``JOB_SWEEP_EVERY`` seconds."""

    def __init__(self, data_dir: Path, db_path: Path, **env):
        cmd = [sys.executable, "-m", "celery", "-A", "studio", "beat", "-l", "INFO",
               "-s", str(data_dir / "beat-schedule")]
        super().__init__(cmd, app_env(data_dir, db_path, **env), data_dir / "beat.log")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def shared_db(data_dir, django_db_blocker):
    with shared_file_db(data_dir / "studio.sqlite3", django_db_blocker) as path, \
            override_settings(SNAPSHOT_DIR=data_dir / "snapshots"):
        yield path


@pytest.fixture(scope="module")
def project(shared_db):
    from annotate.demo import TOOLS, demo_trajectories
    from annotate.models import Project, Tool, Trajectory
    from annotate.ingest.writer import write_trajectories

    project = Project.objects.create(name="Faults", slug="faults")
    for spec in TOOLS:
        Tool.objects.create(project=project, name=spec["name"], description=spec["description"],
                            parameters=spec["parameters"])
    write_trajectories(project, demo_trajectories(), None)
    Trajectory.objects.filter(project=project).update(status=Trajectory.APPROVED)
    return project


@pytest.fixture(scope="module")
def redis_server(data_dir):
    server = Redis(data_dir / "redis")
    yield server
    server.stop()


@pytest.fixture
def env(redis_server):
    return {"CELERY_BROKER_URL": redis_server.url, "STUDIO_EXPORT_STEP_DELAY": STEP_DELAY, **FAST}


_made = [0]


def exports(project, tiny_model_dir, n: int) -> list[Snapshot]:
    """``n`` queued exports with different contents (each a different max length)."""
    from training.snapshots import create_snapshot

    out = []
    for _ in range(n):
        _made[0] += 1
        out.append(create_snapshot(project, "sft", {}, {"template": "qwen3_training", "tokenizer": str(tiny_model_dir),
                                                        "max_length": 4000 + _made[0]}, None, enqueue=False))
    return out


def send(snapshots, url: str) -> None:
    from training.snapshots.tasks import export_snapshot

    for s in snapshots:
        publish(export_snapshot, s.pk, broker_url=url)


def statuses(snapshots) -> list[str]:
    return list(Snapshot.objects.filter(pk__in=[s.pk for s in snapshots]).order_by("pk")
                .values_list("status", flat=True))


def all_final(snapshots, *procs):
    def check():
        return all(s not in (JobStatus.QUEUED, JobStatus.RUNNING) for s in statuses(snapshots))

    def diagnose():
        rows = Snapshot.objects.filter(pk__in=[s.pk for s in snapshots]).values_list(
            "pk", "status", "attempts", "message", "error")
        return "\n" + "\n".join(map(str, rows)) + "".join(p.tail() for p in procs)

    wait_for(check, 60, "every export to end", interval=0.5, on_timeout=diagnose)


def files_complete(snapshot: Snapshot) -> bool:
    out = Path(snapshot.out_dir)
    return (out / "hf" / "dataset_dict.json").exists() and (out / "snapshot.json").exists() and \
        not list(out.parent.glob(f".{out.name}.partial-*"))


def test_killing_the_worker_mid_export_loses_no_export(project, tiny_model_dir, data_dir, shared_db, redis_server,
                                                      env):
    jobs = exports(project, tiny_model_dir, 3)
    send(jobs, redis_server.url)
    first = Worker(data_dir, shared_db, queues="export,default", as_deployed=True, **env)
    try:
        wait_for(lambda: JobStatus.RUNNING in statuses(jobs) and
                 Snapshot.objects.filter(pk__in=[j.pk for j in jobs], progress__gt=0).exists(), 60,
                 "an export to be running", on_timeout=first.tail)
        first.kill()  # SIGKILL to the worker's whole process group: no ack, no goodbye
        assert JobStatus.RUNNING in statuses(jobs) and JobStatus.QUEUED in statuses(jobs)
    finally:
        first.stop()
    second = Worker(data_dir, shared_db, queues="export,default", as_deployed=True, **env)
    beat = Beat(data_dir, shared_db, **env)
    try:
        all_final(jobs, second, beat)
    finally:
        beat.stop()
        second.stop()
    rows = list(Snapshot.objects.filter(pk__in=[j.pk for j in jobs]).order_by("pk"))
    assert [r.status for r in rows] == [JobStatus.SUCCEEDED] * 3, [(r.status, r.error) for r in rows]
    assert any(r.attempts >= 1 for r in rows)  # the one killed mid-export was restarted
    assert all(files_complete(r) and r.sample_count > 0 for r in rows)


def test_a_channel_closed_after_its_connection_let_go_of_redis_fails_as_a_connection_error(redis_server):
    """The worker's death on a Redis restart, reproduced in one step (``studio.broker_fixes``): the
    consumer closes its connection, and closing the channel tries to give the messages a task still
    holds back to Redis through a client it can no longer build. kombu catches connection errors
    there; the AttributeError it got instead ended the worker ("Unrecoverable error")."""
    import studio.celery  # noqa: F401  (applies the fix, as every worker does)
    from kombu import Connection

    conn = Connection(redis_server.url)
    channel = conn.default_channel
    channel.qos._delivered["1"] = object()  # a message a running task holds (acks_late)
    channel._disconnect_pools()
    conn.transport.client = None  # what closing the dropped connection left behind
    conn.maybe_close_channel(channel)  # was: AttributeError: 'NoneType' object has no attribute 'hostname'


def test_a_redis_restart_mid_export_leaves_the_worker_consuming(project, tiny_model_dir, data_dir, shared_db,
                                                                redis_server, env):
    jobs = exports(project, tiny_model_dir, 2)
    send(jobs, redis_server.url)
    worker = Worker(data_dir, shared_db, queues="export,default", as_deployed=True, **env)
    beat = Beat(data_dir, shared_db, **env)
    try:
        wait_for(lambda: Snapshot.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.RUNNING,
                                                 progress__gt=0).exists(), 60, "an export to be running",
                 on_timeout=worker.tail)
        redis_server.kill()
        time.sleep(1.5)
        redis_server.start()
        all_final(jobs, worker, beat)
        assert worker.proc.poll() is None, "the worker died with Redis" + worker.tail()
        # ... and it still takes new work from the restarted broker.
        later = exports(project, tiny_model_dir, 1)
        send(later, redis_server.url)
        all_final(later, worker, beat)
    finally:
        beat.stop()
        worker.stop()
    rows = list(Snapshot.objects.filter(pk__in=[j.pk for j in jobs + later]).order_by("pk"))
    assert [r.status for r in rows] == [JobStatus.SUCCEEDED] * 3, [(r.status, r.error, r.message) for r in rows]
    assert all(files_complete(r) for r in rows)
    assert "Unrecoverable error" not in worker.log()


def test_a_purged_message_is_sent_again_when_a_worker_starts_and_a_duplicate_runs_once(
        project, tiny_model_dir, data_dir, shared_db, redis_server, env):
    from django.utils import timezone

    lost, twice = exports(project, tiny_model_dir, 2)
    send([lost], redis_server.url)
    assert redis_server.client().llen("export") == 1
    redis_server.client().delete("export")  # the message is gone (a broker that lost its data, a purge)
    Snapshot.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timezone.timedelta(minutes=1))
    send([twice, twice], redis_server.url)  # a duplicate delivery
    # No beat: the sweep every worker runs when it starts finds the lost one.
    worker = Worker(data_dir, shared_db, queues="export,default", as_deployed=True, **env)
    try:
        all_final([lost, twice], worker)
        # The duplicate found the row claimed and did nothing: one export, one "not claimed".
        wait_for(lambda: "'not claimed'" in worker.log(), 20, "the duplicate delivery", on_timeout=worker.tail)
    finally:
        worker.stop()
    lost.refresh_from_db()
    twice.refresh_from_db()
    assert lost.status == twice.status == JobStatus.SUCCEEDED
    assert lost.attempts == 1 and twice.attempts == 0
    assert "sweep at worker start: {'stale': [], 'queued': [%d]}" % lost.pk in worker.log()
    assert worker.log().count("export_snapshot[") >= 3
    assert files_complete(lost) and files_complete(twice)


def test_the_broker_lookup_reads_the_redis_queue_and_messages_a_live_worker_holds(project, tiny_model_dir,
                                                                                  redis_server):
    from kombu import Connection

    from jobs.queue import rows_waiting

    client = redis_server.client()
    client.delete("export", "unacked", "unacked_index")  # what the workers killed above left held
    jobs = exports(project, tiny_model_dir, 3)
    send(jobs, redis_server.url)
    try:
        with Connection(redis_server.url) as worker:  # a worker takes two messages and holds them unacked
            channel = worker.channel()
            held = [channel.basic_get("export"), channel.basic_get("export")]
            assert client.hlen("unacked") == 2 and client.llen("export") == 1
            # One was taken an hour ago and its row is still queued: that worker died with it.
            client.zadd("unacked_index", {held[0].delivery_tag: time.time() - 3600})
            dead = int(held[0].headers["argsrepr"].strip("()[],"))
            with Connection(redis_server.url) as look:
                assert rows_waiting(Snapshot, taken_within=60, connection=look) == {j.pk for j in jobs} - {dead}
                assert rows_waiting(Snapshot, taken_within=7200, connection=look) == {j.pk for j in jobs}
    finally:
        client.delete("export", "unacked", "unacked_index")
