"""Tool environments: classes whose methods are the tools, replays of gold results, and the child
process each episode runs in, with every way a tool can break it ending that episode, labelled."""

from __future__ import annotations

import time

import pytest

from evaluation import bfcl_package
from evaluation.environments.base import EnvironmentRefused, tool_names, tool_schemas
from evaluation.environments.sandbox import Episode, EpisodeFailed, Limits
from tests.evaluation.env_classes import Counter

COUNTER = {"kind": "python", "class": "tests.evaluation.env_classes.Counter"}
MISBEHAVING = {"kind": "python", "class": "tests.evaluation.env_classes.Misbehaving"}
ALLOWED = [COUNTER["class"], MISBEHAVING["class"]]


def episode(spec=MISBEHAVING, row=None, **limits):
    return Episode(spec, row or {}, allowed=ALLOWED, limits=Limits(**{"seconds": 10, **limits}))


def test_the_tools_are_the_public_methods_with_schemas_read_as_trl_reads_them():
    assert tool_names(Counter) == ["add", "fail"]  # not reset, get_reward or private ones
    add = next(s["function"] for s in tool_schemas(Counter) if s["function"]["name"] == "add")
    add.pop("return", None)
    assert add["parameters"] == {"type": "object", "properties": {"n": {"type": "integer", "description": "How much to add."}},
                                 "required": ["n"]}
    assert add["description"] == "Add to the counter."


def test_two_threads_reading_schemas_at_once_leave_transformers_as_it_was(monkeypatch):
    """tool_schemas hides torch from transformers for its call; two threads at once must not leave
    the stand-in behind (each reads schemas while the other is, if the code lets them)."""
    import threading

    from transformers.utils import chat_template_utils

    original = chat_template_utils.is_torch_available
    real_schema = chat_template_utils.get_json_schema
    inside, arrived, both_in = [], [], threading.Event()

    def slow_schema(fn):
        # The first thread in waits (up to 0.3 s) for the second; the second then finishes last.
        inside.append(fn)
        me = threading.get_ident()
        if me not in arrived:
            arrived.append(me)
        if len(arrived) >= 2:
            both_in.set()
        both_in.wait(0.3)
        if arrived.index(me) == 1:
            time.sleep(0.05)
        return real_schema(fn)

    monkeypatch.setattr("transformers.utils.get_json_schema", slow_schema)
    monkeypatch.delitem(__import__("sys").modules, "torch", raising=False)
    threads = [threading.Thread(target=tool_schemas, args=(Counter,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(inside) == 4  # (two tools each)
    assert chat_template_utils.is_torch_available is original


def test_an_episode_resets_from_the_row_runs_calls_and_reports_the_reward():
    with episode(COUNTER, {"start": 1, "target": 3}, ) as ep:
        assert ep.observation == "The counter is at 1."
        assert ep.call("add", {"n": 2}).text == "3"
        assert ep.reward() == 1.0
        failed = ep.call("fail", {"why": "bad input"})  # the tool's own error: the model reads it
        assert not failed.ok and failed.text == "Error during execution: bad input"
        assert ep.call("add", {"n": 1}).text == "4" and ep.reward() == 0.0  # and the episode goes on


def test_the_child_lists_the_schemas_when_asked():
    with Episode(COUNTER, {}, allowed=ALLOWED, schemas=True) as ep:
        assert [t["function"]["name"] for t in ep.tools] == ["add", "fail"]


def test_a_class_nobody_registered_is_not_imported():
    with pytest.raises(EpisodeFailed) as caught:
        Episode({"kind": "python", "class": "subprocess.Popen"}, {}, allowed=ALLOWED).start()
    assert caught.value.kind == "setup" and "not a registered environment class" in caught.value.message
    with pytest.raises(EnvironmentRefused):
        from evaluation.environments.spec import environment_class
        environment_class({"kind": "python", "class": "subprocess.Popen"}, allowed=[])


def test_a_tool_that_hangs_ends_the_episode_at_the_time_limit_and_the_next_episode_runs():
    started = time.monotonic()
    with pytest.raises(EpisodeFailed) as caught, episode(seconds=1) as ep:
        ep.call("hang", {})
    assert caught.value.kind == "timeout" and "'hang' did not return within 1 s" in caught.value.message
    assert time.monotonic() - started < 8
    with episode(COUNTER) as ep:
        assert ep.call("add", {"n": 1}).text == "1"


def test_the_episode_has_a_time_limit_of_its_own():
    with pytest.raises(EpisodeFailed) as caught, episode(COUNTER, seconds=5, episode_seconds=1.5) as ep:
        ep.call("add", {"n": 1})
        time.sleep(1.6)
        ep.call("add", {"n": 1})
    assert caught.value.kind == "timeout" and "the episode's limit" in caught.value.message


def test_a_tool_that_runs_out_of_memory_ends_the_episode_labelled():
    with pytest.raises(EpisodeFailed) as caught, episode(memory_mb=300) as ep:
        assert ep.call("allocate", {"megabytes": 10}).text == str(10 * 1024 * 1024)
        ep.call("allocate", {"megabytes": 1000})
    assert caught.value.kind == "memory" and "300 MB" in caught.value.message


def test_a_tool_that_kills_the_interpreter_ends_the_episode_as_a_crash():
    with pytest.raises(EpisodeFailed) as caught, episode() as ep:
        ep.call("crash", {})
    assert caught.value.kind == "crash" and "exited with code 3" in caught.value.message


def test_a_tool_that_floods_its_output_ends_the_episode_labelled():
    with pytest.raises(EpisodeFailed) as caught, episode(output_bytes=100_000) as ep:
        ep.call("shout", {"megabytes": 5})
    assert caught.value.kind == "output_flood" and "printed more than 100000 bytes" in caught.value.message
    with pytest.raises(EpisodeFailed) as caught, episode(output_bytes=100_000) as ep:
        ep.call("huge", {"megabytes": 1})
    assert caught.value.kind == "output_flood" and "returned more than 100000 bytes" in caught.value.message


def test_there_is_no_network_and_no_new_process_unless_allowed():
    with episode() as ep:
        refused = ep.call("fetch", {"host": "127.0.0.1"})
        assert not refused.ok and "network access is disabled" in refused.text
        spawned = ep.call("spawn", {})
        assert not spawned.ok and "starting processes is disabled" in spawned.text
    with episode(network=True) as ep:
        tried = ep.call("fetch", {"host": "127.0.0.1"})  # nothing listens on port 80 here: it really tried
        assert "network access is disabled" not in tried.text


def test_a_replay_answers_recorded_calls_and_refuses_others_clearly():
    recorded = [{"name": "get_weather", "arguments": {"city": "Paris"}, "text": "18C"},
                {"name": "get_weather", "arguments": {"city": "Paris"}, "text": "19C"}]
    with Episode({"kind": "replay"}, {"recorded": recorded}) as ep:
        assert [ep.call("get_weather", {"city": "Paris"}).text for _ in range(3)] == ["18C", "19C", "19C"]
        other = ep.call("get_weather", {"city": "Rome"})
        assert not other.ok and 'no recorded call matches get_weather({"city": "Rome"})' in other.text
        assert 'recorded: get_weather({"city": "Paris"})' in other.text


def test_the_module_examples_hold():
    import doctest

    from evaluation.environments import base, replay, spec

    for module in (base, replay, spec):
        assert doctest.testmod(module).failed == 0, module.__name__


def trl_tools(instance) -> dict:
    """The tools TRL 1.16's GRPOTrainer takes from an ``environment_factory`` instance (its own
    discovery: functions listed on the class, without reset, get_reward and private names), with the
    schemas it renders them with."""
    import inspect

    from transformers.utils import get_json_schema

    names = [n for n, _ in inspect.getmembers(type(instance), predicate=inspect.isfunction)
             if n not in ("reset", "get_reward") and not n.startswith("_")]
    return {n: get_json_schema(getattr(instance, n)) for n in names}


@pytest.mark.skipif(not bfcl_package.available(), reason="bfcl-eval is not unpacked (make setup)")
@pytest.mark.parametrize("name", ["GorillaFileSystem", "MathAPI", "MessageAPI", "TwitterAPI", "TicketAPI",
                                  "TradingBot", "TravelAPI", "VehicleControlAPI"])
def test_bfcls_classes_are_environments_trl_takes_with_the_tools_bfcl_documents(name):
    from evaluation.environments import bfcl

    env = bfcl.environment_class([name])()
    env.reset(initial_config={}, prompt=[{"role": "user", "content": "hi"}])  # TRL passes the whole row
    documented = {d["function"]["name"] for d in bfcl.func_docs([name])}
    tools = trl_tools(env)
    assert set(tools) == documented
    assert all(s["function"]["parameters"]["type"] == "object" for s in tools.values())


def test_a_replay_of_a_gold_trajectory_is_an_environment_trl_takes():
    from evaluation.environments.replay import replay_class

    spec = {"name": "get_weather", "description": "The weather in a city.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "description": "The city."},
                                         "days": {"type": "integer", "description": "How many days."}},
        "required": ["city"]}}
    env = replay_class([spec])()
    env.reset(recorded=[{"name": "get_weather", "arguments": {"city": "Oslo"}, "text": "-3C"}])
    schema = trl_tools(env)["get_weather"]["function"]
    assert schema["parameters"]["properties"]["days"] == {"type": "integer", "description": "How many days."}
    assert schema["parameters"]["required"] == ["city"] and schema["description"] == "The weather in a city."
    assert env.get_weather(city="Oslo") == "-3C" and "no recorded call matches" in env.get_weather(city="Rome")


def test_an_episode_that_cannot_start_a_process_fails_as_setup_not_with_an_exception(monkeypatch):
    import subprocess

    def refuse(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(subprocess, "Popen", refuse)
    ep = episode(COUNTER)
    with pytest.raises(EpisodeFailed) as caught:
        ep.start()
    ep.close()
    assert caught.value.kind == "setup" and "could not start" in caught.value.message
