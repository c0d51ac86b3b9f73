"""tau-bench historical trajectories -> canonical trajectories (pure; no Django).

A record is ``{"task_id", "trial", "reward", "info": {"task": {"user_id", "instruction",
"actions", "outputs"}}, "traj": [OpenAI messages]}``. The messages go through the OpenAI
converter; the task's reward, expected actions and outputs are kept as the gold ``meta.reference``
(and the reward as a ``reward:<r>`` tag), the user simulator's instruction in ``meta.extra``. The
files carry no tool schemas: pass the domain's tools (``airline_tools.json``) as ``tools``.

>>> t = to_trajectory({"task_id": 3, "trial": 0, "reward": 1.0, "info": {"task": {"actions": []}},
...     "traj": [{"role": "system", "content": "policy"}, {"role": "user", "content": "hi"},
...              {"role": "assistant", "content": "Hello!"}]})
>>> t.meta.external_id, t.meta.reference["reward"], t.meta.tags
('3/trial0', 1.0, ['reward:1'])
"""

from __future__ import annotations

from typing import Any

from annotate.formats import Format, plain_reader, register
from annotate.formats.common import leftovers, meta_field, require_dict, require_list, set_meta, tools_field, type_name
from annotate.formats.messages import messages_to_trajectory
from annotate.trajectory import SchemaError, Trajectory


_RECORD_KEYS = frozenset(("task_id", "trial", "reward", "info", "traj", "tools", "meta"))
_TASK_KEYS = frozenset(("user_id", "instruction", "actions", "outputs"))


def to_trajectory(record: dict, *, source: str = "", tools: list[dict] | None = None) -> Trajectory:
    """Convert one tau-bench result; ``tools`` (the domain's tool list) is used when it has none."""
    record = require_dict(record, "record")
    if "traj" not in record:
        raise SchemaError("a tau-bench record needs 'traj' (the message list)", "traj")
    traj = messages_to_trajectory(require_list(record["traj"], "traj"), "traj")
    traj.tools = tools_field(record["tools"], "tools") if record.get("tools") else tools_field(tools, "tools")
    info = record.get("info")
    info = {} if info is None else info
    if type(info) is not dict:
        raise SchemaError(f"must be an object, got {type_name(info)}", "info")
    task = info.get("task")
    task = {} if task is None else task
    if type(task) is not dict:
        raise SchemaError(f"must be an object, got {type_name(task)}", "info.task")
    reward = record.get("reward")
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, (int, float))):
        raise SchemaError(f"must be a number, got {type_name(reward)}", "reward")
    reference: dict[str, Any] = {"reward": reward, "actions": task.get("actions") or [],
                                 "outputs": task.get("outputs") or []}
    extra = {k: v for k, v in (("task_id", record.get("task_id")), ("trial", record.get("trial")),
                               ("user_id", task.get("user_id")), ("instruction", task.get("instruction")))
             if v is not None}
    # Everything else (the reward's details, the simulator's cost...) is kept as it came.
    extra.update(leftovers(record, _RECORD_KEYS, ""))
    info_left = leftovers(info, ("task",), "info")
    task_left = leftovers(task, _TASK_KEYS, "info.task")
    if task_left:
        info_left["task"] = task_left
    if info_left:
        extra["info"] = info_left
    extra.update(traj.meta.extra)
    task_id, trial = record.get("task_id"), record.get("trial")
    external_id = None if task_id is None else f"{task_id}" + (f"/trial{trial}" if trial is not None else "")
    given = meta_field(record.get("meta"), "meta")
    set_meta(traj, given, source=source, external_id=external_id, reference=reference,
                          tags=[f"reward:{reward:g}"] if reward is not None else None, extra=extra)
    return traj


register(Format(
    "tau_bench", title="tau-bench trajectories", aliases=("tau",),
    detect=lambda r: "traj" in r, read=plain_reader(to_trajectory),
    rule="a 'traj' list of OpenAI messages",
    example={"task_id": 3, "reward": 1.0, "traj": [{"role": "system", "content": "You are an airline agent."},
             {"role": "user", "content": "Cancel my booking."}, {"role": "assistant", "content": "Done."}]}))
