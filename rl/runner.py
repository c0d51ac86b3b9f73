"""Train one GRPO job with TRL and executable tools: ``python -m rl.runner JOB.json`` (pure; no Django).

Read top to bottom:

1. ``GRPOSettings`` / ``GRPORunConfig``: what the launch form chose, written by the worker as ``job.json``.
2. ``grpo_kwargs``: the exact ``GRPOConfig`` arguments (pure; the form's preview shows the same).
3. ``rl.environments.SandboxedEnvironment`` (``sandboxed_class``): TRL's ``environment_factory``.
   TRL lists its tools from the class and calls them in the training process; each call goes to
   the episode's child process (``evaluation.environments.sandbox.Episode``, with its limits), so
   tool execution and the masking of tool results stay TRL's while the environment's code never
   runs in the trainer.
4. ``EpisodeRecorder``: the reward functions (``evaluation.rewards``, plus the environment's own
   ``get_reward``), wrapped to remember each episode's rewards; every ``rollout_every`` steps the
   episodes of that step go to ``rollouts/step-NNNNNN.jsonl`` and a ``rollouts`` event to
   ``metrics.jsonl``; every log gains ``episodes/*`` figures.
5. ``main``: load the prompt snapshot and the model, train (resuming when asked), save, model card.

Nothing heavy at import time: the web process imports this module for validation and the preview.

It is the one GRPO script, read top to bottom; its environment processes live in ``rl.environments``,
the environments, sandbox and rewards it drives in ``evaluation``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from annotate.formats.messages import to_trajectory
from annotate.trajectory import Trajectory
from evaluation import rewards as reward_module
from evaluation.environments.sandbox import Limits
from evaluation.environments.spec import KINDS as ENVIRONMENT_KINDS
from jobs.runner_io import EventLog, JobFile, resolve_device, run_main
from rl.environments import (
    close_all, cpu_seconds, environment_label, environment_rewards, environment_tools, prestart, sandboxed_class,
)
from training.runner import (
    CARD_FILE, CHECKPOINTS_DIR, DEVICES, FINAL_DIR, METRICS_FILE, checkpoint_step, latest_checkpoint,  # noqa: F401
    library_versions, typed_value,
)

KIND = "grpo"
ROLLOUTS_DIR = "rollouts"
START_DIR = "start-model"  # a LoRA start's adapter merged into its base model
# The environment classes every deployment may use without registering them (the demo's tools).
BUILTIN_ENVIRONMENTS = ("rl.demo_environment.TravelTools",)
ENVIRONMENT_REWARD = "environment"  # the reward weight of the environment's own get_reward()
REWARD_FUNCTIONS: dict[str, Callable] = {
    f.__name__: f for f in (*reward_module.REWARD_FUNCS, reward_module.toolrl_correctness_reward)}
REWARD_NAMES = (*REWARD_FUNCTIONS, ENVIRONMENT_REWARD)
DEFAULT_REWARDS = {"format_reward": 1.0, "tool_name_reward": 1.0, "argument_value_reward": 1.0,
                   "tool_call_count_reward": 0.5, ENVIRONMENT_REWARD: 0.5}


@dataclass
class GRPOSettings:
    """What a lead chooses on the GRPO launch form (also ``manage.py train --kind grpo --config FILE``)."""

    environment: dict = field(default_factory=lambda: {"kind": "python", "class": BUILTIN_ENVIRONMENTS[0]})
    rewards: dict = field(default_factory=lambda: dict(DEFAULT_REWARDS))  # reward function name -> weight
    num_generations: int = 4  # the group: completions per prompt, compared with each other
    prompts_per_step: int = 2  # a step's batch is prompts_per_step × num_generations episodes
    max_tool_calling_iterations: int = 3
    max_completion_length: int = 128
    temperature: float = 1.0
    beta: float = 0.04  # KL penalty against the reference model (0: no reference model, no KL)
    learning_rate: float = 1e-6
    max_steps: int = 20
    rollout_every: int = 5  # write the episodes of every Nth step to rollouts/
    save_steps: int = 10
    logging_steps: int = 1
    seed: int = 42
    device: str = "auto"
    limits: dict = field(default_factory=dict)  # evaluation.environments.sandbox.Limits overrides
    # A finished LoRA run's adapter folder: merged into the base model before GRPO trains it in full.
    start_adapter: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GRPOSettings:
        """Settings from JSON; unknown keys and wrong types are errors (``ValueError``).

        >>> GRPOSettings.from_dict({"max_steps": 12}).max_steps
        12
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        base = dataclasses.asdict(cls())
        for key, value in data.items():
            base[key] = typed_value(key, value, type(base[key]))
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def settings_errors(s: GRPOSettings, allowed_classes: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Every problem with ``s``, by field (empty: it can run).

    >>> sorted(settings_errors(GRPOSettings(num_generations=1, temperature=0, rewards={})))
    ['num_generations', 'rewards', 'temperature']
    """
    errors: dict[str, str] = {}

    def check(name: str, ok: bool, message: str) -> None:
        if not ok and name not in errors:
            errors[name] = message

    env = s.environment or {}
    kind = env.get("kind")
    check("environment", kind in ENVIRONMENT_KINDS, f"Choose an environment kind: {', '.join(ENVIRONMENT_KINDS)}.")
    if kind == "python":
        known = [*BUILTIN_ENVIRONMENTS, *allowed_classes]
        check("environment", env.get("class") in known,
              f"{env.get('class')!r} is not a registered environment class; registered: {', '.join(known)}.")
    if kind == "bfcl":
        check("environment", bool(env.get("classes")), "Name at least one BFCL class (e.g. MathAPI).")
    unknown = sorted(set(s.rewards) - set(REWARD_NAMES))
    check("rewards", not unknown, f"Unknown reward function(s): {', '.join(unknown)}; known: {', '.join(REWARD_NAMES)}.")
    weights = [w for w in s.rewards.values() if isinstance(w, (int, float)) and not isinstance(w, bool)]
    check("rewards", len(weights) == len(s.rewards), "Every reward weight must be a number.")
    check("rewards", any(w != 0 for w in weights), "Give at least one reward function a weight other than 0.")
    check("num_generations", 2 <= s.num_generations <= 64,
          "A group needs 2 to 64 generations per prompt (GRPO compares them with each other).")
    check("prompts_per_step", 1 <= s.prompts_per_step <= 256, "Must be between 1 and 256.")
    check("max_tool_calling_iterations", 0 <= s.max_tool_calling_iterations <= 50, "Must be between 0 and 50.")
    check("max_completion_length", 8 <= s.max_completion_length <= 32768, "Must be between 8 and 32,768 tokens.")
    check("temperature", 0 < s.temperature <= 5, "Must be above 0 and at most 5 (the group needs varied samples).")
    check("beta", 0 <= s.beta <= 10, "Beta must be in [0, 10] (0: no KL penalty).")
    check("learning_rate", 0 < s.learning_rate < 1, "Must be above 0 and below 1 (typical: 1e-6).")
    check("max_steps", 1 <= s.max_steps <= 1_000_000, "Give a number of steps, 1 or more.")
    check("rollout_every", s.rollout_every >= 1, "Write rollouts every 1 step or more.")
    check("save_steps", s.save_steps >= 1, "Save a checkpoint every 1 step or more.")
    check("logging_steps", s.logging_steps >= 1, "Log every 1 step or more.")
    check("seed", 0 <= s.seed < 2**32, "Seed must be between 0 and 4294967295.")
    check("device", s.device in DEVICES, f"Choose one of: {', '.join(DEVICES)}.")
    try:
        Limits.from_dict(s.limits)
    except (TypeError, ValueError) as exc:
        check("limits", False, f"Bad environment limits: {exc}.")
    return errors


@dataclass
class GRPORunConfig(JobFile):
    """Everything one GRPO run needs: written by the worker as ``job.json`` in the run folder."""

    model: str
    dataset_dir: str  # the prompt snapshot's hf/ folder
    output_dir: str
    settings: GRPOSettings = field(default_factory=GRPOSettings)
    kind: str = KIND
    job_id: int | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)
    resume_from: str = ""
    chat_template_file: str = ""
    app_commit: str = "unknown"
    trust_remote_code: bool = False
    allowed_classes: list[str] = field(default_factory=list)  # STUDIO_ENVIRONMENT_CLASSES, as the worker read them

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GRPORunConfig:
        data = dict(data)
        data["settings"] = GRPOSettings.from_dict(data.get("settings", {}))
        return cls(**data)


def grpo_kwargs(cfg: GRPORunConfig, device: str) -> dict[str, Any]:
    """The exact keyword arguments of ``GRPOConfig`` for ``cfg`` on ``device`` (CPU: fp32, no
    gradient checkpointing, as for SFT; CUDA: bf16).

    >>> kw = grpo_kwargs(GRPORunConfig("m", "d", "/runs/1", GRPOSettings(max_steps=4)), "cpu")
    >>> kw["per_device_train_batch_size"], kw["num_generations"], kw["use_cpu"], kw["reward_weights"]
    (8, 4, True, [1.0, 1.0, 1.0, 0.5, 0.5])
    """
    s = cfg.settings
    kw: dict[str, Any] = {
        "output_dir": str(Path(cfg.output_dir) / CHECKPOINTS_DIR),
        "learning_rate": s.learning_rate,
        "max_steps": s.max_steps,
        "per_device_train_batch_size": s.prompts_per_step * s.num_generations,
        "num_generations": s.num_generations,
        "max_completion_length": s.max_completion_length,
        "max_tool_calling_iterations": s.max_tool_calling_iterations,
        "temperature": s.temperature,
        "beta": s.beta,
        "reward_weights": [float(w) for w in s.rewards.values()],
        "seed": s.seed,
        "data_seed": s.seed,
        "logging_steps": s.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": s.save_steps,
        "save_total_limit": 2,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    if device == "cpu":
        kw.update(use_cpu=True, bf16=False, gradient_checkpointing=False)
    else:
        kw.update(use_cpu=False, bf16=True)
    return kw


def grpo_call_text(cfg: GRPORunConfig, device: str) -> str:
    """The config as Python, for the preview and the model card."""
    args = grpo_kwargs(cfg, device)
    lines = ["GRPOConfig("] + [f"    {k}={v!r}," for k, v in args.items()] + [")"]
    lines += [f"GRPOTrainer(reward_funcs=[{', '.join(cfg.settings.rewards)}],",
              f"            environment_factory=<{environment_label(cfg.settings.environment)}, one child process an episode>)"]
    return "\n".join(lines)


def reward_versions(names) -> dict[str, str]:
    """A reward function's version: the first 12 hex digits of its source's sha256 (the card
    lists them, so two runs whose rewards changed in between can be told apart)."""
    out = {}
    for name in names:
        fn = REWARD_FUNCTIONS.get(name)
        source = inspect.getsource(fn) if fn else "get_reward() of the environment"
        out[name] = hashlib.sha256(source.encode()).hexdigest()[:12]
    return out


# --- what each episode earned ----------------------------------------------------------------------

def hit_iteration_limit(completion: list[dict], max_iterations: int) -> bool:
    """The episode still wanted tools when the trainer stopped running them.

    >>> call = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}
    >>> hit_iteration_limit([call, {"role": "tool", "content": "1"}, call], 1)
    True
    >>> hit_iteration_limit([call, {"role": "tool", "content": "1"}, {"role": "assistant", "content": "ok"}], 1)
    False
    """
    if not completion or not isinstance(completion[-1], dict):
        return False
    last = completion[-1]
    rounds = sum(1 for i, m in enumerate(completion[:-1]) if m.get("role") == "assistant" and m.get("tool_calls")
                 and completion[i + 1].get("role") == "tool")
    return last.get("role") == "assistant" and bool(last.get("tool_calls")) and rounds >= max_iterations


def episode_trajectory(prompt: list[dict], completion: Any, tools: list[dict], meta: dict) -> dict:
    """The episode as a canonical trajectory dict (``annotate.trajectory.Trajectory.from_dict``)."""
    messages = list(prompt) + (list(completion) if isinstance(completion, list) else
                               [{"role": "assistant", "content": str(completion)}])
    try:
        traj = to_trajectory({"messages": messages, "tools": tools})
    except Exception as exc:  # noqa: BLE001  (a completion the importer refuses: keep it as text, say why)
        user = next((m.get("content", "") for m in prompt if m.get("role") == "user"), "")
        traj = Trajectory.from_dict({"tools": tools, "turns": [{"user": str(user), "steps": [
            {"kind": "answer", "text": json.dumps(completion, default=str)[:20000]}]}]})
        meta = {**meta, "conversion_error": str(exc)[:500]}
    traj.meta.source = "rollout"
    traj.meta.extra.update(meta)
    return traj.to_dict()


class EpisodeRecorder:
    """Remembers each batch's episodes and their rewards (the wrapped reward functions report here)."""

    def __init__(self, weights: dict[str, float], max_iterations: int):
        self.weights = weights
        self.max_iterations = max_iterations
        self.batch: dict | None = None
        self.pending: list[dict] = []  # episodes since the last optimizer step
        self.since_log: list[dict] = []  # episodes since the last log

    def wrap(self, name: str, fn: Callable | None) -> Callable:
        def reward(prompts=None, completions=None, completion_ids=None, **kwargs):
            if fn is None:
                values = environment_rewards(kwargs.get("environments") or [])
            else:
                values = fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
            self._record(name, values, prompts, completions, kwargs)
            return values

        reward.__name__ = reward.__qualname__ = name
        return reward

    def _record(self, name: str, values: list, prompts: list, completions: list, kwargs: dict) -> None:
        if self.batch is None or self.batch["completions"] is not completions:
            self._close_batch()
            envs = kwargs.get("environments") or [None] * len(completions)
            self.batch = {"completions": completions, "prompts": prompts, "rewards": {}, "columns": kwargs,
                          "envs": [(e.tool_calls, e.tool_errors, e.failure) if e is not None else (0, 0, "")
                                   for e in envs]}
        self.batch["rewards"][name] = [float(v) if v is not None else 0.0 for v in values]

    def _close_batch(self) -> None:
        b, self.batch = self.batch, None
        if b is None:
            return
        cols = b["columns"]
        n = len(b["completions"])
        for i in range(n):
            rewards = {name: values[i] for name, values in b["rewards"].items()}
            completion = b["completions"][i]
            calls, errors, failure = b["envs"][i]
            self.pending.append({
                "prompt_id": str(_column(cols, "id", i, "")),
                "source_trajectory": source_trajectory(str(_column(cols, "id", i, ""))),
                "prompt": b["prompts"][i], "completion": completion, "tools": _column(cols, "tools", i, []) or [],
                "rewards": rewards,
                "total_reward": round(sum(self.weights.get(k, 1.0) * v for k, v in rewards.items()), 6),
                "hit_iteration_limit": hit_iteration_limit(completion, self.max_iterations)
                if isinstance(completion, list) else False,
                "tool_calls": calls, "tool_errors": errors, "environment_failure": failure,
            })

    def take_step(self) -> list[dict]:
        """The episodes generated for the step that just ended."""
        self._close_batch()
        out, self.pending = self.pending, []
        self.since_log.extend(out)
        return out

    def log_values(self) -> dict[str, float]:
        """``episodes/*`` over the episodes since the last log (empty when there were none)."""
        eps, self.since_log = self.since_log, []
        if not eps:
            return {}
        n = len(eps)
        return {"episodes/tool_calls_mean": sum(e["tool_calls"] for e in eps) / n,
                "episodes/iteration_limit_share": sum(e["hit_iteration_limit"] for e in eps) / n,
                "episodes/tool_error_share": sum(1 for e in eps if e["tool_errors"] or e["environment_failure"]) / n}


def _column(cols: dict, name: str, i: int, default: Any) -> Any:
    values = cols.get(name)
    return values[i] if isinstance(values, list) and i < len(values) else default


def source_trajectory(prompt_id: str) -> int | None:
    """The trajectory pk in a snapshot row id (``t<pk>v<version>#t<turn>s<step>``), else None.

    >>> source_trajectory("t42v3#t0s1"), source_trajectory("p1")
    (42, None)
    """
    m = re.match(r"t(\d+)v\d+", prompt_id)
    return int(m.group(1)) if m else None


def rollout_line(episode: dict, step: int, job_id: int | None) -> dict:
    meta = {"job": job_id, "step": step, "rewards": episode["rewards"], "total_reward": episode["total_reward"],
            "prompt_id": episode["prompt_id"]}
    return {"prompt_id": episode["prompt_id"], "source_trajectory": episode["source_trajectory"], "step": step,
            "trajectory": episode_trajectory(episode["prompt"], episode["completion"], episode["tools"], meta),
            "rewards": episode["rewards"], "total_reward": episode["total_reward"],
            "hit_iteration_limit": episode["hit_iteration_limit"], "tool_errors": episode["tool_errors"]}


def write_rollouts(run_dir: Path, step: int, episodes: list[dict], job_id: int | None) -> str:
    """``rollouts/step-NNNNNN.jsonl``, one episode a line; returns its path relative to the run folder."""
    rel = f"{ROLLOUTS_DIR}/step-{step:06d}.jsonl"
    path = run_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for ep in episodes:
            fh.write(json.dumps(rollout_line(ep, step, job_id), ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)  # whole or absent: the worker may read it as soon as the event is written
    return rel


# --- the training process -----------------------------------------------------------------------

def load_prompts(cfg: GRPORunConfig):
    import datasets  # heavy: only in the runner process

    datasets.disable_caching()
    dd = datasets.load_from_disk(cfg.dataset_dir)
    train = dd["train"] if isinstance(dd, datasets.DatasetDict) else dd
    if "reference" not in train.column_names:
        raise ValueError(f"{cfg.dataset_dir} has no 'reference' column: GRPO trains on a prompt snapshot")
    return train


def build_trainer(cfg: GRPORunConfig, device: str, events: EventLog, *, callbacks=None):
    """The ``GRPOTrainer`` of a run, and its episode recorder."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is experimental in TRL 1.16
    from transformers import AutoTokenizer  # heavy: only in the runner process
    from trl import GRPOConfig, GRPOTrainer

    s = cfg.settings
    train = load_prompts(cfg)
    limits = Limits.from_dict(s.limits)
    allowed = [*BUILTIN_ENVIRONMENTS, *cfg.allowed_classes]
    events.write("status", message=f"Reading the tools of {environment_label(s.environment)}")
    tools = environment_tools(s.environment, train[0], allowed, limits)
    env_class = sandboxed_class(s.environment, tools, allowed, limits)
    # One process per episode of a step (TRL keeps one environment per episode and reuses them),
    # started while the tokenizer and the model load.
    prestart(env_class, s.prompts_per_step * s.num_generations)
    recorder = EpisodeRecorder({k: float(v) for k, v in s.rewards.items()}, s.max_tool_calling_iterations)
    reward_funcs = [recorder.wrap(name, REWARD_FUNCTIONS.get(name)) for name in s.rewards]
    tokenizer = AutoTokenizer.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = cfg.model
    if s.start_adapter:  # a LoRA run's output: its base model with the adapter merged in
        from peft import PeftModel  # heavy: only in the runner process
        from transformers import AutoModelForCausalLM

        events.write("status", message=f"Merging the LoRA adapter {s.start_adapter} into {cfg.model}")
        base = AutoModelForCausalLM.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
        merged = PeftModel.from_pretrained(base, s.start_adapter).merge_and_unload()
        # Saved, then loaded by path like any model: TRL loads the KL reference model from the same
        # path, so the reference is the merged start, not the bare base model.
        model = str(cfg.run_dir / START_DIR)
        merged.save_pretrained(model)
        tokenizer.save_pretrained(model)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=GRPOConfig(**grpo_kwargs(cfg, device)),
                          train_dataset=train, processing_class=tokenizer, environment_factory=env_class,
                          callbacks=callbacks)
    return trainer, recorder


def app_callbacks(cfg: GRPORunConfig, events: EventLog, recorder_box: list):
    """Our callbacks: episodes and rollouts first (they add to each log), then the metrics file."""
    from transformers import TrainerCallback  # heavy: only in the runner process

    from training.callbacks import MetricsCallback, StepDelayCallback

    class EpisodeCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            episodes = recorder_box[0].take_step()
            step = state.global_step
            if episodes and step % cfg.settings.rollout_every == 0 and state.is_world_process_zero:
                rel = write_rollouts(cfg.run_dir, step, episodes, cfg.job_id)
                events.write("rollouts", step=step, path=rel, count=len(episodes))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is not None and "loss" in logs:
                logs.update(recorder_box[0].log_values())

    out = [EpisodeCallback(), MetricsCallback(events)]
    if delay := float(os.environ.get("STUDIO_TRAIN_STEP_DELAY", "0") or 0):
        out.append(StepDelayCallback(delay))  # the cancel / resume tests' seam, as in training.runner
    return out


def model_card(cfg: GRPORunConfig, *, device: str, versions: dict[str, str], results: dict[str, Any]) -> str:
    s, snap = cfg.settings, cfg.snapshot
    versions_of = reward_versions(s.rewards)
    lines = ["---", f"base_model: {cfg.model}", "library_name: transformers", "tags:", "- trl", "- grpo",
             "- tool-calling", "- trajectory-studio", "---", "",
             f"# GRPO model of {cfg.model}", "",
             f"Trained by Trajectory Studio (job {cfg.job_id}) with TRL GRPO and executable tools on prompt snapshot "
             f"**{snap.get('name') or snap.get('id', '?')}** (content hash `{snap.get('content_hash') or 'unknown'}`).",
             "", "## Environment", "", f"- {environment_label(s.environment)}",
             f"- Limits per episode: `{json.dumps(Limits.from_dict(s.limits).to_dict(), sort_keys=True)}`",
             "", "## Rewards", "", "| reward function | weight | version |", "|---|---|---|"]
    lines += [f"| {name} | {weight} | `{versions_of[name]}` |" for name, weight in s.rewards.items()]
    lines += ["", "## Training", "", f"- Device: {device}"]
    if s.start_adapter:
        lines.append(f"- Started from the LoRA adapter `{s.start_adapter}` merged into the base model")
    if cfg.resume_from:
        lines.append(f"- Resumed from checkpoint: `{cfg.resume_from}`")
    lines += ["", "```json", json.dumps(s.to_dict(), indent=2, sort_keys=True), "```", "",
              "```python", grpo_call_text(cfg, device), "```", "", "## Results", ""]
    lines += [f"- {k}: {v}" for k, v in results.items()] or ["- (none recorded)"]
    lines += ["", "## Software", ""] + [f"- {k} {v}" for k, v in versions.items()]
    lines += [f"- Trajectory Studio commit `{cfg.app_commit}`", ""]
    return "\n".join(lines)


def train(cfg: GRPORunConfig, events: EventLog) -> dict[str, Any]:
    from training.runner import quiet_libraries

    quiet_libraries()
    device = resolve_device(cfg.settings.device)
    events.write("status", message=f"Loading {cfg.model} and the prompt snapshot on {device}")
    box: list = []
    trainer, recorder = build_trainer(cfg, device, events, callbacks=app_callbacks(cfg, events, box))
    box.append(recorder)
    from transformers.trainer_callback import PrinterCallback  # heavy: only in the runner process

    trainer.remove_callback(PrinterCallback)
    events.write("status", message="Training")
    cpu_start = cpu_seconds()
    output = trainer.train(resume_from_checkpoint=cfg.resume_from or None)
    close_all()  # the episodes' processes end here, so their CPU time is counted below
    train_cpu = cpu_seconds() - cpu_start
    final_dir = cfg.run_dir / FINAL_DIR
    events.write("status", message="Saving the final model")
    trainer.save_model(str(final_dir))
    results = {"global_step": trainer.state.global_step}
    for k in ("train_loss", "train_runtime", "train_steps_per_second"):
        if k in output.metrics:
            results[k] = output.metrics[k]
    if output.metrics.get("train_runtime"):
        steps = trainer.state.global_step - (checkpoint_step(cfg.resume_from) if cfg.resume_from else 0)
        results["steps_per_second"] = round(steps / output.metrics["train_runtime"], 4)
    results["train_cpu_seconds"] = round(train_cpu, 2)  # this process and the environments' (load-independent)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    if rewards:
        results["last_reward"] = rewards[-1]
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(final_dir))
        (final_dir / CARD_FILE).write_text(model_card(cfg, device=device, versions=library_versions(), results=results))
    close_all()
    return results


def main(argv: list[str] | None = None) -> int:
    return run_main(argv, module="rl.runner", load=GRPORunConfig.load, events_file=METRICS_FILE, work=train,
                    end=lambda cfg: {"final_dir": str(cfg.run_dir / FINAL_DIR)})


if __name__ == "__main__":
    sys.exit(main())
