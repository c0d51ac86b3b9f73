"""Trainer callbacks of the training subprocess: step metrics into ``metrics.jsonl``.

Why a file and not the database: the runner stays a plain script with no Django and no database
driver (it runs the same under ``manage.py train``, the benchmark, or torchrun on a GPU node);
the training loop never waits on a database lock (SQLite serialises writers, and a stalled
``on_log`` would show up as lost tokens/s); the worker that supervises the process is the only
writer of the job row, tailing this file into ``MetricPoint`` rows every second or so; and the
file stays in the run folder as a record of the run that survives the database.

One JSON object a line, each with ``event`` and ``time`` (Unix seconds):

- ``{"event": "begin", "step": 0, "max_steps": 8}``: training starts (step > 0 when resumed)
- ``{"event": "step", "step": 3, "max_steps": 8, "epoch": 0.75}``: after every optimizer step
- ``{"event": "log", "step": 3, "epoch": 0.75, "values": {"loss": 6.4, "tokens_per_second": 910.0, ...}}``
- ``{"event": "checkpoint", "step": 4, "path": ".../checkpoints/checkpoint-4"}``: a complete checkpoint
- ``{"event": "status", "message": "..."}``, ``{"event": "end", ...}``, ``{"event": "error", ...}``
  (written by ``training.runner``)
"""

from __future__ import annotations

import math
import time

from transformers import TrainerCallback

from training.runner import EventLog

# Cumulative speed figures the Trainer adds to every log; the interval tokens/s below replaces them.
_SKIPPED = {"train_runtime", "train_tokens_per_second", "train_samples_per_second", "train_steps_per_second",
            "total_flos"}


def clean_values(logs: dict) -> dict[str, float]:
    """The numeric, finite values of a Trainer log, without the cumulative speed figures.

    >>> clean_values({"loss": 1.5, "grad_norm": float("nan"), "train_runtime": 3.0, "note": "x"})
    {'loss': 1.5}
    """
    out = {}
    for key, value in logs.items():
        if key in _SKIPPED or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class MetricsCallback(TrainerCallback):
    """Write begin / step / log / checkpoint events; compute tokens/s per logging interval."""

    def __init__(self, events: EventLog):
        self.events = events
        self._last_time: float | None = None
        self._last_tokens = 0
        self.begin_tokens = 0  # tokens already seen when this session began (resumed runs)

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.time()
        self._last_tokens = self.begin_tokens = state.num_input_tokens_seen
        self.events.write("begin", step=state.global_step, max_steps=state.max_steps,
                          num_train_epochs=state.num_train_epochs)

    def on_step_end(self, args, state, control, **kwargs):
        self.events.write("step", step=state.global_step, max_steps=state.max_steps, epoch=state.epoch)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        values = clean_values(logs or {})
        now = time.time()
        is_train_log = "loss" in values
        if is_train_log and self._last_time is not None and now > self._last_time:
            tokens = state.num_input_tokens_seen - self._last_tokens
            if tokens > 0:
                values["tokens_per_second"] = tokens / (now - self._last_time)
            self._last_time, self._last_tokens = now, state.num_input_tokens_seen
        if values:
            self.events.write("log", step=state.global_step, epoch=state.epoch, values=values)
            shown = " ".join(f"{k}={v:.4g}" for k, v in values.items()
                             if k in ("loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second"))
            if shown:
                print(f"step {state.global_step}/{state.max_steps} {shown}", flush=True)

    def on_save(self, args, state, control, **kwargs):
        self.events.write("checkpoint", step=state.global_step,
                          path=f"{args.output_dir}/checkpoint-{state.global_step}")


class StepDelayCallback(TrainerCallback):
    """Sleep after each step (fault-injection tests only; see ``training.runner.build_trainer``)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(self.seconds)
