"""What a GRPO run writes into its folder, for the rollout tests (not a test module): rollouts files
in the runner's format and the ``metrics.jsonl`` events that announce them."""

from __future__ import annotations

import json
from pathlib import Path

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def episode_doc(steps: list[dict], user: str = "Weather in Paris?") -> dict:
    return {"tools": TOOLS, "turns": [{"user": user, "steps": steps}]}


GOOD = [{"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1"},
        {"kind": "tool_result", "name": "get_weather", "text": "18C", "call_id": "c1"},
        {"kind": "answer", "text": "18 degrees in Paris."}]
BAD = [{"kind": "answer", "text": "It is sunny."}]


def line(prompt_id: str, step: int, steps: list[dict], reward: float, user: str = "Weather in Paris?", **kw) -> dict:
    return {"prompt_id": prompt_id, "source_trajectory": None, "step": step, "trajectory": episode_doc(steps, user),
            "rewards": {"tool_name": reward, "format": 1.0}, "total_reward": reward + 1.0,
            "hit_iteration_limit": False, "tool_errors": 0, **kw}


def write_rollouts(run_dir: Path, step: int, episodes: list[dict]) -> str:
    rel = f"rollouts/step-{step:06d}.jsonl"
    (run_dir / "rollouts").mkdir(parents=True, exist_ok=True)
    (run_dir / rel).write_text("".join(json.dumps(e) + "\n" for e in episodes))
    return rel


def append_events(run_dir: Path, *events: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def log_event(step: int, reward: float) -> dict:
    return {"event": "log", "step": step, "values": {
        "reward": reward, "reward_std": 0.2, "rewards/tool_name/mean": reward - 1, "rewards/tool_name/std": 0.3,
        "rewards/format/mean": 1.0, "rewards/format/std": 0.0, "kl": 0.01 * step, "completions/mean_length": 40.0,
        "episodes/tool_calls_mean": 0.5, "episodes/iteration_limit_share": 0.25, "episodes/tool_error_share": 0.0,
        "loss": 0.1}}
