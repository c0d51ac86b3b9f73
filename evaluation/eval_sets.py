"""Eval sets: the items of a prompt snapshot's split, of the project's trajectories matching filters,
or of an uploaded file of questions with candidate answers, frozen into ``EvalSet`` rows.

Every function takes the acting user and leaves the permission check to its caller.
"""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.db.models import F

from core import strict_json
from core.errors import InputError
from annotate.formats import when2call
from annotate.models import Revision, documents_of
from annotate.pairs import PairError
from annotate.permissions import author_of
from annotate.trajectory import Trajectory
from evaluation import multiturn_jobs
from evaluation.environments.base import EnvironmentRefused
from evaluation.items import EvalItem, case_types_of, items_from_prompt_rows, rows_from_candidates, rows_from_trajectory
from evaluation.models import EvalSet, EvalSetItem
from evaluation.multiturn import MultiTurnItem, environment_of
from training.chat_templates import TemplateError, get_template
from jobs.rows import JobStatus
from training.models import Snapshot
from training.roots import allowed_roots

MAX_UPLOAD_ITEMS = 100_000
SPLITS = ("eval", "test", "train")  # the files a snapshot may hold


class EvalSetError(InputError):
    """An eval set that cannot be made; ``field`` names the form field."""


def _template_for(project):
    """The message shapes of the project's target template (TRL's qwen3 where it cannot be read)."""
    try:
        return get_template(project.target_template or "qwen3", roots=allowed_roots())
    except (TemplateError, OSError, ValueError):
        return get_template("qwen3")


def items_from_snapshot(snapshot: Snapshot, split: str) -> list[EvalItem]:
    if snapshot.kind != "prompt":
        raise EvalSetError(f"{snapshot} is a {snapshot.get_kind_display()} snapshot; choose a prompt snapshot "
                           f"(decision points with their gold continuation)", "snapshot")
    if snapshot.status != JobStatus.SUCCEEDED:
        raise EvalSetError(f"{snapshot} is {snapshot.get_status_display().lower()}; choose a finished one", "snapshot")
    if split not in SPLITS:  # also keeps the path inside the snapshot folder
        raise EvalSetError(f"choose one of: {', '.join(SPLITS)}", "split")
    path = Path(snapshot.out_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise EvalSetError(f"{snapshot} has no {split} split", "split")
    with open(path, encoding="utf-8") as fh:
        return items_from_prompt_rows(strict_json.loads(line) for line in fh if line.strip())


TRAJECTORY_FILTERS = ("split", "source", "tag", "case_type", "status")


def items_from_trajectories(project, filters: dict) -> list[EvalItem]:
    """Decision points of the project's trajectories matching ``filters`` (their current revisions):
    ``TRAJECTORY_FILTERS``, and ``ids``, a list of trajectory ids."""
    f = {k: str(filters.get(k) or "").strip() for k in TRAJECTORY_FILTERS}
    qs = project.trajectories.all()
    if filters.get("ids"):  # (the API checked them: a list of ids)
        qs = qs.filter(pk__in=filters["ids"])
    if f["split"]:
        qs = qs.filter(split=f["split"])
    if f["source"]:
        qs = qs.filter(source=f["source"])
    if f["status"]:
        qs = qs.filter(status=f["status"])
    if f["case_type"]:
        qs = qs.with_case_type(f["case_type"])
    rows = list(qs.order_by("id").values_list("id", "version", "tags"))
    if f["tag"]:
        rows = [r for r in rows if f["tag"] in (r[2] or [])]
    if not rows:
        raise EvalSetError("no trajectory matches these filters", "filters")

    docs = {}
    for start in range(0, len(rows), 500):
        chunk = rows[start:start + 500]
        wanted = {(tid, v) for tid, v, _ in chunk}
        # Only the current revisions (not every old version's document).
        for tid, v, doc in Revision.objects.filter(trajectory_id__in=[t for t, _ in wanted],
                                                   version=F("trajectory__version")).values_list(
                "trajectory_id", "version", "document"):
            if (tid, v) in wanted:
                docs[tid] = doc
    # A trajectory without a revision at its version (an import that has not changed yet) is read
    # from its rows.
    from_rows = documents_of([tid for tid, _, _ in rows if tid not in docs])
    template = _template_for(project)
    out_rows = []
    played: dict[int, MultiTurnItem] = {}  # position in ``rows`` -> its multi-turn item
    for n, (tid, version, _) in enumerate(rows):
        doc = Trajectory.from_dict(docs[tid]) if tid in docs else from_rows[tid]
        if environment_of(doc) is not None:  # played against its environment, turn by turn
            try:
                played[n] = multiturn_jobs.multi_turn_item(doc, f"t{tid}v{version}", template, tid)
            except EnvironmentRefused as exc:
                raise EvalSetError(exc.message, "filters") from None
        else:
            out_rows.extend(rows_from_trajectory(doc, f"t{tid}v{version}", template))
    items: list = items_from_prompt_rows(out_rows)
    return items + [played[n] for n in sorted(played)]


def read_records(data: bytes, filename: str) -> list:
    """Records of an uploaded JSON (a list) or JSON Lines file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EvalSetError("the file is not UTF-8 text", "file") from None
    stripped = text.strip()
    if not stripped:
        raise EvalSetError("the file is empty", "file")
    if stripped.startswith("["):
        try:
            value = strict_json.loads(stripped)
        except ValueError as e:
            raise EvalSetError(f"not valid JSON: {e}", "file") from None
        return value
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(strict_json.loads(line))
            except ValueError as e:
                raise EvalSetError(f"{filename} line {n}: not valid JSON ({e.msg})", "file") from None
    return records


def items_from_candidates(data: bytes, filename: str, project=None) -> list[EvalItem]:
    """Items from questions with candidate answers and the correct one marked (``annotate.pairs``'
    candidates shape, or When2Call's test questions): the correct candidate is the gold."""
    records = read_records(data, filename)
    if len(records) > MAX_UPLOAD_ITEMS:
        raise EvalSetError(f"{len(records)} records; at most {MAX_UPLOAD_ITEMS} per file", "file")
    template = _template_for(project) if project is not None else None
    rows = []
    for n, record in enumerate(records, 1):
        ident = str(record.get("id") or f"q{n}") if isinstance(record, dict) else f"q{n}"
        try:
            if isinstance(record, dict) and "candidates" not in record and when2call.is_mcq(record):
                record = when2call.mcq_candidates(record)
                ident = record["id"] or ident
            rows.extend(rows_from_candidates(record, ident, template))
        except (PairError, ValueError) as e:
            where = getattr(e, "field", "")
            where = f" {where}" if where else ""
            raise EvalSetError(f"record {n}{where}: {getattr(e, 'message', e)}", "file") from None
    return items_from_prompt_rows(rows)


def create_eval_set(project, source: str, *, name: str = "", user=None, snapshot: Snapshot | None = None,
                    split: str = "eval", filters: dict | None = None,
                    upload: tuple[bytes, str] | None = None) -> EvalSet:
    """Freeze the items of a source into a new eval set (``EvalSetError`` naming the field otherwise)."""
    filters = dict(filters or {})
    if source == EvalSet.SNAPSHOT:
        if snapshot is None:
            raise EvalSetError("choose a prompt snapshot", "snapshot")
        if snapshot.project_id != project.pk:
            raise EvalSetError("that snapshot belongs to another project", "snapshot")
        items = items_from_snapshot(snapshot, split or "eval")
        default_name = f"{snapshot} · {split}"
    elif source == EvalSet.TRAJECTORIES:
        items = items_from_trajectories(project, filters)
        shown = ", ".join(f"{k} {v}" for k, v in filters.items() if v) or "all trajectories"
        default_name = f"Trajectories · {shown}"
    elif source == EvalSet.CANDIDATES:
        if upload is None:
            raise EvalSetError("choose a file", "file")
        items = items_from_candidates(upload[0], upload[1], project)
        filters = {"file": upload[1]}
        default_name = f"Candidates · {upload[1]}"
    else:
        raise EvalSetError(f"unknown source {source!r}", "source")
    if not items:
        raise EvalSetError("the source holds no decision point to evaluate", "source")
    known = set(project.trajectories.filter(pk__in={i.trajectory_id for i in items if i.trajectory_id})
                .values_list("pk", flat=True))
    with transaction.atomic():
        es = EvalSet.objects.create(project=project, name=(name.strip() or default_name)[:200], source=source,
                                    snapshot=snapshot if source == EvalSet.SNAPSHOT else None,
                                    split=split if source == EvalSet.SNAPSHOT else "", filters=filters,
                                    item_count=len(items), case_type_counts=case_types_of(items),
                                    created_by=author_of(user))
        EvalSetItem.objects.bulk_create([
            EvalSetItem(eval_set=es, position=i, item_id=it.id[:400], document=it.to_dict(),
                        trajectory_id=it.trajectory_id if it.trajectory_id in known else None)
            for i, it in enumerate(items)], batch_size=1000)
    return es
