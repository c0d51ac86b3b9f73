"""A runner subprocess in its own process group, and its files: what the worker needs to start,
watch and stop one. No Django: the same calls serve any job kind.

- ``start_process`` / ``stop_process``: a subprocess in its own session, so one ``killpg`` stops it
  and anything it started (every rank of a multi-process launch included).
- ``is_our_process_group``: the group leader is still our runner (a pid may be recycled).
- ``ExitWatch``: wait for a child's exit asleep in the kernel.
- ``FileTail`` / ``last_lines``: the runner's event and log files, as they grow.
- ``describe_exit``: what an exit code means, for the job's error.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

HOST = socket.gethostname()
LOG_TAIL_LINES = 40


def is_our_process_group(pgid: int, marker: str) -> bool:
    """Guard against a recycled pid: the group leader's command line must name ``marker``."""
    try:
        return marker in Path(f"/proc/{pgid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def start_process(cmd: list[str], *, cwd: Path, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group), stdout and stderr into ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children...), read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []
    for name in entries:
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after "(command)", which may hold spaces
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def process_groups(pgid: int) -> set[int]:
    """The group ``pgid`` and the groups of its leader's descendants: ``torchrun`` (and so
    ``accelerate launch``) starts each rank in a session of its own, which one ``killpg`` misses."""
    groups = {pgid}
    for pid in descendants(pgid):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    groups.discard(os.getpgrp())  # never our own
    return groups


def stop_process_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM the group (and every rank's group below it), then SIGKILL whatever is left after
    ``grace`` seconds."""
    alive = set()
    for group in process_groups(pgid):
        try:
            os.killpg(group, signal.SIGTERM)
            alive.add(group)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        for group in list(alive):
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                alive.discard(group)
        if alive:
            time.sleep(0.1)
    for group in alive:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    stop_process_group(proc.pid, grace)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


class FileTail:
    """New complete lines of a growing file, from where the last read stopped."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0

    def read_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []  # a line still being written
        self.offset += end + 1
        return data[:end].decode("utf-8", errors="replace").splitlines()


def last_lines(path: Path, n: int = LOG_TAIL_LINES, max_bytes: int = 16384) -> str:
    """The last ``n`` lines of a text file (empty when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-n:])


def killed_by(returncode: int) -> str:
    """How a process that a signal ended (negative ``returncode``) died, in words.

    >>> killed_by(-9)
    'killed by SIGKILL (out of memory is the usual cause when nobody sent it)'
    """
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    why = " (out of memory is the usual cause when nobody sent it)" if -returncode == signal.SIGKILL else ""
    return f"killed by {name}{why}"


def describe_exit(returncode: int, process: str = "training process") -> str:
    """What a subprocess's exit code means, for the job's error.

    >>> describe_exit(3, "evaluation process")
    'The evaluation process exited with code 3.'
    """
    if returncode < 0:
        return f"The {process} was {killed_by(returncode)}."
    if returncode == 75:
        return f"The {process} stopped because the worker that started it went away."
    return f"The {process} exited with code {returncode}."


class ExitWatch:
    """Wait up to ``timeout`` seconds for a child process to exit, asleep in the kernel.

    ``Popen.wait(timeout=...)`` polls ``waitpid`` every few milliseconds (up to 50 ms): some 25
    wake-ups a second, each taking a core from the training threads for a moment. A pidfd (Linux)
    wakes us once, when the process exits or the timeout passes; elsewhere we sleep ``timeout``.
    """

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        try:
            self.fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # not Linux, or the process is already gone
            self.fd = None

    def wait(self, timeout: float) -> bool:
        if self.proc.poll() is not None:
            self.close()
            return True
        if self.fd is not None:
            select.select([self.fd], [], [], timeout)
        else:
            time.sleep(timeout)
        if self.proc.poll() is None:
            return False
        self.close()
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self):
        self.close()
