"""The GRPO runner's environment, in child processes (pure; no Django): TRL's ``environment_factory``
class for a run (``sandboxed_class``), each instance's episodes in a ``WarmEpisode`` child process of
its own (``evaluation.environments.sandbox``, with its limits), the processes started ahead while the
model loads (``prestart``), every episode's ``get_reward`` asked at once (``environment_rewards``),
and the run's CPU seconds with those processes' (``cpu_seconds``).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from evaluation.environments.base import EnvironmentRefused, ToolResult
from evaluation.environments.replay import _tool_method
from evaluation.environments.sandbox import ROOT as SANDBOX_ROOT
from evaluation.environments.sandbox import Episode, EpisodeFailed, Limits


def environment_label(spec: dict) -> str:
    """How the card and the preview name an environment.

    >>> environment_label({"kind": "bfcl", "classes": ["MathAPI"]})
    'bfcl: MathAPI'
    """
    kind = spec.get("kind", "?")
    if kind == "python":
        return f"python: {spec.get('class', '?')}"
    if kind == "bfcl":
        return "bfcl: " + ", ".join(spec.get("classes") or [])
    return str(kind)


class ToolFailed(Exception):
    """A tool's error, raised so that TRL counts it (``tools/failure_frequency``) and feeds it back."""


_STARTER = ThreadPoolExecutor(max_workers=16, thread_name_prefix="episode-start")
_OPEN: set = set()  # every live environment, closed at exit
_SPARES: list = []  # processes started ahead (``prestart``), not yet serving an environment
_OPEN_LOCK = threading.Lock()


class WarmEpisode(Episode):
    """An ``Episode`` whose child process outlives its episode: ``spawn`` starts it (the same
    process, pipes and limits as ``Episode.start``), ``begin`` builds a fresh environment in it and
    resets it from the row, and ``recycle`` readies a healthy one for the next episode (its
    printed output counted afresh), so an episode costs a request, not a Python start (~0.15 CPU s,
    as much as a whole step of the tiny model). An episode that fails (timeout, memory, crash,
    flood) kills its process; the next one starts a new process."""

    def spawn(self) -> WarmEpisode:
        self._workdir = tempfile.mkdtemp(prefix="studio-env-")
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        self._capture = Path(self._workdir) / "output.txt"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(SANDBOX_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env["STUDIO_ENV_LIMITS"] = json.dumps(self.limits.to_dict())
        try:
            with open(self._capture, "ab") as capture:  # append: ``recycle`` truncates it between episodes
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "evaluation.environments.sandbox", str(request_r), str(reply_w)],
                    stdin=subprocess.DEVNULL, stdout=capture, stderr=capture, cwd=self._workdir, env=env,
                    pass_fds=(request_r, reply_w), start_new_session=True)
        except OSError as exc:
            for fd in (request_r, request_w, reply_r, reply_w):
                os.close(fd)
            raise EpisodeFailed("setup", f"the environment process could not start: {exc}") from None
        os.close(request_r)
        os.close(reply_w)
        self._out = os.fdopen(request_w, "wb", buffering=0)
        self._in = reply_r
        self._deadline = float("inf")
        return self

    def begin(self, spec: dict, row: dict) -> None:
        self.spec, self.row = spec, row
        if self.proc is None:
            self.spawn()  # none was spawned ahead (it could not start then): try now, failing labelled
        reply = self._request({"op": "start", "spec": spec, "row": row, "allowed": self.allowed, "schemas": False},
                              what="setting up the environment", seconds=self.limits.setup_seconds)
        self.tools, self.observation = reply.get("tools"), reply.get("observation")
        self._deadline = time.monotonic() + self.limits.episode_seconds

    def start(self) -> None:
        self.spawn().begin(self.spec, self.row)

    def recycle(self) -> bool:
        """Ready this process for another episode; False when it is gone (start a new one)."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        os.truncate(self._capture, 0)  # the output limit is per episode
        self._buffer = b""
        return True




class SandboxedEnvironment:
    """Base of the ``environment_factory`` class: the tool methods are added per run from the
    environment's schemas (``sandboxed_class``). Each instance (TRL keeps one per episode of a
    batch) has its own child process (``WarmEpisode``); ``reset`` builds a fresh environment there
    for the episode (in the background, while the model generates); a tool call waits for it and
    forwards the call."""

    _spec: dict = {}
    _limits: Limits = Limits()
    _allowed: list = []

    def __init__(self):
        self._future: Future | None = None
        self._episode: Episode | None = None
        self.tool_calls = 0
        self.tool_errors = 0
        self.failure = ""
        with _OPEN_LOCK:
            _OPEN.add(self)

    def reset(self, **row) -> None:
        episode = self._episode if self._settled() and not self.failure else None
        if episode is None or not episode.recycle():
            self._close()
            episode = _take_spare() or WarmEpisode({}, limits=self._limits, allowed=self._allowed)
            if episode.proc is None:
                try:
                    episode.spawn()
                except EpisodeFailed:
                    pass  # begin() tries again and fails labelled, as this episode's failure
        self.tool_calls, self.tool_errors, self.failure = 0, 0, ""
        row = json.loads(json.dumps(row, default=str))
        self._episode = episode
        self._future = _STARTER.submit(episode.begin, self._spec, row)  # set up while the model generates

    def _settled(self) -> bool:
        """The last episode's setup finished without failing (so its process may serve the next)."""
        if self._future is None or self._episode is None:
            return False
        try:
            self._future.result()
        except Exception:  # noqa: BLE001  (a failed setup: that process is not reused)
            return False
        return True

    def _ready(self) -> Episode:
        if self.failure:
            raise ToolFailed(f"the episode's environment failed earlier ({self.failure})")
        try:
            self._future.result()
        except EpisodeFailed as exc:
            self.failure = exc.kind
            raise ToolFailed(str(exc)) from None
        return self._episode

    def _call_tool(self, name: str, arguments: Any) -> ToolResult:
        self.tool_calls += 1
        try:
            result = self._ready().call(name, arguments)
        except EpisodeFailed as exc:  # timeout, memory, crash, flood: this episode ends
            self.failure = exc.kind
            self.tool_errors += 1
            raise ToolFailed(str(exc)) from None
        except ToolFailed:
            self.tool_errors += 1
            raise
        if not result.ok:
            self.tool_errors += 1
            raise ToolFailed(result.text)
        return result

    def _reward(self) -> float:
        """The environment's own ``get_reward()`` (0.0 when it has none or the episode failed)."""
        return environment_rewards([self])[0]

    def _ask_reward(self) -> bool:
        """Send ``get_reward``'s request; False when the episode's reward is 0.0 without asking."""
        if self.failure:
            return False
        try:
            self._ready().ask_reward()
        except (EpisodeFailed, ToolFailed):
            return False
        return True

    def _reward_reply(self) -> float:
        try:
            value = self._episode.reward_reply()
        except EpisodeFailed:
            return 0.0
        return float(value) if value is not None else 0.0

    def _close(self) -> None:
        if self._future is not None:
            try:
                self._future.result()
            except Exception:  # noqa: BLE001  (a failed start: nothing more to close than the episode)
                pass
        if self._episode is not None:
            self._episode.close()
        self._episode, self._future = None, None


def environment_rewards(envs: list) -> list[float]:
    """Each episode's ``get_reward()``, asked of all their processes first and then read: a batch
    waits about one round trip instead of one per episode (each a wake-up of a process, slow
    when the machine is busy)."""
    asked = [env._ask_reward() for env in envs]
    return [env._reward_reply() if ok else 0.0 for env, ok in zip(envs, asked)]


def prestart(env_class: type, count: int) -> int:
    """Start ``count`` environment processes for ``env_class`` now, while the model loads, so the
    first step's episodes find them started (a Python start is ~0.1 CPU s; a batch of them in the
    first step slowed it by as much as a whole step). Each is an ordinary ``WarmEpisode`` (same
    process, pipes and limits); ``reset`` takes one before starting its own. Returns how many started."""
    started = []
    for _ in range(count):
        episode = WarmEpisode({}, limits=env_class._limits, allowed=env_class._allowed)
        try:
            started.append(episode.spawn())
        except EpisodeFailed:
            break  # no process to be had now: each episode tries again itself, failing labelled
    with _OPEN_LOCK:
        _SPARES.extend(started)
    return len(started)


def _take_spare() -> WarmEpisode | None:
    """A started process that is still alive (a dead one is closed, not handed out as a crash)."""
    while True:
        with _OPEN_LOCK:
            if not _SPARES:
                return None
            episode = _SPARES.pop()
        if episode.proc is not None and episode.proc.poll() is None:
            return episode
        episode.close()


@atexit.register
def close_all() -> None:
    with _OPEN_LOCK:
        envs = list(_OPEN)
        spares, _SPARES[:] = list(_SPARES), []
    for env in envs:
        env._close()
    for episode in spares:
        episode.close()


def environment_tools(spec: dict, row: dict, allowed: list[str], limits: Limits) -> list[dict]:
    """The tools' schemas, read in a child process (the environment's code never runs here);
    a replay's are the dataset's ``tools``."""
    if spec.get("kind") == "replay":
        return list(row.get("tools") or [])
    with Episode(spec, json.loads(json.dumps(row, default=str)), limits=limits, allowed=allowed, schemas=True) as ep:
        return list(ep.tools or [])


def sandboxed_class(spec: dict, tools: list[dict], allowed: list[str], limits: Limits) -> type:
    """The ``environment_factory`` class for ``spec``: one method a tool, named and documented after
    its schema, as TRL lists and renders them."""
    specs = [dict(t.get("function") or t) for t in tools]
    namespace = {s["name"]: _tool_method(s) for s in specs
                 if isinstance(s.get("name"), str) and s["name"].isidentifier() and not s["name"].startswith("_")
                 and s["name"] not in ("reset", "get_reward")}
    if not namespace:
        raise EnvironmentRefused(f"the environment {environment_label(spec)} has no tools", "environment")
    namespace.update(_spec=spec, _allowed=list(allowed), _limits=limits)
    return type("Sandboxed" + re.sub(r"\W", "", spec.get("kind", "")).title(), (SandboxedEnvironment,), namespace)


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its environment processes: those that
    ended in full, live ones by what they used so far (so the difference of two readings is what
    was spent in between, wherever: environment processes started during setup, like the model's
    loading, are counted when they end, and their start is not training)."""
    return _own_cpu_seconds() + _live_environments_cpu()


def _live_environments_cpu() -> float:
    """CPU seconds the environment processes still running have used so far (Linux's /proc; 0
    where it cannot be read, which counts their setup as training: never less than the truth)."""
    with _OPEN_LOCK:
        procs = [e.proc for e in _SPARES] + [env._episode.proc for env in _OPEN if env._episode is not None]
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in procs:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (AttributeError, OSError, IndexError, ValueError):
            continue
    return total


def _own_cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its children that have ended."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime
