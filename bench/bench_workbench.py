"""Workbench benchmark: 100k trajectories (~1M steps) in SQLite; p50 / p95 of the pages people wait on.

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

Set BENCH_DATA_DIR to keep the generated database and measure it again without regenerating.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time

from _django import setup

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
CHUNK = 5_000
SAMPLES = 200
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


def populate(rng: random.Random):
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
    for start in range(0, N, CHUNK):
        write_trajectories(project, [record(i, rng) for i in range(start, min(N, start + CHUNK))])
    # Spread the work: statuses and assignees as a running project has them.
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
    return project, lead, annotators, time.perf_counter() - t0


CPU: dict[int, list[float]] = {}  # id(wall-clock list) -> CPU times of the same requests


def timed(fn, n: int) -> list[float]:
    """Wall-clock ms of ``n`` calls; the CPU time of each is kept alongside (see ``report``)."""
    out, cpu = [], []
    for _ in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
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


def main() -> None:
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    data = setup("workbench")
    from django.db import connection
    from django.test import Client

    from annotate.models import Revision, Step, Trajectory

    from django.contrib.auth import get_user_model

    from annotate.models import Project

    rng = random.Random(7)
    existing = Project.objects.filter(slug="bench").first()
    if existing is not None and existing.trajectories.count() >= N:
        User = get_user_model()
        project, lead = existing, User.objects.get(username="lead")
        annotators = list(User.objects.filter(username__startswith="annotator").order_by("username"))
        print(f"reusing the database in {data}")
    else:
        project, lead, annotators, took = populate(rng)
        print(f"written in {took:.0f} s ({N / took:,.0f} trajectories/s)")
    steps = Step.objects.count()
    size = sum(f.stat().st_size for f in data.glob("studio.sqlite3*")) / 1e6
    print(f"{project.trajectories.count():,} trajectories, {steps:,} steps; database {size:,.0f} MB")
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start; SQLite "
          f"{connection.Database.sqlite_version}; {SAMPLES} requests per figure")

    annotator = annotators[0]
    c = Client()
    c.force_login(annotator)
    ids = list(Trajectory.objects.filter(project=project).values_list("id", flat=True))
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
    e50, e95 = report("GET /t/<id>/", timed(lambda: ok(c.get(f"/t/{rng.choice(ids)}/")), SAMPLES), base_p95,
                      TARGETS["editor"])

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

    revisions_before = Revision.objects.count()
    s50, s95 = report("POST /t/<id>/steps/<t>/<s>/", timed(save, SAMPLES), base_p95, TARGETS["save"])
    assert Revision.objects.count() == revisions_before + SAMPLES  # every save made its revision

    # What the full-text index saves: the same words found by scanning every step with LIKE.
    from django.db.models import Q

    def like_search():
        word = rng.choice(CITIES)
        hits = Step.objects.filter(Q(text__icontains=word)).values("trajectory_id")
        return list(Trajectory.objects.filter(project=project, pk__in=hits).order_by("id")[:50])

    def fts_search():
        return list(Trajectory.objects.filter(project=project).search(rng.choice(CITIES)).order_by("id")[:50])

    like = timed(like_search, 10)
    fts = timed(fts_search, 10)
    print(f"search, first page of matches: FTS5 index p50 {p(fts, 50):.1f} ms vs LIKE scan of the steps "
          f"p50 {p(like, 50):.1f} ms ({p(like, 50) / p(fts, 50):.0f}x faster)")
    print(f"summary (p95 wall-clock): queue {q95:.0f} ms, editor {e95:.0f} ms, step save {s95:.0f} ms; "
          f"load average {os.getloadavg()[0]:.1f} at the end (a load above the 2 cores stretches wall-clock "
          "times; the cpu columns do not depend on it)")


if __name__ == "__main__":
    main()
