"""The production shape: docker-compose.yml's settings pass `check --deploy`, refuse a default key,
serve under gunicorn over https only; the embedded default keeps working with nothing set."""

from __future__ import annotations

import io
import os
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from studio.secret_key import embedded_key, key_problem

ROOT = Path(__file__).resolve().parents[1]
KEY = secrets.token_urlsafe(50)


def compose_env(**given: str) -> dict[str, str]:
    """The web service's environment from docker-compose.yml, interpolated as compose does it:
    ``${X:?msg}`` must be given, ``${X:-default}`` falls back."""
    env = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["environment"]

    def value(m: re.Match) -> str:
        name, op, rest = m.group(1), m.group(2), m.group(3)
        if given.get(name):
            return given[name]
        assert op == ":-", f"{name} is required by docker-compose.yml ({rest}) and the test did not give it"
        return rest

    return {k: re.sub(r"\$\{(\w+)(:[-?])([^}]*)\}", value, str(v)) for k, v in env.items()}


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # (The browser tests' DJANGO_ALLOW_ASYNC_UNSAFE is the test process's, not the deployment's.)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "DEBUG", "STUDIO_PRODUCTION", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(compose_env(SECRET_KEY=KEY, POSTGRES_PASSWORD="pw"))
    # The container's volume and database are not here; nothing below connects to the database.
    env.update(STUDIO_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), **extra)
    return env


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


# The secret key ------------------------------------------------------------------------------

def test_the_generated_key_file_is_readable_by_its_owner_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "STUDIO_PRODUCTION")}
    r = manage({**env, "STUDIO_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}, "check")
    assert r.returncode == 0, r.stderr
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 50
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secret_key")] == []  # no temp file left


def test_a_key_file_left_world_readable_is_narrowed_and_kept(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("an-older-generated-key-" * 3)
    key_file.chmod(0o644)
    assert embedded_key(key_file) == "an-older-generated-key-" * 3  # existing logins stay valid
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert embedded_key(key_file) == embedded_key(key_file)


@pytest.mark.parametrize("extra, reason", [
    ({"SECRET_KEY": "change-me"}, 'SECRET_KEY is a placeholder ("change-me")'),
    ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": "short-but-not-a-placeholder"}, "SECRET_KEY is too weak"),
])
def test_the_production_shape_refuses_to_start_with_a_default_or_missing_key(tmp_path, extra, reason):
    r = manage(production_env(tmp_path, **extra), "check")
    assert r.returncode != 0
    assert "ImproperlyConfigured: " + reason in r.stderr
    assert not (tmp_path / "data" / "secret_key").exists()  # no generated key to fall back on


def test_a_placeholder_key_is_refused_with_debug_off_even_outside_the_production_shape(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "STUDIO_PRODUCTION")}
    env.update(SECRET_KEY="change-me", STUDIO_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    r = manage(env, "check")
    assert r.returncode != 0 and 'SECRET_KEY is a placeholder ("change-me")' in r.stderr
    assert manage({**env, "DEBUG": "1"}, "check").returncode == 0  # a developer's DEBUG run is theirs


def test_key_rules():
    assert key_problem(None, required=False) is None  # the embedded default generates one
    assert key_problem("x" * 60, required=True).startswith("SECRET_KEY is too weak")  # one distinct character
    assert key_problem("django-insecure-" + KEY, required=True).startswith("SECRET_KEY is a placeholder")
    assert key_problem(" Change-Me ", required=False).startswith("SECRET_KEY is a placeholder")
    assert key_problem(KEY, required=True) is None


# check --deploy, gunicorn ------------------------------------------------------------------------

def test_check_deploy_is_clean_with_the_compose_settings(tmp_path):
    r = manage(production_env(tmp_path), "check", "--deploy")
    issues = [line for line in (r.stdout + r.stderr).splitlines() if re.match(r"\?: \(", line)]
    assert issues == [], "\n".join(issues)
    assert r.returncode == 0, r.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(url: str, **headers: str):
    opener = urllib.request.build_opener(NoRedirect)
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=5)
    except urllib.error.HTTPError as e:
        return e


def test_gunicorn_serves_the_app_over_https_only_with_collected_static_files(tmp_path):
    port = free_port()
    env = production_env(tmp_path, STATIC_ROOT=str(tmp_path / "static"), PORT=str(port), WEB_CONCURRENCY="1",
                         DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    r = manage(env, "collectstatic", "--noinput")
    assert r.returncode == 0, r.stderr
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen([str(gunicorn), "-c", "python:studio.gunicorn", "studio.wsgi"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                health = get(base + "/healthz")  # how the compose health check asks: plain http, by IP
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert health.status == 200
        plain = get(base + "/login/", Host="localhost")
        assert plain.status == 301 and plain.headers["Location"] == "https://localhost/login/"
        login = get(base + "/login/", Host="localhost", **{"X-Forwarded-Proto": "https"})
        assert login.status == 200
        assert "max-age=31536000" in login.headers["Strict-Transport-Security"]
        cookie = login.headers["Set-Cookie"]
        assert cookie.startswith("csrftoken=") and "Secure" in cookie
        css = get(base + "/static/studio.css", Host="localhost", **{"X-Forwarded-Proto": "https"})
        assert css.status == 200 and b"{" in css.read()
        assert (tmp_path / "static" / "studio.css.gz").exists()  # compressed when collected
        assert get(base + "/login/", Host="evil.example", **{"X-Forwarded-Proto": "https"}).status == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# The embedded default, in this process ------------------------------------------------------------

def test_the_embedded_default_serves_plain_http(client, settings):
    assert not (settings.PRODUCTION or settings.SESSION_COOKIE_SECURE or settings.CSRF_COOKIE_SECURE
                or settings.SECURE_SSL_REDIRECT or settings.SECURE_HSTS_SECONDS)
    r = client.get("/login/")
    assert r.status_code == 200 and not r.cookies["csrftoken"]["secure"]


def test_healthz_answers_before_the_host_check_and_the_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["studio.example.com"]
    r = client.get("/healthz", HTTP_HOST="127.0.0.1:8000")
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert client.get("/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400


@pytest.mark.parametrize("password", ["password", "12345678", "87654321", "lena2024lena"])
def test_common_numeric_and_user_like_passwords_are_refused(make_user, password):
    from django.contrib.auth.forms import SetPasswordForm

    user = make_user("lena2024")
    form = SetPasswordForm(user, {"new_password1": password, "new_password2": password})
    assert not form.is_valid() and form.errors["new_password2"]


def test_a_strong_password_is_accepted(make_user):
    from django.contrib.auth.forms import SetPasswordForm

    user = make_user("lena2024")
    form = SetPasswordForm(user, {"new_password1": "tide-pool-lantern-42", "new_password2": "tide-pool-lantern-42"})
    assert form.is_valid(), form.errors


def test_seed_demo_runs_in_the_production_shape_only_when_asked(db, settings):
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command

    settings.PRODUCTION, settings.STUDIO_DEMO = True, False
    with pytest.raises(CommandError, match="STUDIO_DEMO=1"):
        call_command("seed_demo", "--no-model")
    assert not get_user_model().objects.filter(username="admin").exists()
    settings.STUDIO_DEMO = True
    call_command("seed_demo", "--no-model", stdout=io.StringIO())
    assert get_user_model().objects.get(username="admin").check_password("admin-demo")
