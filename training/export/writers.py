"""The files of an exported snapshot (pure; no Django): columns, JSONL lines, Arrow batches, and
``write_files``, which writes ``{split}.jsonl``, ``parquet/``, ``hf/``, ``snapshot.json``,
``audit.json``, ``chat_template.jinja`` and the dataset card.

Messages and tool schemas are stored as ``datasets.Json()`` values (one JSON text per message /
tool), never as Arrow structs: a struct column gives every row the union of all rows' keys, so a
tool call's arguments would gain ``null`` keys and render differently. Deterministic: no
timestamps, stable key order, fixed Parquet options. datasets and pyarrow load inside the
functions that need them: the web process imports this package and must not pay for them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from training.export.card import dataset_card
from training.export.settings import SPLIT_ORDER, ExportSettings, RenderContext

_JSON_COLUMNS = ("messages", "prompt", "completion", "chosen", "rejected", "tools")


def item_columns(settings: ExportSettings, rows: list[dict]) -> list[str]:
    """The columns of the files. ``sft`` rows are TRL's conversational ``messages``, or
    ``prompt`` / ``completion`` when the splitter chose one sample per turn."""
    if settings.kind == "dpo":
        return ["id", "prompt", "chosen", "rejected", "tools"]
    if settings.kind == "prompt":
        return ["id", "prompt", "tools", "reference", "case_types"]
    cols = ["id", "prompt", "completion", "tools"] if rows and "prompt" in rows[0] else ["id", "messages", "tools"]
    if settings.tokenized:
        cols += ["input_ids", "labels", "assistant_masks"]
    return cols


def snapshot_columns(settings: ExportSettings, results: list[dict]) -> list[str]:
    """The one column layout of a snapshot's items (the splitter decides per template, so one per snapshot)."""
    layouts = {tuple(r["columns"]) for r in results if r.get("columns")}
    if len(layouts) > 1:
        raise ValueError(f"items rendered to different column layouts: {sorted(layouts)}")
    return list(layouts.pop()) if layouts else item_columns(settings, [])


def json_columns(cols: list[str]) -> list[str]:
    return [c for c in cols if c in _JSON_COLUMNS]


def features(cols: list[str]):
    """The ``datasets.Features`` of the rows: a JSON value per message / tool, never a struct."""
    from datasets import Features, Json, List, Value  # heavy: loaded where needed (see the module docstring)

    f: dict[str, Any] = {"id": Value("string"), "reference": Value("string"), "case_types": List(Value("string")),
                         "input_ids": List(Value("int32")), "labels": List(Value("int32")),
                         "assistant_masks": List(Value("int8"))}
    return Features({c: List(Json()) if c in _JSON_COLUMNS else f[c] for c in cols})


def jsonl_text(rows: list[dict], cols: list[str]) -> str:
    return "".join(json.dumps({c: row.get(c) for c in cols}, ensure_ascii=False) + "\n" for row in rows)


@lru_cache(maxsize=16)
def _schema(cols: tuple[str, ...]):
    return features(list(cols)).arrow_schema


def arrow_batch(rows: list[dict], cols: list[str]) -> bytes:
    """The rows as one serialised Arrow record batch (schema: ``features(cols)``).

    JSON values are encoded with ``json`` here (exact floats, key order kept) and stored as JSON
    text: ``datasets`` decodes them back to objects when TRL reads a row.
    """
    return record_batch(rows, cols).serialize().to_pybytes()


def record_batch(rows: list[dict], cols: list[str]):
    import pyarrow as pa  # heavy: loaded where needed (see the module docstring)

    schema = _schema(tuple(cols))
    arrays = []
    for c, field_ in zip(cols, schema):
        values = [row.get(c) for row in rows]
        if c in _JSON_COLUMNS:
            offsets, flat = [0], []
            for v in values:
                flat.extend(json.dumps(x, ensure_ascii=False) for x in v or [])
                offsets.append(len(flat))
            storage = pa.ExtensionArray.from_storage(field_.type.value_type, pa.array(flat, type=pa.string()))
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), storage))
        else:
            arrays.append(pa.array(values, type=field_.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_files(out_dir: Path, by_split: dict[str, list[dict]], cols: list[str], ctx: RenderContext, audit: dict,
                snapshot_meta: dict) -> None:
    """Write every file of the snapshot into ``out_dir`` (replacing what an earlier export left there).

    ``by_split`` holds each split's cache entries in row order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("hf", "parquet"):
        if (out_dir / stale).exists():
            shutil.rmtree(out_dir / stale)
    for old in out_dir.glob("*.jsonl"):
        old.unlink()
    splits = [s for s in SPLIT_ORDER if any(e["result"]["n_rows"] for e in by_split.get(s, []))] or ["train"]
    for s in splits:
        with open(out_dir / f"{s}.jsonl", "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(e["jsonl"] for e in by_split.get(s, []))
    _write_datasets(out_dir, {s: by_split.get(s, []) for s in splits}, cols)
    counts = {s: sum(e["result"]["n_rows"] for e in by_split.get(s, [])) for s in splits}
    meta = {"kind": ctx.settings.kind, **snapshot_meta, "settings": ctx.settings.to_dict(),
            "template": ctx.template.traits(), "render_settings_key": ctx.cache_key, "columns": cols,
            "splits": counts}
    _write_json(out_dir / "snapshot.json", meta)
    _write_json(out_dir / "audit.json", audit)
    (out_dir / "chat_template.jinja").write_text(ctx.template.text, encoding="utf-8")
    (out_dir / "README.md").write_text(dataset_card(meta, audit), encoding="utf-8")


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_datasets(out_dir: Path, by_split: dict[str, list[dict]], cols: list[str]) -> None:
    import datasets  # heavy: loaded where needed (see the module docstring)
    import pyarrow as pa
    import pyarrow.parquet as pq

    datasets.disable_progress_bars()
    feats = features(cols)
    schema = feats.arrow_schema
    dd = datasets.DatasetDict()
    for s, entries in by_split.items():
        batches = [pa.ipc.read_record_batch(pa.py_buffer(e["arrow"]), schema) for e in entries if e["arrow"]]
        table = pa.Table.from_batches(batches or [record_batch([], cols)], schema=schema).combine_chunks()
        # The fingerprint datasets would compute pickles the whole table; the rows' own bytes say the same.
        digest = hashlib.sha256(json.dumps(cols).encode())
        for e in entries:
            digest.update(e["arrow"])
        dd[s] = datasets.Dataset(table, info=datasets.DatasetInfo(features=feats), fingerprint=digest.hexdigest()[:16])
    dd.save_to_disk(str(out_dir / "hf"))
    (out_dir / "parquet").mkdir()
    for s, ds in dd.items():
        pq.write_table(ds.data.table, out_dir / "parquet" / f"{s}.parquet", compression="zstd",
                       write_statistics=False)


def directory_digest(out_dir: Path) -> dict[str, str]:
    """sha256 of every file under ``out_dir`` (relative path -> hex): how tests prove byte-identity."""
    out = {}
    for p in sorted(Path(out_dir).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(out_dir))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
