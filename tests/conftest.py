"""Shared fixtures: the tiny model, the shared third-party data, users with each role."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared").resolve()
FIXTURES = SHARED / "fixtures"
TOKENIZERS = SHARED / "tokenizers"

# Built once per machine and reused across runs and xdist workers (the builder is deterministic
# and skips work when the folder is complete).
# tqdm (transformers' loading bars) starts a monitor thread that outlives the test that loaded a model
# in-process (the judge CLI, the local generator). A test process running other threads may not
# fork (annotate.ingest.sqlite._can_fork), so the parallel-import tests that run after it in the
# same xdist worker would skip. No monitor: nothing to outlive.
try:
    import tqdm

    tqdm.tqdm.monitor_interval = 0
except ImportError:  # pragma: no cover - tqdm comes with transformers
    pass

TINY_MODEL_CACHE = Path(os.environ.get("STUDIO_TEST_CACHE", ROOT / "var" / "test-cache")) / "tiny-qwen3"


# CI runs each property test on one fixed sequence of examples (derandomize), so a red CI is a
# regression, not a new random draw; a developer's run draws new examples each time and keeps the
# failing ones in .hypothesis/ to replay.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a clear message where it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the shared third-party data at {p} (absent in this checkout)")
    return p


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from filelock import FileLock

    from training.tiny_model import build_tiny_model

    TINY_MODEL_CACHE.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TINY_MODEL_CACHE) + ".lock"):
        return build_tiny_model(TINY_MODEL_CACHE)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """The default hasher costs ~1 s per user on these machines; tests don't need its strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# The tests' admin-set model roots: the tiny model's cache and the shared tokenizers (user-given
# paths must lie in these or the data dir's models/, runs/ and snapshots/ folders). Processes the
# tests start get them as STUDIO_MODEL_ROOTS.
TEST_MODEL_ROOTS = [TINY_MODEL_CACHE.parent, TOKENIZERS]
MODEL_ROOTS_ENV = os.pathsep.join(str(p) for p in TEST_MODEL_ROOTS)


@pytest.fixture(autouse=True)
def _model_roots(settings):
    settings.MODEL_ROOTS = list(TEST_MODEL_ROOTS)


# Users and a project with each role: the shared base for permission and page tests. -------
PASSWORD = "pw-for-tests-1"


@pytest.fixture
def project(db):
    from annotate.models import Project

    return Project.objects.create(name="Weather bot", slug="weather")


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    def make(username: str, role: str | None = None, project=None, superuser: bool = False):
        from annotate.models import Membership

        user = get_user_model().objects.create_user(username, password=PASSWORD, is_superuser=superuser,
                                                    is_staff=superuser)
        if role and project is not None:
            Membership.objects.create(user=user, project=project, role=role)
        return user

    return make


@pytest.fixture
def admin_user_(make_user):
    return make_user("root", superuser=True)


@pytest.fixture
def lead(make_user, project):
    return make_user("lena", "lead", project)


@pytest.fixture
def annotator(make_user, project):
    return make_user("ann", "annotator", project)


@pytest.fixture
def outsider(make_user, project):
    from annotate.models import Project

    other = Project.objects.create(name="Other", slug="other")
    return make_user("otto", "lead", other)


@pytest.fixture
def demo_trajectories(project):
    """The demo trajectories (every case type) written into ``project``."""
    from annotate.demo import TOOLS, demo_trajectories
    from annotate.models import Tool
    from annotate.ingest.writer import write_trajectories

    for spec in TOOLS:
        Tool.objects.create(project=project, name=spec["name"], description=spec["description"],
                            parameters=spec["parameters"])
    return write_trajectories(project, demo_trajectories())
