"""A throwaway PostgreSQL for a benchmark, and a bulk loader of trajectories into it (COPY).

``start(folder)`` runs Debian's PostgreSQL (initdb into ``folder/pgdata`` the first time, as the
tests do; as the ``postgres`` user when run as root) on a free loopback port and returns its URL
and a function that stops it. A folder that already holds a cluster is started again, so a
generated database can be measured more than once (BENCH_DATA_DIR).

``copy_trajectories`` writes canonical trajectories through ``annotate.ingest.rows.build_rows`` (the
rows an import writes) with COPY, in forked processes each with its own connection: the app's
import path on PostgreSQL is the ORM's (``bulk.available()`` is SQLite's), far too slow for 10M
steps. Secondary indexes are dropped for the load and built again after it (``drop_indexes``,
``restore_indexes``), as pg_restore does.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

# Loading settings only: they make the bulk load and the index builds faster and do not change
# what a request does (shared_buffers, work_mem and the planner's settings stay PostgreSQL's defaults).
SERVER_SETTINGS = {"max_wal_size": "8GB", "checkpoint_timeout": "30min", "maintenance_work_mem": "512MB"}
TABLES = ("annotate_trajectory", "annotate_turn", "annotate_step", "annotate_steplabel", "annotate_trajectory_search")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(folder: Path):
    """Start a cluster in ``folder/pgdata`` (created on first use); returns ``(url, stop)``."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(bins[-1])
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "pgdata"
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        os.chmod(folder, 0o755)
        shutil.chown(folder, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "studio"],
                       check=True, capture_output=True)
    port = _free_port()
    settings = [arg for k, v in SERVER_SETTINGS.items() for arg in ("-c", f"{k}={v}")]
    proc = subprocess.Popen(run_as + [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                                      "-k", str(data), *settings], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:  # a fast shutdown: connections still open are closed
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast"], capture_output=True)
        proc.wait(timeout=60)

    import psycopg

    deadline = time.time() + 60
    while True:
        try:
            with psycopg.connect(f"postgresql://studio@127.0.0.1:{port}/postgres", autocommit=True) as conn:
                if fresh:
                    conn.execute("CREATE DATABASE studio")
            break
        except psycopg.OperationalError:
            if time.time() > deadline or proc.poll() is not None:
                stop()
                raise
            time.sleep(0.2)
    return f"postgres://studio@127.0.0.1:{port}/studio", stop


def server_facts(cursor) -> str:
    cursor.execute("SELECT current_setting('server_version'), current_setting('shared_buffers'), "
                   "current_setting('work_mem'), pg_size_pretty(pg_database_size(current_database()))")
    version, buffers, work_mem, size = cursor.fetchone()
    return f"PostgreSQL {version} (shared_buffers {buffers}, work_mem {work_mem}); database {size}"


def drop_indexes(cursor) -> list[str]:
    """Drop the load tables' indexes that back no constraint; returns their definitions."""
    cursor.execute("""SELECT i.indexname, i.indexdef FROM pg_indexes i
                      WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
                        AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                        WHERE c.conindid = (quote_ident(i.schemaname) || '.'
                                                            || quote_ident(i.indexname))::regclass)""", [list(TABLES)])
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in indexes]


def restore_indexes(cursor, definitions: list[str]) -> None:
    """Build the dropped indexes again; continue the trajectory ids above the loaded ones; ANALYZE."""
    for definition in definitions:
        cursor.execute(definition)
    cursor.execute("SELECT setval(pg_get_serial_sequence('annotate_trajectory', 'id'), "
                   "GREATEST(1, (SELECT MAX(id) FROM annotate_trajectory)))")
    for table in TABLES:
        cursor.execute(f'VACUUM (ANALYZE) "{table}"')  # statistics and the visibility map, as autovacuum leaves them


def _columns(model, given: tuple[str, ...]) -> tuple[list[str], tuple]:
    """The columns COPY writes: ``given`` (attnames, in order), then every other column at its default."""
    from django.db import models

    from annotate.ingest.jsontext import dumps

    rest = [f for f in model._meta.concrete_fields if f.attname not in given and not f.primary_key]
    tail = tuple(dumps(f.get_default()) if isinstance(f, models.JSONField) else f.get_default() for f in rest)
    by_attname = {f.attname: f.column for f in model._meta.concrete_fields}
    return [by_attname[a] for a in given] + [f.column for f in rest], tail


# (set in the parent before forking: the workers inherit them)
_JOB: dict = {}


def copy_trajectories(url: str, project_id: int, n: int, first_id: int, make, workers: int,
                      chunk: int = 5_000) -> None:
    """COPY ``n`` trajectories with ids from ``first_id``: ``make(start, stop)`` returns the
    ``(canonical trajectories, statuses, assignee ids)`` of positions ``start``..``stop``."""
    from annotate.ingest.rows import LABEL_COLUMNS, STEP_COLUMNS, TRAJECTORY_COLUMNS, TURN_COLUMNS
    from annotate.models import Step, StepLabel, Trajectory, Turn

    from django.db import connections

    connections.close_all()  # (the forked workers open connections of their own)
    _JOB.update(url=url.replace("postgres://", "postgresql://"), project_id=project_id, first_id=first_id, make=make,
                tables={
        "traj": _columns(Trajectory, TRAJECTORY_COLUMNS + ("assignee_id",)),
        "turn": _columns(Turn, TURN_COLUMNS),
        "step": _columns(Step, ("id",) + STEP_COLUMNS),
        "label": _columns(StepLabel, LABEL_COLUMNS),
    })
    spans = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_copy_span, spans):
            pass


def _copy_span(span: tuple[int, int]) -> None:
    import psycopg
    from django.utils import timezone

    from annotate.ingest.rows import build_rows

    start, stop = span
    trajectories, statuses, assignees = _JOB["make"](start, stop)
    first = _JOB["first_id"] + start
    now = timezone.now()
    traj_rows, turn_rows, step_rows, label_rows, search_rows = build_rows(
        trajectories, range(first, first + len(trajectories)), 0, "", now, True)
    tables = _JOB["tables"]
    with psycopg.connect(_JOB["url"]) as conn, conn.cursor() as c:
        # Foreign keys are Django's deferred constraint triggers: one queued event per row at 10M
        # rows. The rows come from build_rows, consistent by construction, so the load skips them.
        c.execute("SET session_replication_role = replica")
        c.execute("SET synchronous_commit = off")
        c.execute("SELECT nextval(pg_get_serial_sequence('annotate_step', 'id')) FROM generate_series(1, %s)",
                  [len(step_rows)])
        step_ids = [r[0] for r in c.fetchall()]
        project_id = _JOB["project_id"]

        def copy(key: str, rows) -> None:
            columns, tail = tables[key]
            quoted = ", ".join(f'"{column}"' for column in columns)
            with c.copy(f"COPY {_table(key)} ({quoted}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row + tail)

        # (build_rows's trajectory rows are TRAJECTORY_COLUMNS: id, project, status, then the rest)
        copy("traj", ((r[0], project_id, statuses[k]) + r[3:] + (assignees[k],) for k, r in enumerate(traj_rows)))
        copy("turn", turn_rows)
        copy("step", ((step_ids[k],) + r for k, r in enumerate(step_rows)))
        copy("label", ((step_ids[k], tid, label) for k, tid, label in label_rows))
        c.execute("CREATE TEMP TABLE search_in (trajectory_id bigint, text text)")
        with c.copy("COPY search_in (trajectory_id, text) FROM STDIN") as cp:
            for row in search_rows:
                cp.write_row(row)
        c.execute("INSERT INTO annotate_trajectory_search (trajectory_id, document) "
                  "SELECT trajectory_id, to_tsvector('simple', text) FROM search_in")


def _table(key: str) -> str:
    return {"traj": "annotate_trajectory", "turn": "annotate_turn", "step": "annotate_step",
            "label": "annotate_steplabel"}[key]
