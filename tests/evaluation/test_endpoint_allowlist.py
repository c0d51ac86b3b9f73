"""The endpoint allowlist through the app: the launch form and the API refuse an endpoint URL that
is not allowed (a field error naming ``endpoint_url``), the worker checks again before it starts
and its runner on every connection, admins keep the list in Django admin, and deployments can add
entries with ``STUDIO_ENDPOINT_ALLOWLIST``."""

from __future__ import annotations

import re
import socket

import pytest
from django.core import checks
from django.urls import reverse

from evaluation import eval_sets, jobs
from evaluation.generate import GenerationSettings
from evaluation.models import AllowedEndpoint, EvalRun, EvalSet
from tests.conftest import PASSWORD
from tests.evaluation.runs_harness import ChatServer, make_prompt_snapshot, oracle, prompt_snapshot_dir
from tests.training.jobs_harness import fast_users
from training.models import JobStatus

SECRET = "root:x:0:0:SECRET-of-the-internal-service"
REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path, monkeypatch):
    fast_users(settings)
    settings.EVAL_RUNS_DIR = tmp_path / "eval-runs"
    settings.ENDPOINT_ALLOWLIST = ""
    monkeypatch.setattr("evaluation.tasks.eval_run.delay", lambda pk: None)  # no broker in these tests


@pytest.fixture
def eval_set(project, tiny_model_dir):
    snapshot = make_prompt_snapshot(project, prompt_snapshot_dir(tiny_model_dir))
    return eval_sets.create_eval_set(project, EvalSet.SNAPSHOT, snapshot=snapshot, split="eval")


@pytest.fixture
def internal():
    """A service on loopback answering every request with a secret."""
    with ChatServer(lambda body: {"content": SECRET}) as server:
        yield server


@pytest.fixture
def corp_dns(monkeypatch):
    """``*.corp.example.com`` names resolve to a private address; the rest as usual."""
    def getaddrinfo(host, port, *args, **kwargs):
        if str(host).endswith(".corp.example.com"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.1.20", port))]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _form(es, **over) -> dict:
    data = {"eval_set": es.pk, "model_source": "endpoint", "model_path": "", "name": "", "limit": "",
            "max_new_tokens": "64", "batch_size": "4", "temperature": "0", "max_steps": "3", "concurrency": "8",
            "timeout": "60", "retries": "0", "device": "auto", "response_parser": "auto", "endpoint_url": "",
            "endpoint_model": "m"}
    data.update(over)
    return data


def _field_errors(html: str, name: str) -> str:
    m = re.search(rf'id="field-{name}".*?</div>', html, re.S)
    return m.group(0) if m else ""


REFUSED = [  # (URL, allowlist entries (pattern, allow_private), what the error says)
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", [],
     "169.254.169.254 is not on the endpoint allowlist"),
    ("http://127.0.0.1:6379/", [], "127.0.0.1:6379 is not on the endpoint allowlist"),
    ("https://api.example.com/v1", [("gpu-box:8000", True)], "api.example.com is not on the endpoint allowlist"),
    ("http://127.0.0.1:6379/", [("127.0.0.1:6379", False)], "127.0.0.1 is a loopback address; private addresses"),
    ("http://[::1]:8000/v1", [("[::1]:8000", False)], "[::1] is a loopback address"),
    ("http://localhost:6379/", [("localhost", False)], "localhost resolves to"),
    ("http://10.0.0.5:8000/v1", [("10.0.0.5", False)], "10.0.0.5 is a private address"),
    ("http://172.16.3.4:8000/v1", [("172.16.3.4:8000", False)], "172.16.3.4 is a private address"),
    ("http://vllm.corp.example.com:8000/v1", [("*.corp.example.com", False)],
     "vllm.corp.example.com resolves to 192.168.1.20, a private address"),
    ("http://169.254.169.254/latest/meta-data/", [("169.254.169.254", True)],
     "169.254.169.254 is a cloud metadata address, which is never allowed"),
    ("http://user:pw@gpu-box:8000/v1", [("gpu-box:8000", True)], "user name or password"),
]


@pytest.mark.parametrize("url, entries, says", REFUSED)
def test_the_launch_form_refuses_an_endpoint_that_is_not_allowed(client, lead, eval_set, corp_dns, url, entries,
                                                                 says):
    for pattern, private in entries:
        AllowedEndpoint.objects.create(pattern=pattern, allow_private=private)
    assert client.login(username=lead.username, password=PASSWORD)
    page = client.post(reverse("evaluation:launch-run", args=["weather"]), _form(eval_set, endpoint_url=url))
    html = page.content.decode()
    assert page.status_code == 200 and says in _field_errors(html, "endpoint_url").replace("&#x27;", "'"), html[:3000]
    assert not EvalRun.objects.exists()


@pytest.mark.parametrize("url, entries, says", REFUSED)
def test_the_api_refuses_an_endpoint_that_is_not_allowed(client, lead, eval_set, corp_dns, url, entries, says):
    for pattern, private in entries:
        AllowedEndpoint.objects.create(pattern=pattern, allow_private=private)
    assert client.login(username=lead.username, password=PASSWORD)
    made = client.post(reverse("evaluation:api-eval-runs", args=["weather"]), {
        "eval_set": eval_set.pk, "model_source": "endpoint", "endpoint_url": url}, content_type="application/json")
    assert made.status_code == 400 and says in made.json()["endpoint_url"][0]
    assert not EvalRun.objects.exists()


def test_an_allowed_host_that_this_machine_cannot_resolve_launches_and_the_worker_checks_it(client, lead, eval_set):
    AllowedEndpoint.objects.create(pattern="gpu-box.invalid:8000", allow_private=True)
    assert client.login(username=lead.username, password=PASSWORD)
    page = client.post(reverse("evaluation:launch-run", args=["weather"]),
                       _form(eval_set, endpoint_url="http://gpu-box.invalid:8000/v1"))
    assert page.status_code == 302 and EvalRun.objects.get().endpoint_url == "http://gpu-box.invalid:8000/v1"


def test_an_allowed_endpoint_runs_end_to_end_with_only_its_entry_in_the_job_file(eval_set):
    with ChatServer(oracle([])) as other, ChatServer(lambda body: {"content": "fine"}) as server:
        server.allow()
        other.allow()
        run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.ENDPOINT,
                               endpoint_url=server.url, endpoint_model="m", gen=GenerationSettings(), limit=2,
                               enqueue=False)
        assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.done_items == 2 and run.failed_items == 0 and len(server.requests) == 2
    assert jobs.endpoint_allowlist_for(run) == [{"host": "127.0.0.1", "port": server.port, "private": True}]


def test_the_worker_refuses_a_run_whose_endpoint_left_the_allowlist_after_the_launch(eval_set, internal):
    entry = internal.allow()
    run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.ENDPOINT,
                           endpoint_url=internal.url, gen=GenerationSettings(), enqueue=False)
    entry.delete()
    assert jobs.run_eval_job(run.pk) == JobStatus.FAILED
    run.refresh_from_db()
    assert f"127.0.0.1:{internal.port} is not on the endpoint allowlist" in run.error
    assert internal.requests == [] and not run.results.exists()


def test_the_runner_checks_the_address_of_every_connection(eval_set, internal):
    """An admin withdrew private addresses after the launch: the entry still lists the host, so the
    run starts, and its runner (a separate process) refuses every request by address."""
    entry = internal.allow()
    run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.ENDPOINT,
                           endpoint_url=internal.url, gen=GenerationSettings(retries=0), limit=2, enqueue=False)
    AllowedEndpoint.objects.filter(pk=entry.pk).update(allow_private=False)
    assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.failed_items == 2 and internal.requests == []
    for r in run.results.all():
        assert "refused: 127.0.0.1 is a loopback address" in r.error and r.raw_output == "" and SECRET not in r.error


def test_a_run_row_written_past_the_launch_checks_is_refused_by_the_worker(eval_set):
    run = EvalRun.objects.create(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.ENDPOINT,
                                 endpoint_url="http://169.254.169.254/latest/meta-data/", total_items=4,
                                 settings=GenerationSettings().to_dict(), output_dir=str(jobs.runs_root() / "x"))
    assert jobs.run_eval_job(run.pk) == JobStatus.FAILED
    run.refresh_from_db()
    assert "169.254.169.254 is not on the endpoint allowlist" in run.error and not run.results.exists()


def test_the_allowlist_setting_adds_entries_for_a_deployment(settings, eval_set):
    with ChatServer(lambda body: {"content": "fine"}) as server:
        settings.ENDPOINT_ALLOWLIST = f"vllm:8000 private, 127.0.0.1:{server.port} private"
        run = jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.ENDPOINT,
                               endpoint_url=server.url, gen=GenerationSettings(), limit=1, enqueue=False)
        assert jobs.run_eval_job(run.pk) == JobStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.done_items == 1 and run.failed_items == 0 and len(server.requests) == 1
    settings.ENDPOINT_ALLOWLIST = f"127.0.0.1:{server.port}"  # without "private": loopback refused
    assert "a loopback address" in jobs.endpoint_url_error(server.url)


def test_a_malformed_allowlist_setting_is_reported_by_manage_py_check(settings):
    settings.ENDPOINT_ALLOWLIST = "vllm:8000 public"
    errors = [e for e in checks.run_checks() if e.id == "evaluation.E001"]
    assert len(errors) == 1 and "'vllm:8000 public'" in errors[0].msg
    settings.ENDPOINT_ALLOWLIST = "vllm:8000 private"
    assert not [e for e in checks.run_checks() if e.id == "evaluation.E001"]


# --- Django admin --------------------------------------------------------------------------------------

def test_an_admin_adds_an_entry_in_one_spelling_and_is_recorded(client, admin_user_):
    assert client.login(username=admin_user_.username, password=PASSWORD)
    url = reverse("admin:evaluation_allowedendpoint_add")
    page = client.post(url, {"pattern": "GPU-Box:8000", "allow_private": "on", "note": "the team's vLLM"})
    assert page.status_code == 302, page.content.decode()[:2000]
    entry = AllowedEndpoint.objects.get()
    assert (entry.pattern, entry.allow_private, entry.added_by) == ("gpu-box:8000", True, admin_user_)


@pytest.mark.parametrize("pattern, private, says", [
    ("*.example.com", True, "one exact host"),
    ("http://gpu-box:8000/v1", False, "without a scheme"),
    ("gpu-box:99999", False, "port must be a number"),
])
def test_the_admin_refuses_an_entry_that_does_not_read(client, admin_user_, pattern, private, says):
    assert client.login(username=admin_user_.username, password=PASSWORD)
    data = {"pattern": pattern, "note": ""}
    if private:
        data["allow_private"] = "on"
    page = client.post(reverse("admin:evaluation_allowedendpoint_add"), data)
    assert page.status_code == 200 and says in page.content.decode() and not AllowedEndpoint.objects.exists()


def test_leads_cannot_edit_the_allowlist(client, lead):
    assert client.login(username=lead.username, password=PASSWORD)
    page = client.post(reverse("admin:evaluation_allowedendpoint_add"), {"pattern": "169.254.169.254"})
    assert page.status_code == 302 and "/admin/login/" in page["Location"]
    assert not AllowedEndpoint.objects.exists()
