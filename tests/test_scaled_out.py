"""The scaled-out shape: the same settings against a real PostgreSQL and a real Redis.

Starts Debian's PostgreSQL (initdb as the postgres user into a temp dir) and redis-server on free
loopback ports, then drives manage.py and a Celery worker as separate processes, the way
docker-compose.yml runs them. Skips with a clear message where the servers are not installed.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import MODEL_ROOTS_ENV

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.xdist_group("servers")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); `make test` installs it")
    bindir = Path(bins[-1])
    # Outside pytest's private tmp dir: the postgres user must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="studio-pg-"))
    data = base / "data"
    run_as = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        os.chmod(base, 0o755)
        shutil.chown(base, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "studio"],
                   check=True, capture_output=True)
    proc = subprocess.Popen(run_as + [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                                      "-k", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        for _ in range(50):
            r = subprocess.run(run_as + [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "studio",
                                         "-d", "postgres", "-c", "CREATE DATABASE studio"], capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.2)
        yield f"postgres://studio@127.0.0.1:{port}/studio"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    exe = shutil.which("redis-server")
    if not exe:
        pytest.skip("redis-server is not installed (apt-get install redis-server); `make test` installs it")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path_factory.mktemp("redis"))], stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def manage(env, *args, timeout=300):
    r = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_compose_file_wires_web_worker_redis_and_postgres_through_the_environment():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "redis", "postgres"} <= set(services)
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["CELERY_BROKER_URL"].startswith("redis://")


def test_compose_file_is_a_production_shape():
    text = (ROOT / "docker-compose.yml").read_text()
    services = yaml.safe_load(text)["services"]
    app = {name: s for name, s in services.items() if s.get("image", "").startswith("trajectory-studio")}
    web = services["web"]["command"]
    assert "gunicorn" in web or "granian" in web
    commands = " ".join(str(s.get("command", "")) for s in services.values())
    assert "runserver" not in commands and "seed_demo" not in commands  # no demo users with known passwords
    # No default secret: compose stops with a message unless they are set.
    for name, service in app.items():
        assert service["environment"]["STUDIO_PRODUCTION"] == "true", name
        assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", service["environment"]["SECRET_KEY"]), name
        assert "${POSTGRES_PASSWORD:?" in service["environment"]["DATABASE_URL"], name
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    assert "change-me" not in text and "studio:studio@" not in text
    assert all(s.get("restart") in ("always", "unless-stopped") for s in services.values()), "a restart policy each"
    # Redis keeps queued jobs across a restart: an append-only file on a volume.
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") and v.split(":")[0] in yaml.safe_load(text)["volumes"] for v in redis["volumes"])
    # One beat, of its own; no worker embeds it.
    beats = [name for name, s in app.items() if " beat" in s["command"]]
    assert beats == ["beat"]
    workers = [s["command"] for s in app.values() if " worker" in s["command"]]
    assert len(workers) >= 2 and not any(re.search(r"(^|\s)(-B|--beat)(\s|$)", w) for w in workers)
    # Health checks: web's own /healthz, redis-cli ping, pg_isready.
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert (ROOT / "studio" / "middleware.py").read_text().count('"/healthz"') == 1  # the path web's check asks


def test_import_and_background_work_run_on_postgres_and_redis(postgres_url, redis_url, tmp_path, tiny_model_dir):
    env = {**os.environ, "DATABASE_URL": postgres_url, "CELERY_BROKER_URL": redis_url,
           "STUDIO_DATA_DIR": str(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "studio.settings",
           "STUDIO_MODEL_ROOTS": MODEL_ROOTS_ENV}
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo", "--no-model")
    # Keys in an order jsonb would change (it sorts shorter keys first): the chat template renders
    # schemas and arguments in stored order, so PostgreSQL must give back what was imported.
    tool = {"name": "get_weather", "description": "Weather", "parameters": {
        "type": "object", "properties": {"unit_system": {"type": "string"}, "city": {"type": "string"}},
        "required": ["city"]}}
    records = [{"tools": [tool],
                "turns": [{"user": f"weather {i}?", "assistant_tool": {"name": "get_weather",
                                                                       "arguments": {"unit_system": "metric",
                                                                                     "city": f"C{i}"}},
                           "tool_result": "sunny", "assistant_answer": "Sunny."}]} for i in range(5)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = manage(env, "import_trajectories", str(src), "--project", "demo")
    assert "Imported 5 trajectories" in out
    # Spoil the stored finding counts, then let a worker on the Redis broker recompute them.
    code = ("from annotate.models import Trajectory as T, Project as P; "
            "T.objects.update(finding_count=999); "
            "from annotate.tasks import recount_findings; recount_findings.delay(P.objects.get(slug='demo').pk)")
    manage(env, "shell", "-c", code)
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "studio", "worker", "-Q", "default",
                               "--pool", "solo", "--loglevel", "WARNING"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        check = "from annotate.models import Trajectory as T; print(T.objects.filter(finding_count=999).count())"
        deadline = time.time() + 90
        left = None
        while time.time() < deadline:
            left = manage(env, "shell", "--no-imports", "-c", check).strip().splitlines()[-1]
            if left == "0":
                break
            time.sleep(1)
        assert left == "0", "the worker did not process the task over Redis"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
    exported = tmp_path / "out.jsonl"
    manage(env, "export_trajectories", str(exported), "--project", "demo", "--format", "messages")
    lines = exported.read_text().splitlines()
    assert len(lines) == 5 + 10  # our 5 plus the 10 demo trajectories
    ours = [json.loads(line) for line in lines if '"weather 0?"' in line]
    assert len(ours) == 1
    call = next(m for m in ours[0]["messages"] if m.get("tool_calls"))["tool_calls"][0]["function"]
    arguments = call["arguments"] if isinstance(call["arguments"], dict) else json.loads(call["arguments"])
    assert list(arguments) == ["unit_system", "city"]
    spec = ours[0]["tools"][0]
    spec = spec.get("function", spec)
    assert list(spec["parameters"]["properties"]) == ["unit_system", "city"]
    assert list(spec["parameters"]) == ["type", "properties", "required"]
    # Rendered through the chat template from PostgreSQL: the trained text keeps the imported order.
    snap = tmp_path / "snapshot"
    manage(env, "create_snapshot", str(snap), "--project", "demo", "--kind", "sft", "--template", "qwen3_training",
           "--tokenizer", str(tiny_model_dir), "--status", "any", "--strategy", "conversation", "--tokenized")
    rows = [json.loads(line) for name in ("train.jsonl", "eval.jsonl") if (snap / name).exists()
            for line in (snap / name).read_text().splitlines()]
    assert len(rows) == 15
    row = next(r for r in rows if any(m.get("content") == "weather 0?" for m in r["messages"]))
    from transformers import AutoTokenizer

    text = AutoTokenizer.from_pretrained(tiny_model_dir).decode(row["input_ids"])
    assert text.index('"unit_system"') < text.index('"city"')  # in the tool schema
    assert '{"unit_system": "metric", "city": "C0"}' in text  # the call's arguments


SEARCH_CHECK = """
from django.db import connection
import annotate.models as m
from annotate.models import Trajectory as T, search_index_enabled
print("enabled", search_index_enabled())
def ids():
    return [sorted(T.objects.search(q).values_list("id", flat=True))
            for q in ("C3", "weath", "unit_sys metric c4", "nothing-like-this")]
m.WALK_SHARE = 2.0  # the GIN index first, whatever the words
by_index = ids()
m.WALK_SHARE = 0.0  # every trajectory's document tested in turn
by_walk = ids()
m.WALK_SHARE = 0.05
print("same", by_index == by_walk)
print("counts", *(len(found) for found in by_index))
def plan(q):
    with connection.cursor() as c:
        c.execute("SET enable_seqscan = off")
        sql, params = T.objects.search(q).values("id").query.sql_with_params()
        c.execute("EXPLAIN " + sql, params)
        return " ".join(row[0] for row in c.fetchall())
print("plan", plan("C3"))
connection.cursor().execute("ANALYZE annotate_trajectory_search")
print("common", m.common_share("default", ["weath"]), m.common_share("default", ["nothing"]))
print("walkplan", plan("weath"))
"""


def search_counts(env) -> tuple[list[str], str, list[str]]:
    lines = manage(env, "shell", "--no-imports", "-c", SEARCH_CHECK).splitlines()
    assert "enabled True" in lines
    counts = next(line for line in lines if line.startswith("counts")).split()[1:]
    return counts, next(line for line in lines if line.startswith("plan")), lines


def test_queue_search_uses_a_full_text_index_on_postgres(postgres_url, tmp_path):
    server = postgres_url.rsplit("/", 1)[0]
    env = {**os.environ, "DATABASE_URL": server + "/postgres", "STUDIO_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "studio.settings"}
    manage(env, "shell", "--no-imports", "-c",
           "from django.db import connection; connection.cursor().execute('CREATE DATABASE search')")
    env["DATABASE_URL"] = server + "/search"  # a database of its own, beside the other test's
    manage(env, "migrate", "--noinput")
    records = [{"turns": [{"user": f"weather {i}?", "assistant_tool": {"name": "get_weather", "arguments": {
        "unit_system": "metric", "city": f"C{i}"}}, "tool_result": "sunny", "assistant_answer": "Sunny."}]}
               for i in range(6)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    manage(env, "import_trajectories", str(src), "--project", "search")
    counts, plan, lines = search_counts(env)
    # Each word is a prefix, every word must match: C3 alone, all six, C4 alone, none.
    assert counts == ["1", "6", "1", "0"]
    assert "annotate_trajectory_search_gin" in plan, plan
    # Both plans find the same trajectories; with statistics, a word in every document ("weath")
    # walks the trajectories (a subplan per row); a word in none of them is not common.
    assert "same True" in lines
    assert next(line for line in lines if line.startswith("common")) == "common 1.0 0.0"
    walk = next(line for line in lines if line.startswith("walkplan"))
    assert "SubPlan" in walk and "annotate_trajectory_search_gin" not in walk, walk
    # Rebuilt from the stored rows by the migration (what an existing database gets)...
    manage(env, "migrate", "annotate", "0003", "--noinput")
    manage(env, "migrate", "--noinput")
    assert search_counts(env)[0] == ["1", "6", "1", "0"]
    # ...and a deleted trajectory leaves the index with it.
    manage(env, "shell", "--no-imports", "-c",
           "from annotate.models import Trajectory as T; T.objects.search('C3').delete()")
    assert search_counts(env)[0] == ["0", "5", "1", "0"]
    # The index written anew from the documents finds the same.
    assert "Indexed 5 trajectories." in manage(env, "rebuild_search_index")
    assert search_counts(env)[0] == ["0", "5", "1", "0"]


def test_text_postgres_cannot_store_is_a_line_error_and_extra_keeps_its_order(postgres_url, tmp_path):
    server = postgres_url.rsplit("/", 1)[0]
    env = {**os.environ, "DATABASE_URL": server + "/postgres", "STUDIO_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "studio.settings"}
    manage(env, "shell", "--no-imports", "-c",
           "from django.db import connection; connection.cursor().execute('CREATE DATABASE badtext')")
    env["DATABASE_URL"] = server + "/badtext"
    manage(env, "migrate", "--noinput")
    good = {"turns": [{"user": "hi", "assistant_answer": "hello"}]}
    bad = [{"turns": [{"user": "a\u0000b"}]},
           {"turns": [{"user": "u", "assistant_tool": {"name": "f" * 201, "arguments": {}}}]},
           {"turns": [{"user": "u", "assistant_tool": {"name": "f", "call_id": "c" * 201}}]},
           {"turns": [{"user": "u", "assistant_tool": {"name": "f", "arguments": '{"a": "x\\u0000"}'}}]}]
    src = tmp_path / "bad.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in [good, *bad]))
    r = subprocess.run([sys.executable, "manage.py", "import_trajectories", str(src), "--project", "bad"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    for line, field in ((2, "turns[0].user"), (3, "turns[0].assistant_tool.name"), (4, "turns[0].assistant_tool.id"),
                        (5, "turns[0].steps[0].arguments.a")):
        assert f"bad.jsonl:{line} [" in r.stderr and field in r.stderr, r.stderr
    # Values with no canonical place come back from PostgreSQL as imported, key order included.
    kept = {"turns": [{"user": "hi", "zeta": 1, "alpha": {"z": 1, "a": 2},
                       "assistant_answer": {"text": "hello", "why": "because", "b": [1, 2]}}]}
    src.write_text(json.dumps(kept) + "\n")
    assert "Imported 1 trajectories" in manage(env, "import_trajectories", str(src), "--project", "kept")
    code = ("import json; from annotate.models import Trajectory as T; d = T.objects.get().to_canonical(); "
            "print(json.dumps([d.turns[0].extra, d.turns[0].steps[0].extra]))")
    out = manage(env, "shell", "--no-imports", "-c", code).strip().splitlines()[-1]
    assert out == json.dumps([{"zeta": 1, "alpha": {"z": 1, "a": 2}}, {"why": "because", "b": [1, 2]}])
    counts = manage(env, "shell", "--no-imports", "-c",
                    "from annotate.models import Trajectory as T; print(T.objects.filter(project__slug='bad').count())")
    assert counts.strip().splitlines()[-1] == "0"
