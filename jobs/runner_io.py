"""What every runner subprocess shares (``training.runner``, ``evaluation.runner``): its job file
in, its event log out, the watch on the worker that started it, and ``main``'s skeleton.

The worker (``jobs.supervisor``) writes ``job.json`` into the run folder, starts
``python -m PACKAGE.runner job.json`` and tails the runner's events file into the database. This
module imports no Django and nothing heavy: the web process imports the runners for validation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, TypeVar


WORKER_PID_ENV = "STUDIO_WORKER_PID"  # the supervising worker's pid, for the runner's watch


class JobFile:
    """A dataclass config written as ``job.json``: ``load``, ``to_dict``, ``write``, ``run_dir``.

    The subclass is a ``@dataclass`` with an ``output_dir`` field and a ``from_dict`` classmethod.
    """

    output_dir: str

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)


def command_for(module: str, job_file: str | Path, python: str = sys.executable) -> list[str]:
    """The command the worker runs (cwd: the app's root).

    >>> command_for("training.runner", "/runs/1/job.json", "python")
    ['python', '-m', 'training.runner', '/runs/1/job.json']
    """
    return [python, "-m", module, str(job_file)]


class EventLog:
    """Append-only JSON Lines of run events, each with ``event`` and ``time`` (Unix seconds).

    Each line is flushed at once so the worker tailing the file sees it within its poll.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: str, **data: Any) -> None:
        line = json.dumps({"event": event, "time": time.time(), **data}, default=str)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def watch_parent(events: EventLog, interval: float = 1.0) -> None:
    """Exit when the process that started us dies, or the worker does (a killed worker must not
    leave a run going). Under ``torchrun`` / ``accelerate launch`` our parent is the launcher, so
    the worker's pid comes in ``STUDIO_WORKER_PID`` (``jobs.supervisor.run_supervised``)."""
    parent = os.getppid()
    worker = int(os.environ.get(WORKER_PID_ENV, "0") or 0)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent or (worker and gone(worker)):
                events.write("error", message="The worker that started this run is gone; stopping.")
                os._exit(75)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def rank() -> int:
    """This process's global rank under torchrun / accelerate launch (0 when it runs alone)."""
    return int(os.environ.get("RANK", "0") or 0)


def events_file_of(events_file: str, rank: int) -> str:
    """Rank 0 writes the run's events (the worker reads them into the database: metrics come from
    rank 0 only); every other rank writes its own file beside it, for the log's sake.

    >>> events_file_of("metrics.jsonl", 0), events_file_of("metrics.jsonl", 3)
    ('metrics.jsonl', 'metrics.rank3.jsonl')
    """
    if rank == 0:
        return events_file
    stem, dot, suffix = events_file.rpartition(".")
    return f"{stem}.rank{rank}.{suffix}" if dot else f"{events_file}.rank{rank}"


def resolve_device(requested: str) -> str:
    """``auto`` → cuda when there is one, else cpu; ``cuda`` on a machine without one is an error."""
    import torch  # only in the runner process, and only when it loads a model

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for, but this worker has no CUDA device")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


Config = TypeVar("Config", bound=JobFile)


def run_main(argv: list[str] | None, *, module: str, load: Callable[[str], Config], events_file: str,
             work: Callable[[Config, EventLog], dict[str, Any]],
             end: Callable[[Config], dict[str, Any]] | None = None) -> int:
    """``python -m MODULE JOB.json``: load the job file, open the run's event log, watch the parent
    and run ``work``. Its result goes out as the ``end`` event (with ``end(cfg)``'s fields) and
    exit 0; an exception as the ``error`` event, which the worker shows as the job's error, and exit 1.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {module} JOB.json", file=sys.stderr)
        return 2
    cfg = load(argv[0])
    events = EventLog(cfg.run_dir / events_file_of(events_file, rank()))
    watch_parent(events)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        results = work(cfg, events)
    except Exception as exc:  # the worker shows this to the user as the job's error
        traceback.print_exc()
        events.write("error", message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return 1
    events.write("end", results=results, **(end(cfg) if end else {}))
    print(f"done: {json.dumps(results)}", flush=True)
    return 0
