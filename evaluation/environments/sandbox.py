"""Each episode in a child process of its own, with limits (pure; no Django).

:class:`Episode` starts ``python -m evaluation.environments.sandbox``, which builds the environment
(:func:`~evaluation.environments.spec.environment_class`), resets it from the item's row and then
answers requests, one JSON line each way over two pipes of their own (the child's stdin is
``/dev/null``; what its tools print goes to a capture file):

- ``call``: run one tool call; a tool that raises is an error *result* the model reads;
- ``check``: run the turn's gold calls against a second, fresh environment (reset from the same
  row) and compare, as BFCL's multi-turn checker does: the state of every instance, and the gold
  calls' results among all the results of the model's calls so far;
- ``reward``: the environment's ``get_reward()``, when it has one.

Limits (:class:`Limits`): seconds per request and per episode, address space, bytes printed or
returned, and no network and no new processes unless allowed (an audit hook refuses sockets'
connect / bind / name lookups and process creation inside the child). A tool that hangs, runs out of
memory, crashes the interpreter or floods its output ends *that episode* with an
:class:`EpisodeFailed` whose ``kind`` labels it (``timeout``, ``memory``, ``crash``, ``output_flood``,
``setup``); the process group is killed, and the caller goes on with the next item.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evaluation.environments.base import (
    EnvironmentRefused,
    ToolResult,
    call_tool,
    compare_states,
    gold_call,
    is_subsequence_unordered,
    jsonable,
    tool_schemas,
)
from evaluation.environments.spec import environment_class, state_instances

ROOT = Path(__file__).resolve().parents[2]
FAILURES = ("timeout", "memory", "crash", "output_flood", "setup")


@dataclass
class Limits:
    """What one episode may use (``STUDIO_ENVIRONMENT_*`` settings give the defaults of a run)."""

    seconds: float = 30.0  # one request: a tool call, or a turn's check
    setup_seconds: float = 120.0  # starting the child, importing the class and reset(): slow on a busy machine
    episode_seconds: float = 600.0  # the whole episode
    memory_mb: int = 2048  # the child's address space
    output_bytes: int = 1_000_000  # printed by the tools, or returned by one call
    network: bool = False
    processes: bool = False

    @classmethod
    def from_dict(cls, d: dict | None) -> "Limits":
        d = d or {}
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in d.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)


class EpisodeFailed(Exception):
    """The episode ended because its environment failed; ``kind`` is one of ``FAILURES``."""

    def __init__(self, kind: str, message: str):
        self.kind, self.message = kind, message
        super().__init__(f"{kind}: {message}")


# --- the parent's side -------------------------------------------------------------------------

class Episode:
    """One environment in its own child process. Use as a context manager::

        with Episode({"kind": "bfcl", "classes": ["MathAPI"]}, {}) as ep:
            ep.call("add", {"a": 1, "b": 2}).text
    """

    def __init__(self, spec: dict, row: dict | None = None, *, limits: Limits | None = None,
                 allowed: tuple[str, ...] | list[str] = (), schemas: bool = False):
        self.spec, self.row, self.allowed = spec, dict(row or {}), list(allowed)
        self.limits = limits or Limits()
        self.want_schemas = schemas
        self.tools: list[dict] | None = None
        self.observation: Any = None
        self.proc: subprocess.Popen | None = None
        self._buffer = b""
        self._workdir = ""

    def __enter__(self) -> "Episode":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._workdir = tempfile.mkdtemp(prefix="studio-env-")
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        self._capture = Path(self._workdir) / "output.txt"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env["STUDIO_ENV_LIMITS"] = json.dumps(self.limits.to_dict())
        try:
            with open(self._capture, "wb") as capture:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "evaluation.environments.sandbox", str(request_r), str(reply_w)],
                    stdin=subprocess.DEVNULL, stdout=capture, stderr=capture, cwd=self._workdir, env=env,
                    pass_fds=(request_r, reply_w), start_new_session=True)
        except OSError as exc:  # no process to be had (fork limits, memory): this episode's failure
            for fd in (request_r, request_w, reply_r, reply_w):
                os.close(fd)
            raise EpisodeFailed("setup", f"the environment process could not start: {exc}") from None
        finally:
            if self.proc is not None:
                os.close(request_r)
                os.close(reply_w)
        self._out = os.fdopen(request_w, "wb", buffering=0)
        self._in = reply_r
        self._deadline = float("inf")  # the episode's clock starts once it is set up
        reply = self._request({"op": "start", "spec": self.spec, "row": self.row, "allowed": self.allowed,
                               "schemas": self.want_schemas}, what="setting up the environment",
                              seconds=self.limits.setup_seconds)
        self.tools, self.observation = reply.get("tools"), reply.get("observation")
        self._deadline = time.monotonic() + self.limits.episode_seconds

    def call(self, name: str, arguments: Any) -> ToolResult:
        reply = self._request({"op": "call", "name": name, "arguments": arguments}, what=f"the tool {name!r}")
        return ToolResult(reply["text"], reply["ok"])

    def check(self, gold: list) -> dict:
        """The verdict of the turn that just ended, against its gold calls (see the module)."""
        return self._request({"op": "check", "gold": gold}, what="the ground truth")

    def reward(self) -> float | None:
        self.ask_reward()
        return self.reward_reply()

    def ask_reward(self) -> None:
        """Send ``get_reward``'s request without waiting (``reward_reply`` reads the answer), so a
        caller can ask many episodes at once and wait about one round trip, not one per episode."""
        self._send({"op": "reward"}, what="get_reward")

    def reward_reply(self) -> float | None:
        return self._receive(what="get_reward").get("reward")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self._out.write(b'{"op": "close"}\n')
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self._kill()
        if self.proc is not None:
            for stream in (self._out,):
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                os.close(self._in)
            except OSError:
                pass
            self.proc = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = ""

    # the exchange

    def _request(self, message: dict, *, what: str, seconds: float | None = None) -> dict:
        self._send(message, what=what)
        return self._receive(what=what, seconds=seconds)

    def _send(self, message: dict, *, what: str) -> None:
        assert self.proc is not None, "the episode is not started"
        try:
            self._out.write(json.dumps(message).encode() + b"\n")
        except OSError:
            raise self._died(what) from None

    def _receive(self, *, what: str, seconds: float | None = None) -> dict:
        seconds = self.limits.seconds if seconds is None else seconds
        reply = self._read_line(min(seconds, self._deadline - time.monotonic()), what, seconds)
        if "fatal" in reply:
            self._kill()
            raise EpisodeFailed(reply["fatal"], reply.get("message", ""))
        if "refused" in reply:
            self._kill()
            raise EpisodeFailed("setup", reply["refused"])
        return reply

    def _read_line(self, limit: float, what: str, seconds: float) -> dict:
        end = time.monotonic() + max(0.0, limit)
        while b"\n" not in self._buffer:
            left = end - time.monotonic()
            ready = select.select([self._in], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                self._kill()
                episode = self._deadline - time.monotonic() <= 0
                raise EpisodeFailed("timeout", f"{what} did not return within "
                                    f"{self.limits.episode_seconds if episode else seconds:g} s"
                                    + (" (the episode's limit)" if episode else ""))
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise self._died(what)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _died(self, what: str) -> EpisodeFailed:
        code = self.proc.wait() if self.proc else None
        printed = self._capture.stat().st_size if self._capture.exists() else 0
        if code == -signal.SIGXFSZ or printed >= self.limits.output_bytes:
            return EpisodeFailed("output_flood", f"{what} printed more than {self.limits.output_bytes} bytes")
        how = f"was killed by {signal.Signals(-code).name}" if code and code < 0 else f"exited with code {code}"
        tail = self._capture.read_bytes()[-600:].decode("utf-8", "replace").strip() if printed else ""
        return EpisodeFailed("crash", f"the environment process {how} during {what}" + (f": {tail}" if tail else ""))

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()


# --- the child's side --------------------------------------------------------------------------

NETWORK_EVENTS = ("socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
                  "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg")
PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                  "os.forkpty", "pty.spawn")


def _apply_limits(limits: Limits) -> None:
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    refused = (() if limits.network else NETWORK_EVENTS) + (() if limits.processes else PROCESS_EVENTS)
    if refused:
        def hook(event: str, args: tuple) -> None:
            if event in refused:
                kind = "network access" if event.startswith("socket.") else "starting processes"
                raise PermissionError(f"{kind} is disabled in tool environments ({event})")
        sys.addaudithook(hook)  # cannot be removed by the code it guards


class _Session:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.results: list[str] = []  # every result of the model's calls, all turns (BFCL's response check)

    def start(self, spec: dict, row: dict, allowed: list[str], schemas: bool) -> dict:
        self.cls = environment_class(spec, allowed)
        self.row = row
        self.env = self.cls()
        self.gold = None
        observation = self.env.reset(**row)
        return {"tools": tool_schemas(self.cls) if schemas else None, "observation": jsonable(observation)}

    def call(self, name: str, arguments: Any) -> dict:
        result = call_tool(self.env, name, arguments)
        # Python ignores SIGXFSZ: past the file-size limit a print raises EFBIG, which the tool may
        # swallow. The capture file (stdout and stderr) at the limit is the flood, whatever it did.
        if os.fstat(1).st_size >= self.limits.output_bytes:
            return {"fatal": "output_flood",
                    "message": f"the tool {name!r} printed more than {self.limits.output_bytes} bytes"}
        if len(result.text.encode("utf-8", "replace")) > self.limits.output_bytes:
            return {"fatal": "output_flood",
                    "message": f"the tool {name!r} returned more than {self.limits.output_bytes} bytes"}
        self.results.append(result.text)
        return {"text": result.text, "ok": result.ok}

    def check(self, gold: list) -> dict:
        if self.gold is None:
            self.gold = self.cls()
            self.gold.reset(**self.row)
        gold_results = []
        for call in gold:
            try:
                name, arguments = gold_call(self.cls, call)
            except (ValueError, TypeError) as exc:
                return {"valid": False, "error_type": "multi_turn:bad_ground_truth", "message": str(exc)}
            gold_results.append(call_tool(self.gold, name, arguments).text)
        differences = compare_states(state_instances(self.env), state_instances(self.gold))
        if differences:
            classes = ", ".join(differences)
            return {"valid": False, "error_type": "multi_turn:instance_state_mismatch",
                    "message": f"the state of {classes} does not match the ground truth's",
                    "differences": differences, "gold_results": gold_results}
        ok, missing = is_subsequence_unordered(gold_results, self.results)
        if not ok:
            return {"valid": False, "error_type": "multi_turn:execution_response_mismatch",
                    "message": f"{len(missing)} result(s) of the ground truth's calls are missing from the model's",
                    "missing": missing, "gold_results": gold_results}
        return {"valid": True, "gold_results": gold_results}

    def reward(self) -> dict:
        hook = getattr(self.env, "get_reward", None)
        return {"reward": float(hook()) if hook is not None else None}

    def handle(self, message: dict) -> dict:
        op = message.get("op")
        if op == "start":
            return self.start(message["spec"], message.get("row") or {}, message.get("allowed") or [],
                              bool(message.get("schemas")))
        if op == "call":
            return self.call(str(message.get("name", "")), message.get("arguments"))
        if op == "check":
            return self.check(list(message.get("gold") or []))
        if op == "reward":
            return self.reward()
        return {"refused": f"unknown request {op!r}"}


def child_main(request_fd: int, reply_fd: int) -> int:
    limits = Limits.from_dict(json.loads(os.environ.get("STUDIO_ENV_LIMITS") or "{}"))
    _apply_limits(limits)
    session = _Session(limits)
    with os.fdopen(request_fd, "rb") as requests, os.fdopen(reply_fd, "wb", buffering=0) as replies:
        for line in requests:
            message = json.loads(line)
            if message.get("op") == "close":
                break
            try:
                reply = session.handle(message)
            except MemoryError:
                session = None  # free what can be freed before answering
                reply = {"fatal": "memory", "message": f"the environment ran out of memory "
                                                       f"(limit {limits.memory_mb} MB)"}
            except Exception as exc:  # setting up or checking failed: the environment's fault

                kind = "refused" if isinstance(exc, EnvironmentRefused) else "fatal"
                reply = ({"refused": exc.message} if kind == "refused"
                         else {"fatal": "crash", "message": f"{type(exc).__name__}: {exc}"})
            replies.write(json.dumps(reply, default=str).encode() + b"\n")
            if "fatal" in reply or "refused" in reply:
                break
    return 0


if __name__ == "__main__":
    sys.exit(child_main(int(sys.argv[1]), int(sys.argv[2])))
