"""Rollouts back into curation: storing a GRPO run's episodes as draft trajectories of its project,
listing them, and the one-click preference pair of a high- and a low-reward episode of one prompt.

The worker's tail (``training.jobs.RunMonitor``) calls ``store_rollouts`` for each ``rollouts``
event. Each episode's trajectory is named by ``rollout-<job>-<step>-<line>`` (``external_id``), so a
re-read of the same file after a worker restart stores nothing twice. Callers check roles.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.db.models import Q

from annotate.ingest.writer import merge_tool_catalog, write_trajectories
from annotate.models import Trajectory
from annotate.pairs.core import PairError
from annotate.pairs.models import Pair
from annotate.pairs.services import save_pair
from training.models import TrainingJob
from training.runner import checkpoint_step
from training.rollouts.episodes import SOURCE, Episode, RolloutError, external_id, pair_from_rollouts, read_episodes
from training.rollouts.episodes import rollouts_file

MAX_FILE_BYTES = 64 * 1024 * 1024  # one step's sample of episodes; a bigger file is refused, not read


def store_rollouts(job: TrainingJob, run_dir: str | Path, event: dict) -> int:
    """Store the episodes of the file a ``rollouts`` event names; return how many were new.

    ``RolloutError`` (naming the file, line and field) when the path leads outside the run folder
    or the file cannot be read; nothing of a bad file is stored.
    """
    path = rollouts_file(run_dir, event)
    rel = str(event.get("path"))
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RolloutError(f"{rel} is larger than {MAX_FILE_BYTES // 2**20} MiB", "path")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RolloutError(f"{rel} cannot be read: {e}", "path") from None
    episodes = read_episodes(text, rel)
    return store_episodes(job, episodes)


def store_episodes(job: TrainingJob, episodes: list[Episode]) -> int:
    ids = {external_id(job.pk, e): e for e in episodes}
    with transaction.atomic():
        known = set(Trajectory.objects.filter(project_id=job.project_id, source=SOURCE, external_id__in=list(ids))
                    .values_list("external_id", flat=True))
        new = []
        for ident, episode in ids.items():
            if ident in known:
                continue
            traj = episode.trajectory
            traj.meta.source = SOURCE
            traj.meta.external_id = ident
            traj.meta.split = "train"
            traj.meta.tags = ["rollout", f"run-{job.pk}", f"step-{episode.step}"]
            traj.meta.extra = {**traj.meta.extra, **episode.meta_extra(job.pk)}
            new.append(traj)
        if new:
            merge_tool_catalog(job.project, new)
            write_trajectories(job.project, new)
    return len(new)


def run_chain(job: TrainingJob, most: int = 50) -> list[tuple[int, int | None]]:
    """``job`` and the runs it was resumed from, newest first, each with the last step of it that
    counts (None: all): a resumed run's page shows the rollouts of the steps before its checkpoint
    too, as its charts do, but not the steps the cancelled run took after it (the resumed run
    played those again)."""
    chain, row = [(job.pk, None)], job
    while row.resumed_from_id is not None and len(chain) < most:
        upto = checkpoint_step(row.resume_checkpoint)
        row = TrainingJob.objects.filter(pk=row.resumed_from_id).only("id", "resumed_from_id", "resume_checkpoint").first()
        if row is None or any(pk == row.pk for pk, _ in chain):
            break
        limit = chain[-1][1]
        chain.append((row.pk, upto if limit is None else min(upto, limit)))
    return chain


def rollout_rows(job: TrainingJob):
    """The stored rollouts of the job and of the runs it was resumed from (a queryset)."""
    named = Q()
    for pk, upto in run_chain(job):
        mine = Q(external_id__startswith=f"rollout-{pk}-")
        named |= mine if upto is None else mine & Q(extra__step__lte=upto)
    return (Trajectory.objects.filter(named, project_id=job.project_id, source=SOURCE)
            .only("id", "title", "status", "external_id", "extra", "assignee_id", "version"))


def _step_line(row: Trajectory) -> tuple[int, int]:
    parts = row.external_id.split("-")
    return (int(parts[2]), int(parts[3])) if len(parts) == 4 and parts[2].isdigit() and parts[3].isdigit() else (0, 0)


@dataclass
class PromptGroup:
    """The episodes of one prompt at one step, best first; ``best`` and ``worst`` make the pair."""

    step: int
    prompt_id: str
    rollouts: list[Trajectory]

    @property
    def best(self) -> Trajectory:
        return self.rollouts[0]

    @property
    def worst(self) -> Trajectory:
        return self.rollouts[-1]

    @property
    def can_pair(self) -> bool:
        return len(self.rollouts) > 1 and reward_of(self.best) > reward_of(self.worst)


def reward_of(row: Trajectory) -> float:
    return float((row.extra or {}).get("total_reward") or 0.0)


def rollouts_by_step(job: TrainingJob, *, last_steps: int | None = None) -> list[tuple[int, list[PromptGroup]]]:
    """``[(step, [PromptGroup])]``, newest step first (only the newest ``last_steps`` steps if given)."""
    rows = rollout_rows(job)
    if last_steps:  # (polled every 2 s: read the newest steps' rows only, not a long run's thousands)
        newest = sorted({s for s in rows.values_list("extra__step", flat=True) if isinstance(s, int)},
                        reverse=True)[:last_steps]
        rows = rows.filter(extra__step__in=newest)
    grouped: dict[int, dict[str, list[Trajectory]]] = defaultdict(lambda: defaultdict(list))
    for row in sorted(rows, key=_step_line):
        extra = row.extra or {}
        grouped[int(extra.get("step", _step_line(row)[0]))][str(extra.get("prompt_id", ""))].append(row)
    steps = sorted(grouped, reverse=True)[:last_steps] if last_steps else sorted(grouped, reverse=True)
    return [(step, [PromptGroup(step, prompt, sorted(rows, key=reward_of, reverse=True))
                    for prompt, rows in grouped[step].items()]) for step in steps]


def make_rollout_pair(job: TrainingJob, first_id: int, second_id: int, *, user) -> tuple[Pair, bool]:
    """A draft preference pair of two rollouts of ``job`` with the same prompt: the higher total
    reward chosen. Returns ``(pair, created)``; the same two rollouts give the same pair again.
    ``PairError`` (field ``rollouts``) when they are not two rollouts of one prompt of this job
    with different rewards, or the pair is not acceptable."""
    if first_id == second_id:
        raise PairError("choose two different rollouts", "rollouts")
    rows = {r.pk: r for r in rollout_rows(job).filter(pk__in=[first_id, second_id])}
    missing = [i for i in (first_id, second_id) if i not in rows]
    if missing:
        raise PairError(f"no rollout {missing[0]} in run {job.pk}", "rollouts")
    a, b = rows[first_id], rows[second_id]
    if str(a.extra.get("prompt_id")) != str(b.extra.get("prompt_id")):
        raise PairError(f"rollouts {a.pk} and {b.pk} answer different prompts "
                        f"({a.extra.get('prompt_id')} and {b.extra.get('prompt_id')})", "rollouts")
    high, low = (a, b) if reward_of(a) >= reward_of(b) else (b, a)
    note = (f"From GRPO run #{job.pk}, prompt {a.extra.get('prompt_id')}: rollout {high.pk} (step "
            f"{high.extra.get('step')}, reward {reward_of(high):g}) over rollout {low.pk} (step "
            f"{low.extra.get('step')}, reward {reward_of(low):g})")
    pair = pair_from_rollouts(high.to_canonical(), reward_of(high), low.to_canonical(), reward_of(low), note=note,
                              external=f"{high.external_id}|{low.external_id}")
    with transaction.atomic():
        existing = Pair.objects.filter(project_id=job.project_id, content_key=pair.content_key()).first()
        if existing is not None:
            return existing, False
        return save_pair(job.project, pair, user=user, trajectory=high), True
