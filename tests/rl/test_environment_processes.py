"""The GRPO runner's environment processes (``rl.environments``) without a trainer:
started ahead of the first step, each episode in a child process of its own, none left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from evaluation.environments.sandbox import Limits
from rl import environments
from rl.runner import BUILTIN_ENVIRONMENTS

SPEC = {"kind": "python", "class": BUILTIN_ENVIRONMENTS[0]}


@pytest.fixture
def env_class():
    limits = Limits(setup_seconds=60)
    tools = environments.environment_tools(SPEC, {}, list(BUILTIN_ENVIRONMENTS), limits)
    yield environments.sandboxed_class(SPEC, tools, list(BUILTIN_ENVIRONMENTS), limits)
    environments.close_all()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited; /proc says so
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_the_first_episodes_run_in_the_processes_started_ahead_and_none_outlives_the_run(env_class):
    assert environments.prestart(env_class, 2) == 2
    ahead = {e.proc.pid for e in environments._SPARES}
    envs = [env_class(), env_class()]
    for env in envs:
        env.reset(prompt=[{"role": "user", "content": "Weather in Oslo?"}])
    assert {env._episode.proc.pid for env in envs} == ahead and not environments._SPARES
    assert envs[0].get_weather(city="Oslo") == '{"temperature": -3, "condition": "snow", "unit": "celsius"}'
    with pytest.raises(environments.ToolFailed, match="unknown city"):
        envs[1].get_weather(city="Atlantis")
    assert [env._reward() for env in envs] == [1.0, 0.0]  # each episode's own state, in its own process

    environments.close_all()
    assert not any(_alive(pid) for pid in ahead)


def test_a_process_started_ahead_that_died_is_replaced_not_blamed_on_the_episode(env_class):
    assert environments.prestart(env_class, 1) == 1
    dead = environments._SPARES[0].proc
    os.killpg(dead.pid, signal.SIGKILL)
    dead.wait()
    env = env_class()
    env.reset()
    assert env.get_weather(city="Rome") == '{"temperature": 24, "condition": "sunny", "unit": "celsius"}'
    assert env._episode.proc.pid != dead.pid and env.failure == "" and env.tool_errors == 0


def test_spares_left_unused_are_closed_with_the_run(env_class):
    environments.prestart(env_class, 3)
    pids = [e.proc.pid for e in environments._SPARES]
    environments.close_all()
    assert not environments._SPARES and not any(_alive(pid) for pid in pids)


def test_an_environment_process_does_not_load_the_bfcl_loader_unless_it_plays_bfcl():
    # Every episode's process imports the sandbox; BFCL's loader (jsonschema) doubled its start.
    code = "import sys, evaluation.environments.sandbox; print(sorted({'jsonschema', 'annotate.findings'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(environments.SANDBOX_ROOT)})
    assert done.stdout.strip() == "[]"


BUSY = "tests.rl.busy_environment.BusyTools"


@pytest.fixture
def busy_class():
    spec, limits = {"kind": "python", "class": BUSY}, Limits(setup_seconds=60)
    yield environments.sandboxed_class(spec, environments.environment_tools(spec, {}, [BUSY], limits), [BUSY], limits)
    environments.close_all()


def test_a_batchs_environment_rewards_are_asked_at_once_and_a_failed_one_scores_zero(busy_class):
    envs = [busy_class() for _ in range(4)]
    for env, fails in zip(envs, (False, True, False, False)):
        env.reset(reward_seconds=0.4, reward_fails=fails)
    for env in envs:
        env._ready()
    started = time.monotonic()
    assert environments.environment_rewards(envs) == [1.0, 0.0, 1.0, 1.0]  # in order; the failed one 0.0
    assert time.monotonic() - started < 1.2  # about one 0.4 s get_reward, not four in a row (1.6 s)
    envs[1].reset()  # its process was ended by the failure: the next episode gets a new one
    assert envs[1].spin(seconds=0) == "done" and envs[1]._reward() == 1.0


def test_the_runs_cpu_seconds_count_the_environments_from_the_mark_on_not_before_it(busy_class):
    # The processes start (and here, work) before training, like the model's loading, which the
    # plain script's figure leaves out too; they are counted when they end, after training, so
    # the reading at the start takes their share so far off.
    env_class = busy_class
    try:
        environments.prestart(env_class, 2)
        envs = [env_class(), env_class()]
        for env in envs:
            env.reset()
            assert env.spin(seconds=0.3) == "done"
        before = environments.cpu_seconds()
        for env in envs:
            assert env.spin(seconds=0.1) == "done"
        environments.close_all()
        assert 0.2 <= environments.cpu_seconds() - before < 0.5  # the two 0.1 s calls, not the 0.6 s before
    finally:
        environments.close_all()


def test_reading_the_tools_schemas_does_not_import_torch():
    """A CUDA torch maps several GB, past an episode process's 2 GB address-space limit: on a GPU machine
    every GRPO episode failed to start while transformers imported torch to read the tools' type hints."""
    code = ("import sys; from evaluation.environments.base import tool_schemas; "
            "from rl.demo_environment import TravelTools; "
            "print(len(tool_schemas(TravelTools)), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(environments.SANDBOX_ROOT)})
    assert done.stdout.split() == ["3", "False"]
