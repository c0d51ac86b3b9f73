"""Helpers for the training-job tests (not a test module).

- real snapshot folders, written by the snapshot export (``training.export.run_export``) from the
  demo trajectories (SFT) and preference pairs forked from them (DPO);
- ``shared_file_db``: point this process's ORM at a SQLite file that a Celery worker and a web
  server in other processes open too (pytest-django's in-memory test DB is invisible to them);
- ``Worker`` / ``WebServer``: ``celery -A studio worker`` and ``manage.py runserver`` as
  subprocesses against that file and a broker under a tmp data dir;
- ``publish``: send a task to that broker from this process; ``wait_for``: poll with a message.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.test import override_settings

from tests.conftest import MODEL_ROOTS_ENV

ROOT = Path(__file__).resolve().parents[2]

# A short run that still logs, evaluates and checkpoints: what most tests launch.
QUICK = {"max_steps": 3, "batch_size": 1, "logging_steps": 1, "eval_steps": 100, "save_steps": 2}


# --- snapshot folders ----------------------------------------------------------------------------

def _demo_docs() -> list[dict]:
    from annotate.demo import demo_trajectories

    return [t.to_dict() for t in demo_trajectories()]


def _pair_docs() -> dict[str, dict]:
    """Chosen / rejected pairs forked from the demo's multi-turn trajectories (a wrong tool choice
    rejected), as the pairs app documents them."""
    from annotate.pairs import fork, starter_steps
    from annotate.trajectory import Trajectory

    out = {}
    for i, doc in enumerate(_demo_docs()):
        traj = Trajectory.from_dict(doc)
        for ti, turn in enumerate(traj.turns):
            for si, step in enumerate(turn.steps):
                if step.kind == "tool_call" and len(out) < 4:
                    pair = fork(traj, ti, si, category="tool_needed")
                    pair.rejected = starter_steps("tool_needed", pair.chosen, pair.context)
                    if pair.rejected and [s.to_dict() for s in pair.rejected] != [s.to_dict() for s in pair.chosen]:
                        out[f"p{i}-{ti}-{si}"] = pair.to_document()
                    break
    return out


def export_snapshot_files(kind: str, out_dir: Path, tokenizer_dir: Path) -> Path:
    """Write a real snapshot folder (hf/, snapshot.json, chat_template.jinja ...) into ``out_dir``."""
    from training.export import ExportItem, ExportSettings, MemoryCache, run_export

    if (out_dir / "hf" / "dataset_dict.json").exists():
        return out_dir
    if kind == "sft":
        docs = {f"r{i}": d for i, d in enumerate(_demo_docs())}
        items = [ExportItem(key=k, ident=f"t{i}", split=(d.get("meta") or {}).get("split", "train"))
                 for i, (k, d) in enumerate(docs.items())]
    else:
        docs = _pair_docs()
        items = [ExportItem(key=k, ident=f"p{i}", split="train") for i, k in enumerate(docs)]
    s = ExportSettings(kind=kind, template="qwen3_training", tokenizer=str(tokenizer_dir))
    run_export(items, s, out_dir, load_documents=lambda keys: {k: copy.deepcopy(docs[k]) for k in keys},
               cache=MemoryCache())
    return out_dir


def make_snapshot(project, kind: str, out_dir: Path, **fields):
    """A finished Snapshot row for a folder (the export task's row, without running it)."""
    import json

    from training.models import JobStatus, Snapshot

    meta_path = Path(out_dir) / "snapshot.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    defaults = {"name": f"{kind} demo", "status": JobStatus.SUCCEEDED, "out_dir": str(out_dir),
                "content_hash": uuid.uuid4().hex + uuid.uuid4().hex,
                "render_settings": meta.get("settings", {"template": "qwen3_training", "max_length": 8192}),
                "sample_count": sum((meta.get("splits") or {"train": 1}).values()), "item_count": 1}
    defaults.update(fields)
    return Snapshot.objects.create(project=project, kind=kind, **defaults)


def bare_snapshot_dir(path: Path) -> Path:
    """A folder that passes the launch checks (hf/ exists) for tests that never train."""
    (path / "hf").mkdir(parents=True, exist_ok=True)
    return path


# --- a database other processes can open ---------------------------------------------------------

@contextlib.contextmanager
def shared_file_db(path: Path, django_db_blocker):
    """Point the default connection at SQLite file ``path`` (migrated) for the duration.

    The session's in-memory test database, if any, is kept open aside and put back afterwards
    (closing it would destroy it).
    """
    from django.core.management import call_command
    from django.db import connections

    with django_db_blocker.unblock():
        conn = connections["default"]
        saved_connection, saved_name = conn.connection, conn.settings_dict["NAME"]
        conn.connection = None
        conn.settings_dict["NAME"] = str(path)
        try:
            call_command("migrate", verbosity=0, interactive=False)
            yield path
        finally:
            conn.close()
            conn.settings_dict["NAME"] = saved_name
            conn.connection = saved_connection


def fast_users(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- processes ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(data_dir: Path, db_path: Path, **extra) -> dict:
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "DATABASE_URL": f"sqlite:///{db_path}",
           "DJANGO_SETTINGS_MODULE": "studio.settings", "PYTHONUNBUFFERED": "1", "STUDIO_MODEL_ROOTS": MODEL_ROOTS_ENV}
    env.pop("CELERY_BROKER_URL", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, on_timeout=None):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


class _Subprocess:
    def __init__(self, cmd: list[str], env: dict, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, n: int = 40) -> str:
        return "\n--- " + self.log_path.name + " ---\n" + "\n".join(self.log().splitlines()[-n:])

    def kill(self, sig=signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
        if self.proc.poll() is None:
            self.kill(signal.SIGKILL)
        self._log.close()


class Worker(_Subprocess):
    """``celery -A studio worker`` on the ``train`` queue (prefork, one child, as in production)."""

    def __init__(self, data_dir: Path, db_path: Path, *, queues: str = "train", as_deployed: bool = False, **env):
        """``as_deployed``: with gossip, mingle and broker heartbeats, as docker-compose.yml runs it."""
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        quiet = [] if as_deployed else ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        cmd = [sys.executable, "-m", "celery", "-A", "studio", "worker", "-Q", queues, "-c", "1", "-P", "prefork",
               "-n", f"{self.name}@%h", *quiet, "-l", "INFO"]
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(cmd, app_env(data_dir, db_path, **env), data_dir / f"{self.name}.log")
        wait_for(lambda: "ready." in self.log() or self.proc.poll() is not None, 90, "the Celery worker to start",
                 on_timeout=self.tail)
        if self.proc.poll() is not None:
            pytest.fail("the Celery worker exited at start" + self.tail())


class WebServer(_Subprocess):
    """``manage.py runserver`` (no reloader) on a free port."""

    def __init__(self, data_dir: Path, db_path: Path, **env):
        import urllib.request

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload", "--nothreading"]
        super().__init__(cmd, app_env(data_dir, db_path, **env), data_dir / "web.log")

        def up():
            try:
                return urllib.request.urlopen(self.url + "/healthz", timeout=2).status == 200
            except OSError:
                return self.proc.poll() is not None

        wait_for(up, 60, "the web server to start", on_timeout=self.tail)
        if self.proc.poll() is not None:
            pytest.fail("the web server exited at start" + self.tail())


def publish(task, *args, data_dir: Path | None = None, broker_url: str | None = None) -> None:
    """Send ``task`` to the broker a test's worker listens on (not this process's default one)."""
    from studio.celery import app

    if broker_url:
        conn = app.connection_for_write(url=broker_url)
    else:
        folders = {k: str(data_dir / "broker" / v) for k, v in (
            ("data_folder_in", "in"), ("data_folder_out", "in"), ("processed_folder", "processed"),
            ("control_folder", "control"))}
        for f in folders.values():
            Path(f).mkdir(parents=True, exist_ok=True)
        conn = app.connection_for_write(url="filesystem://", transport_options={**folders, "store_processed": False})
    with conn:
        task.apply_async(args=list(args), connection=conn)


# Module-scoped fixtures of the worker tests (import them by name into a test module): one data
# folder and one file database the worker processes share, with the runs under it.
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("studio-data")


@pytest.fixture(scope="module")
def shared_db(data_dir, django_db_blocker):
    with shared_file_db(data_dir / "studio.sqlite3", django_db_blocker) as path, \
            override_settings(TRAINING_RUNS_DIR=data_dir / "runs"):
        yield path
