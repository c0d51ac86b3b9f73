"""GRPO rollouts (pure; no Django): reading a run's ``rollouts/step-NNNNNN.jsonl`` files, the
pair two rollouts of one prompt make, and the dashboard's series from the logged metrics.

The runner writes one episode a line::

    {"prompt_id": "12", "source_trajectory": 7, "step": 10,
     "trajectory": {...canonical trajectory...},
     "rewards": {"tool_name": 1.0, "format": 0.5}, "total_reward": 1.5,
     "hit_iteration_limit": false, "tool_errors": 0}

then appends ``{"event": "rollouts", "step": 10, "path": "rollouts/step-000010.jsonl", "count": N}``
to ``metrics.jsonl``; the worker stores each episode as a draft trajectory of the project.

>>> line = ('{"prompt_id": "p1", "source_trajectory": null, "step": 2, "rewards": {"format": 1}, '
...         '"total_reward": 1, "hit_iteration_limit": false, "tool_errors": 0, '
...         '"trajectory": {"turns": [{"user": "Hi", "steps": [{"kind": "answer", "text": "Hello"}]}]}}')
>>> [e] = read_episodes(line, "rollouts/step-000002.jsonl")
>>> e.prompt_id, e.step, e.rewards, e.total_reward, e.trajectory.turns[0].steps[0].text
('p1', 2, {'format': 1.0}, 1.0, 'Hello')
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from annotate.pairs.core import PairError, Pair, guess_category, same_content
from annotate.trajectory import SchemaError, Trajectory, Turn
from core.errors import InputError
from training.paths import is_inside

SOURCE = "rollout"


class RolloutError(InputError):
    """A rollouts event or file the worker cannot read; the message names the file, line and field."""


@dataclass
class Episode:
    """One episode of a rollouts file."""

    prompt_id: str
    step: int
    trajectory: Trajectory
    rewards: dict[str, float] = field(default_factory=dict)
    total_reward: float = 0.0
    source_trajectory: int | None = None
    hit_iteration_limit: bool = False
    tool_errors: int = 0
    line: int = 0

    def meta_extra(self, job_id: int) -> dict:
        """What the stored trajectory keeps in its metadata (``meta.extra``)."""
        return {"training_job": job_id, "step": self.step, "prompt_id": self.prompt_id,
                "source_trajectory": self.source_trajectory, "rewards": dict(self.rewards),
                "total_reward": self.total_reward, "hit_iteration_limit": self.hit_iteration_limit,
                "tool_errors": self.tool_errors, "line": self.line}


def rollouts_file(run_dir: str | os.PathLike, event: dict) -> Path:
    """The file a ``rollouts`` event names, which must lie inside the run folder (symlinks followed).

    >>> rollouts_file("/runs/7", {"path": "rollouts/step-000010.jsonl"}).as_posix()
    '/runs/7/rollouts/step-000010.jsonl'
    >>> try:
    ...     rollouts_file("/runs/7", {"path": "../8/rollouts/step-000010.jsonl"})
    ... except RolloutError as e:
    ...     print(e)
    path: '../8/rollouts/step-000010.jsonl' is outside the run folder
    """
    rel = event.get("path")
    if not isinstance(rel, str) or not rel.strip():
        raise RolloutError("a rollouts event must name its file (a path inside the run folder)", "path")
    path = Path(run_dir) / rel
    if os.path.isabs(rel) or not is_inside(str(path), [run_dir]):
        raise RolloutError(f"{rel!r} is outside the run folder", "path")
    return path


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"must be a finite number, got {value!r}", where)
    return float(value)


def episode_from_dict(d, line: int = 0) -> Episode:
    """One line's episode; ``SchemaError`` naming the field otherwise."""
    if not isinstance(d, dict):
        raise SchemaError("must be an object (one episode a line)")
    prompt_id = d.get("prompt_id")
    if isinstance(prompt_id, bool) or not isinstance(prompt_id, (str, int)) or str(prompt_id) == "":
        raise SchemaError("must be the prompt's id (a string)", "prompt_id")
    step = d.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise SchemaError(f"must be a step number, got {step!r}", "step")
    source = d.get("source_trajectory")
    if source is not None and (isinstance(source, bool) or not isinstance(source, int)):
        raise SchemaError(f"must be a trajectory id or null, got {source!r}", "source_trajectory")
    rewards = d.get("rewards", {})
    if not isinstance(rewards, dict):
        raise SchemaError("must be an object of reward function name to value", "rewards")
    errors = d.get("tool_errors", 0)
    if isinstance(errors, bool) or not isinstance(errors, int) or errors < 0:
        raise SchemaError(f"must be a count, got {errors!r}", "tool_errors")
    limit = d.get("hit_iteration_limit", False)
    if not isinstance(limit, bool):
        raise SchemaError(f"must be true or false, got {limit!r}", "hit_iteration_limit")
    return Episode(prompt_id=str(prompt_id), step=step, trajectory=Trajectory.from_dict(d.get("trajectory"),
                                                                                        "trajectory"),
                   rewards={str(k): _number(v, f"rewards.{k}") for k, v in rewards.items()},
                   total_reward=_number(d.get("total_reward"), "total_reward"), source_trajectory=source,
                   hit_iteration_limit=limit, tool_errors=errors, line=line)


def read_episodes(text: str, name: str) -> list[Episode]:
    """Every episode of a rollouts file's ``text``; ``RolloutError`` naming ``name``, the line and
    the field at the first bad one (a file is stored whole or not at all)."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            out.append(episode_from_dict(json.loads(raw), number))
        except ValueError as e:  # (json's errors and SchemaError are both ValueErrors)
            problem = e.message if isinstance(e, InputError) else f"not JSON: {e}"
            where = getattr(e, "field", "") or ""
            raise RolloutError(f"{name}, line {number}{', ' + where if where else ''}: {problem}", "path") from None
    return out


def external_id(job_id: int, episode: Episode) -> str:
    """The stored trajectory's id in its source: a re-read of the same line finds it again.

    >>> external_id(5, Episode(prompt_id="p", step=10, trajectory=Trajectory(), line=3))
    'rollout-5-10-3'
    """
    return f"rollout-{job_id}-{episode.step}-{episode.line}"


def pair_from_rollouts(first: Trajectory, first_reward: float, second: Trajectory, second_reward: float,
                       *, note: str = "", external: str = "") -> Pair:
    """The preference pair two episodes of one prompt make: the prompt as context (every turn, the
    last without its assistant steps), the higher-reward episode's last turn chosen, the other's
    rejected. ``PairError`` when the rewards are equal or the prompts differ."""
    if first_reward == second_reward:
        raise PairError(f"both rollouts scored {first_reward:g}: a pair needs a higher and a lower reward",
                        "rollouts")
    high, low = (first, second) if first_reward > second_reward else (second, first)
    if not high.turns or not low.turns:
        raise PairError("a rollout has no turn to compare", "rollouts")
    prompt_high, prompt_low = _prompt_of(high), _prompt_of(low)
    if (prompt_high.system, [t.to_dict() for t in prompt_high.turns]) != (
            prompt_low.system, [t.to_dict() for t in prompt_low.turns]):
        raise PairError("the two rollouts answer different prompts", "rollouts")
    chosen = copy.deepcopy(high.turns[-1].steps)
    rejected = copy.deepcopy(low.turns[-1].steps)
    if same_content(chosen, rejected):
        raise PairError("the two rollouts did the same thing: there is nothing to prefer", "rollouts")
    category = guess_category(prompt_high, chosen, rejected)
    return Pair(context=prompt_high, chosen=chosen, rejected=rejected, category=category, source=SOURCE,
                note=note, external_id=external)


def _prompt_of(traj: Trajectory) -> Trajectory:
    """The episode's prompt: its turns, the last one cut before the assistant's first step."""
    turns = copy.deepcopy(traj.turns[:-1]) + [Turn(user=traj.turns[-1].user)]
    meta = copy.deepcopy(traj.meta)
    meta.extra = {}
    return Trajectory(system=traj.system, tools=copy.deepcopy(traj.tools), turns=turns, meta=meta)


# The dashboard ---------------------------------------------------------------------------------

# (title, [(metric key, series label)]): the GRPO charts after the per-function reward bands.
GRPO_CHARTS = [
    ("KL divergence", [("kl", "KL")]),
    ("Completion length (tokens)", [("completions/mean_length", "mean")]),
    ("Tool calls per episode", [("episodes/tool_calls_mean", "calls")]),
    ("Episodes that hit a limit (share)", [("episodes/iteration_limit_share", "iteration limit"),
                                           ("episodes/tool_error_share", "tool error")]),
]


@dataclass
class Band:
    """A mean with its spread (± one standard deviation) per step."""

    title: str
    mean: list[tuple[int, float]]
    std: list[tuple[int, float]]

    def series(self) -> list[tuple[str, list[tuple[int, float]]]]:
        spread = dict(self.std)
        return [("mean", self.mean),
                ("mean + std", [(s, m + spread[s]) for s, m in self.mean if s in spread]),
                ("mean − std", [(s, m - spread[s]) for s, m in self.mean if s in spread])]


def reward_functions(points: list[tuple[int, dict]]) -> list[str]:
    """The reward functions logged (``rewards/<func>/mean``), in the order they first appear.

    >>> reward_functions([(1, {"rewards/format/mean": 1, "rewards/tool_name/mean": 0, "kl": 0})])
    ['format', 'tool_name']
    """
    seen: dict[str, None] = {}
    for _, values in points:
        for key in values:
            if key.startswith("rewards/") and key.endswith("/mean"):
                seen.setdefault(key[len("rewards/"):-len("/mean")], None)
    return list(seen)


def _series(points: list[tuple[int, dict]], key: str) -> list[tuple[int, float]]:
    return [(step, float(v[key])) for step, v in points
            if isinstance(v.get(key), (int, float)) and not isinstance(v.get(key), bool) and math.isfinite(v[key])]


def reward_bands(points: list[tuple[int, dict]]) -> list[Band]:
    """The total reward's band (``reward`` ± ``reward_std``), then each reward function's."""
    bands = [Band("Total reward", _series(points, "reward"), _series(points, "reward_std"))]
    for func in reward_functions(points):
        bands.append(Band(f"Reward: {func}", _series(points, f"rewards/{func}/mean"),
                          _series(points, f"rewards/{func}/std")))
    return bands


def is_grpo_log(points: list[tuple[int, dict]]) -> bool:
    """Whether the metrics are a GRPO run's (TRL logs ``reward`` and ``reward_std``)."""
    return any("reward" in v or "reward_std" in v for _, v in points)


def metric_series(points: list[tuple[int, dict]], charts=GRPO_CHARTS) -> list[tuple[str, list[str], list]]:
    """``[(title, keys, [(label, [(step, value)])])]`` for the plain GRPO charts."""
    return [(title, [k for k, _ in keys], [(label, _series(points, key)) for key, label in keys])
            for title, keys in charts]
