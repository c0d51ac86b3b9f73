"""Workbench benchmark: 100k trajectories (~1M steps) in SQLite, or 1M (10M steps) in PostgreSQL;
p50 / p95 of the pages people wait on.

Measured through the whole Django stack (test client: middleware, session, auth, permission
checks, queries, template rendering), as a logged-in annotator or lead:

- queue page with a filter (status, case type, error label, assignee, sort, free-text search)
- editor page (one trajectory, every step with its form)
- step save (an htmx POST: optimistic lock, rows, revision, search index, the swapped partial)

Targets (p95): queue ≤ 150 ms, editor ≤ 150 ms, step save ≤ 50 ms. The baseline measured in
the same run is the cheapest request through the same stack (``/healthz``): each figure is
also printed as a ratio to it. The free-text search is compared with a plain LIKE scan of the
steps (what the index saves).

    python bench/bench_workbench.py [N]        # N trajectories, default 100000
    python bench/bench_workbench.py --smoke    # 300 trajectories, 20 requests a figure: seconds
    python bench/bench_workbench.py [N] --database postgres [--workers 4]   # default N 1,000,000
    python bench/bench_workbench.py --overlap 2 [--overlap-share 0.1]   # overlap 2 on 10% of them

``--overlap N`` turns overlap on (annotate.agreement): N blind versions of a ``--overlap-share`` of
the trajectories are written (as extra trajectory rows), each annotator claims one, and the same
figures are measured with the queue hiding other annotators' versions and the editor checking them.

``--database postgres`` starts a PostgreSQL of its own (Debian's, initdb into the data dir; see
``bench/_postgres.py``), migrates it, writes the same trajectories with COPY from ``--workers``
processes (the rows ``annotate.ingest.rows.build_rows`` makes for an import; indexes built after the
load, then VACUUM ANALYZE), and prints the same figures. PostgreSQL's memory and planner
settings are its defaults (shared_buffers 128MB), as in docker-compose.yml.

Set BENCH_DATA_DIR to keep the generated database and measure it again without regenerating
(for postgres, the cluster is kept there and started again).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time

import _postgres
from _django import data_dir, setup

N = 100_000  # trajectories; SAMPLES requests per figure (both set from the command line)
SAMPLES = 200
CHUNK = 5_000
TARGETS = {"queue": 150.0, "editor": 150.0, "save": 50.0}

TOOLS = [
    {"name": "get_weather", "description": "Current weather for a city.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string",
                                                                             "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}},
    {"name": "search_flights", "description": "Search flights.", "parameters": {
        "type": "object", "properties": {"origin": {"type": "string"}, "destination": {"type": "string"},
                                         "date": {"type": "string"}}, "required": ["origin", "destination", "date"]}},
    {"name": "convert_currency", "description": "Convert an amount.", "parameters": {
        "type": "object", "properties": {"amount": {"type": "number"}, "from_currency": {"type": "string"},
                                         "to_currency": {"type": "string"}}, "required": ["amount", "from_currency",
                                                                                          "to_currency"]}},
]
CITIES = ["Paris", "Oslo", "Rome", "Tokyo", "Lima", "Cairo", "Quito", "Perth", "Seoul", "Dakar", "Hanoi", "Riga"]
WORDS = ("weather forecast flight fare currency rate booking hotel train ticket museum opening hours "
         "refund baggage delay umbrella sunscreen visa passport airport terminal").split()
CASE_MIX = [["tool_required"], ["tool_required"], ["tool_required", "multi_turn"], ["no_tool"], ["clarification"],
            ["tool_unavailable"], ["tool_failure"], ["irrelevant_tools"]]
LABELS = ["wrong_tool", "missing_required_arg", "ungrounded_answer", "unnecessary_tool_call", "arg_value_error"]


def record(i: int, rng: random.Random):
    """One trajectory of ~10 steps over two turns, with some variety in text and labels."""
    from annotate.trajectory import Meta, Step, Trajectory, Turn

    turns = []
    for t in range(2):
        city = rng.choice(CITIES)
        words = " ".join(rng.choice(WORDS) for _ in range(12))
        steps = [Step("think", text=f"The user asks about {city}; {words}."),
                 Step("tool_call", name="get_weather", arguments={"city": city, "unit": "celsius"}, call_id=f"c{t}a"),
                 Step("tool_result", name="get_weather", call_id=f"c{t}a",
                      text=json.dumps({"city": city, "temperature": rng.randrange(-10, 35), "words": words})),
                 Step("think", text=f"Now the answer for request {i}."),
                 Step("answer", text=f"In {city} it is mild today. {words}.")]
        if rng.random() < 0.05:
            steps[4].labels = [rng.choice(LABELS)]
        turns.append(Turn(user=f"Request {i}: what about {city}? {rng.choice(WORDS)} {rng.choice(WORDS)}", steps=steps))
    return Trajectory(system="You are a travel assistant.", tools=TOOLS, turns=turns,
                      meta=Meta(source=rng.choice(["bfcl", "tau", "hand", "toolrl"]), external_id=f"r{i}",
                                case_types=rng.choice(CASE_MIX), split=rng.choice(["train"] * 8 + ["eval", "test"])))


def populate(rng: random.Random, database: str, url: str = "", workers: int = 2):
    """The bench project, its lead and five annotators, and N trajectories: statuses and
    assignees spread as a running project has them (a quarter submitted, an eighth each approved
    and rejected; half assigned, a tenth to each annotator)."""
    from django.contrib.auth import get_user_model

    from annotate.models import Membership, Tool, Trajectory
    from annotate.ingest.writer import get_or_create_project, write_trajectories

    project, _ = get_or_create_project("bench")
    for spec in TOOLS:
        Tool.objects.create(project=project, name=spec["name"], description=spec["description"],
                            parameters=spec["parameters"])
    User = get_user_model()
    lead = User.objects.create_user("lead")
    annotators = [User.objects.create_user(f"annotator{k}") for k in range(5)]
    Membership.objects.create(project=project, user=lead, role="lead")
    for a in annotators:
        Membership.objects.create(project=project, user=a, role="annotator")
    t0 = time.perf_counter()
    if database == "postgres":
        populate_postgres(project, [a.pk for a in annotators], url, workers)
    else:
        populate_sqlite(project, annotators, rng)
    return project, lead, annotators, time.perf_counter() - t0


def populate_sqlite(project, annotators, rng: random.Random) -> None:
    """Through the import's writer (annotate.ingest.writer.write_trajectories), then the work spread."""
    from annotate.models import Trajectory
    from annotate.ingest.writer import write_trajectories

    for start in range(0, N, CHUNK):
        write_trajectories(project, [record(i, rng) for i in range(start, min(N, start + CHUNK))])
    ids = list(Trajectory.objects.filter(project=project).values_list("id", flat=True))
    rng.shuffle(ids)
    quarter = len(ids) // 4
    Trajectory.objects.filter(id__in=ids[:quarter]).update(status="submitted")
    Trajectory.objects.filter(id__in=ids[quarter:quarter + quarter // 2]).update(status="approved")
    Trajectory.objects.filter(id__in=ids[quarter + quarter // 2:quarter * 2]).update(status="rejected")
    for k, a in enumerate(annotators):
        share = ids[k * len(ids) // 10:(k + 1) * len(ids) // 10]
        for s in range(0, len(share), 900):
            Trajectory.objects.filter(id__in=share[s:s + 900]).update(assignee=a)


def populate_postgres(project, annotator_ids: list[int], url: str, workers: int) -> None:
    """The same rows (annotate.ingest.rows.build_rows) with COPY from ``workers`` processes, indexes
    built after the load; statuses and assignees drawn per trajectory in the same proportions."""
    from django.db import connection

    def make(start: int, stop: int):
        rng = random.Random(start)
        trajectories, statuses, assignees = [], [], []
        for i in range(start, stop):
            trajectories.append(record(i, rng))
            u, v = rng.random(), rng.random()
            statuses.append("submitted" if u < 0.25 else "approved" if u < 0.375 else "rejected" if u < 0.5
                            else "draft")
            assignees.append(annotator_ids[int(v * 10)] if v < 0.5 else None)
        return trajectories, statuses, assignees

    with connection.cursor() as c:
        c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM annotate_trajectory")
        first = c.fetchone()[0]
        indexes = _postgres.drop_indexes(c)
    t0 = time.perf_counter()
    _postgres.copy_trajectories(url, project.pk, N, first, make, workers)
    print(f"  COPY of the rows: {time.perf_counter() - t0:.0f} s with {workers} processes", flush=True)
    t0 = time.perf_counter()
    with connection.cursor() as c:
        _postgres.restore_indexes(c, indexes)
    print(f"  {len(indexes)} indexes built, VACUUM ANALYZE: {time.perf_counter() - t0:.0f} s", flush=True)


def overlap(project, annotators, n: int, share: float) -> None:
    """Overlap ``n`` on ``share`` of the trajectories (versions written once), one version claimed
    by each annotator (their queue and editor then go through the blind checks)."""
    from annotate.agreement import services
    from annotate.agreement.models import OverlapVersion

    conf = services.settings_for(project)
    conf.annotators, conf.share = n, share
    conf.save()
    t0 = time.perf_counter()
    made = services.create_versions(project)
    copies = OverlapVersion.objects.filter(original__project=project).count()
    print(f"overlap {n} on {share:.0%}: versions of {made:,} trajectories written in {time.perf_counter() - t0:.0f} s "
          f"({copies:,} version rows in all)")
    for a in annotators:
        services.claim_version(a, project)


CPU: dict[int, list[float]] = {}  # id(wall-clock list) -> CPU times of the same requests


# PostgreSQL: the server process serving this process's connection. Its CPU time (from the
# kernel's /proc/PID/schedstat, in ns) is added to ours in the cpu columns, so that they count
# the whole request, query execution included (SQLite runs inside this process anyway).
DB_BACKEND: list[int] = []


def db_cpu_ns() -> int:
    if not DB_BACKEND:
        return 0
    with open(f"/proc/{DB_BACKEND[0]}/schedstat") as f:
        return int(f.read().split()[0])


def timed(fn, n: int) -> list[float]:
    """Wall-clock ms of ``n`` calls; the CPU time of each is kept alongside (see ``report``)."""
    out, cpu = [], []
    for _ in range(n):
        c0, d0, t0 = time.process_time(), db_cpu_ns(), time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000 + (db_cpu_ns() - d0) / 1e6)
    CPU[id(out)] = cpu
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def report(name: str, values: list[float], base: float, target: float | None = None,
           cpu: list[float] | None = None) -> tuple[float, float]:
    """Wall-clock p50 / p95 (what a user waits), the ratio to the baseline, and the CPU time the
    requests took (what they would take on an idle machine: the test machine is shared)."""
    p50, p95 = p(values, 50), p(values, 95)
    cpu = cpu if cpu is not None else CPU.get(id(values), [])
    verdict = "" if target is None else f"  target p95 <= {target:.0f} ms: {'MET' if p95 <= target else 'NOT MET'}"
    cpu_text = f"   cpu p50 {p(cpu, 50):5.1f} p95 {p(cpu, 95):5.1f}" if cpu else ""
    print(f"  {name:<32} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({p95 / base:4.1f}x baseline){cpu_text}{verdict}")
    return p50, p95


def ok(response):
    assert response.status_code == 200, (response.status_code, response.content[:300])
    return response


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, help="trajectories (default 100,000; postgres 1,000,000)")
    ap.add_argument("--samples", type=int, default=200, help="requests per figure (default 200)")
    ap.add_argument("--smoke", action="store_true", help="300 trajectories, 20 requests a figure (seconds; CI)")
    ap.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                    help="postgres: a PostgreSQL started by the bench, loaded with COPY (default N: 1,000,000)")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                    help="processes generating and loading the rows (postgres)")
    ap.add_argument("--overlap", type=int, default=0, help="annotators per overlapped trajectory (0: off)")
    ap.add_argument("--overlap-share", type=float, default=0.1, help="share of trajectories overlapped (default 0.1)")
    args = ap.parse_args()
    if args.n is None:
        args.n = 1_000_000 if args.database == "postgres" else 100_000
    if args.smoke:
        args.n, args.samples = 300, 20
    return args


def main() -> None:
    global N, SAMPLES
    args = parse_args()
    N, SAMPLES = args.n, args.samples
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    data = data_dir("workbench")
    url, stop = "", None
    if args.database == "postgres":
        url, stop = _postgres.start(data)
        os.environ["DATABASE_URL"] = url
    try:
        measure(args, setup("workbench", data), url)
    finally:
        if stop is not None:
            stop()
            if not os.environ.get("BENCH_DATA_DIR"):
                shutil.rmtree(data, ignore_errors=True)


def measure(args: argparse.Namespace, data, url: str) -> None:
    # (imported here: Django is set up by now, with the database chosen on the command line)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Count
    from django.test import Client

    from annotate.models import Project, Revision, Step, Trajectory

    rng = random.Random(7)
    existing = Project.objects.filter(slug="bench").first()
    if existing is not None and existing.trajectories.count() >= N:
        User = get_user_model()
        project, lead = existing, User.objects.get(username="lead")
        annotators = list(User.objects.filter(username__startswith="annotator").order_by("username"))
        print(f"reusing the database in {data}")
    else:
        project, lead, annotators, took = populate(rng, args.database, url, args.workers)
        print(f"written in {took:.0f} s ({N / took:,.0f} trajectories/s)")
    if args.overlap >= 2:
        overlap(project, annotators, args.overlap, args.overlap_share)
    steps = Step.objects.count()
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            server = _postgres.server_facts(c)
    else:
        size = sum(f.stat().st_size for f in data.glob("studio.sqlite3*")) / 1e6
        server = f"SQLite {connection.Database.sqlite_version}; database {size:,.0f} MB"
    print(f"{project.trajectories.count():,} trajectories, {steps:,} steps; {server}")
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start; "
          f"{SAMPLES} requests per figure")
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("SELECT pg_backend_pid()")
            DB_BACKEND.append(c.fetchone()[0])
        print("cpu columns: this process and its PostgreSQL backend together")

    annotator = annotators[0]
    c = Client()
    c.force_login(annotator)
    from annotate.agreement.services import visible_to

    # (the trajectories this annotator may open: not the other annotators' versions)
    ids = list(visible_to(Trajectory.objects.filter(project=project), annotator, project).values_list("id", flat=True))
    for _ in range(20):  # warm up: templates compiled, caches filled, pages in the OS cache
        c.get(f"/t/{rng.choice(ids)}/")
        c.get(f"/p/{project.slug}/trajectories/?status=draft")

    base = timed(lambda: ok(c.get("/healthz")), SAMPLES)
    base_p95 = p(base, 95)
    print(f"baseline /healthz through the same stack: p50 {p(base, 50):.2f} ms, p95 {base_p95:.2f} ms "
          f"(cpu p95 {p(CPU[id(base)], 95):.2f} ms)")

    queue = f"/p/{project.slug}/trajectories/"
    filters = {
        "status=draft": lambda: f"status=draft&page={rng.randrange(1, 20)}",
        "case_type=clarification": lambda: f"case_type=clarification&page={rng.randrange(1, 20)}",
        "label=wrong_tool": lambda: f"label=wrong_tool&page={rng.randrange(1, 5)}",
        "assignee=me, status=draft": lambda: f"assignee=me&status=draft&page={rng.randrange(1, 5)}",
        "split=eval": lambda: f"split=eval&page={rng.randrange(1, 20)}",
        "status=submitted, sort=-updated_at": lambda: f"status=submitted&sort=-updated_at&page={rng.randrange(1, 20)}",
        "split=eval, sort=-finding_count": lambda: f"split=eval&sort=-finding_count&page={rng.randrange(1, 20)}",
        "q=<city> <word> (full text)": lambda: f"q={rng.choice(CITIES)}+{rng.choice(WORDS)}",
    }
    print("queue page with a filter (annotator):")
    all_queue, all_cpu = [], []
    for name, query in filters.items():
        values = timed(lambda: ok(c.get(f"{queue}?{query()}")), SAMPLES // 2)
        all_queue += values
        all_cpu += CPU[id(values)]
        report(name, values, base_p95)
    q50, q95 = report("all filters together", all_queue, base_p95, TARGETS["queue"], cpu=all_cpu)

    print("editor page:")
    editor = timed(lambda: ok(c.get(f"/t/{rng.choice(ids)}/")), SAMPLES)
    e50, e95 = report("GET /t/<id>/", editor, base_p95, TARGETS["editor"])

    print("step save (htmx POST, lead):")
    lc = Client()
    lc.force_login(lead)
    versions = dict(Trajectory.objects.filter(id__in=ids[:5000]).values_list("id", "version"))
    pool = list(versions)

    def save():
        pk = rng.choice(pool)
        step = rng.choice([0, 4])
        r = lc.post(f"/t/{pk}/steps/0/{step}/", {"base_version": versions[pk], "text": f"edited {rng.random()}",
                                                  "note": "", "train": "on"}, HTTP_HX_REQUEST="true")
        assert r.status_code == 200, r.content[:300]
        versions[pk] += 1

    first_versions = dict(versions)
    saves = timed(save, SAMPLES)
    s50, s95 = report("POST /t/<id>/steps/<t>/<s>/", saves, base_p95, TARGETS["save"])
    # Every save made its revision. An import writes none: a trajectory's first change also keeps
    # the imported original as version 1, so a saved trajectory has one revision per version.
    saved = [pk for pk in pool if versions[pk] != first_versions[pk]]
    kept = dict(Revision.objects.filter(trajectory_id__in=saved).values("trajectory_id")
                .annotate(n=Count("id")).values_list("trajectory_id", "n"))
    assert sum(versions[pk] - first_versions[pk] for pk in saved) == SAMPLES
    assert all(kept.get(pk) == versions[pk] for pk in saved), "a save without its revision"

    # What the full-text index saves: the same words found by scanning every step with LIKE.
    from django.db.models import Q

    def like_search():
        word = rng.choice(CITIES)
        hits = Step.objects.filter(Q(text__icontains=word)).values("trajectory_id")
        return list(Trajectory.objects.filter(project=project, pk__in=hits).order_by("id")[:50])

    def fts_search():
        return list(Trajectory.objects.filter(project=project).search(rng.choice(CITIES)).order_by("id")[:50])

    like = timed(like_search, 10 if connection.vendor == "sqlite" else 3)  # (a scan of every step)
    fts = timed(fts_search, 10)
    index = "FTS5 index" if connection.vendor == "sqlite" else "full-text search (GIN index or in-order check, by word frequency)"
    print(f"search, first page of matches: {index} p50 {p(fts, 50):.1f} ms vs LIKE scan of the steps "
          f"p50 {p(like, 50):.1f} ms ({p(like, 50) / p(fts, 50):.0f}x faster)")
    if DB_BACKEND:  # (the test client keeps one connection: the backend measured is the one that served)
        with connection.cursor() as c:
            c.execute("SELECT pg_backend_pid()")
            assert c.fetchone()[0] == DB_BACKEND[0], "the connection changed: the cpu columns missed the new backend"
    print(f"summary (p95 wall-clock): queue {q95:.0f} ms, editor {e95:.0f} ms, step save {s95:.0f} ms; "
          f"load average {os.getloadavg()[0]:.1f} at the end (a load above the 2 cores stretches wall-clock "
          "times; the cpu columns do not depend on it)")
    print(f"summary (p95 cpu): queue {p(all_cpu, 95):.0f} ms, editor {p(CPU[id(editor)], 95):.0f} ms, "
          f"step save {p(CPU[id(saves)], 95):.0f} ms")


if __name__ == "__main__":
    main()
