"""The export of one snapshot (pure; no Django): render every pinned item (or take it from the render
cache), then write the files. See the package docstring for what it writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from training.export.renderers import render_item, require_reference_builder
from training.export.report import aggregate_audit
from training.export.settings import ExportSettings, RenderContext
from training.export.writers import snapshot_columns, write_files


class RenderCache(Protocol):
    def get_many(self, keys: list[str]) -> dict[str, dict]: ...

    def put_many(self, results: dict[str, dict]) -> None: ...


class MemoryCache:
    """A render cache in a dict (tests, benchmarks, the CLI without a database)."""

    def __init__(self):
        self.entries: dict[str, dict] = {}

    def get_many(self, keys):
        return {k: self.entries[k] for k in keys if k in self.entries}

    def put_many(self, results):
        self.entries.update(results)


@dataclass(frozen=True)
class ExportItem:
    """One pinned item: its cache key (``r<revision id>`` / ``p<sha>``), the id its rows carry, its split."""

    key: str
    ident: str
    split: str = "train"


@dataclass
class ExportResult:
    out_dir: Path
    items: int
    samples: int
    rendered: int  # items rendered now (the rest came from the cache)
    audit: dict
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.audit["errors"]


Progress = Callable[[float, str], None]


def run_export(items: list[ExportItem], settings: ExportSettings, out_dir: Path, *,
               load_documents: Callable[[list[str]], dict[str, dict]], cache: RenderCache | None = None,
               cache_for: Callable[[str], RenderCache] | None = None, snapshot_meta: dict | None = None,
               on_progress: Progress | None = None, chunk: int = 200) -> ExportResult:
    """Render (or take from the cache) every item, then write the files. See the package docstring.

    ``load_documents(keys)`` returns the documents of the items the cache does not hold;
    ``cache_for(settings_hash)`` builds the cache once the settings hash is known (or pass ``cache``).
    ``on_progress(fraction, message)`` is called as the work advances.
    """
    progress = on_progress or (lambda f, m: None)
    out_dir = Path(out_dir)
    if settings.kind == "prompt":
        require_reference_builder()
    progress(0.0, "loading the tokenizer and template")
    ctx = RenderContext.build(settings)
    cache = cache if cache is not None else (cache_for(ctx.cache_key) if cache_for else MemoryCache())
    entries: dict[str, dict] = {}
    keys = list(dict.fromkeys(it.key for it in items))
    for start in range(0, len(keys), 2000):
        entries.update(cache.get_many(keys[start:start + 2000]))
    missing = [k for k in keys if k not in entries]
    idents = {it.key: it.ident for it in items}
    progress(0.02, f"{len(keys) - len(missing)} of {len(keys)} items cached; rendering {len(missing)}")
    for start in range(0, len(missing), chunk):
        batch = missing[start:start + chunk]
        docs = load_documents(batch)
        fresh = {k: render_item(docs[k], idents[k], ctx) for k in batch}
        cache.put_many(fresh)
        entries.update(fresh)
        done = start + len(batch)
        progress(0.02 + 0.83 * done / max(1, len(missing)), f"rendered {done} of {len(missing)} items")
    results = [entries[k]["result"] for k in keys]
    rows = sum(r["n_rows"] for r in results)
    progress(0.85, f"writing {rows} rows")
    by_split: dict[str, list[dict]] = {}
    for it in items:
        by_split.setdefault(it.split, []).append(entries[it.key])
    audit = aggregate_audit(results, settings)
    write_files(out_dir, by_split, snapshot_columns(settings, results), ctx, audit, snapshot_meta or {})
    progress(1.0, "done")
    return ExportResult(out_dir=out_dir, items=len(keys), samples=rows, rendered=len(missing), audit=audit,
                        splits={s: sum(e["result"]["n_rows"] for e in es) for s, es in by_split.items()})
