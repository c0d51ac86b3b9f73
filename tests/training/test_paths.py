"""Confining user-given paths (training.paths, pure): realpath, containment, one message for all refusals."""

from __future__ import annotations

import os

import pytest

from training.chat_templates import TemplateError, get_template
from training.paths import REFUSED, PathRefused, cli_path, confine, is_inside, length_error
from training.runner import model_reference_error


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "models"
    (r / "m").mkdir(parents=True)
    (r / "m" / "config.json").write_text("{}")
    return r


def test_a_path_inside_a_root_is_its_real_path(root):
    assert confine(str(root / "m"), [root]) == os.path.realpath(root / "m")
    assert confine(str(root / "m" / ".." / "m"), [root]) == os.path.realpath(root / "m")


@pytest.mark.parametrize("outside", ["/etc/passwd", "/etc/no-such-file", "/proc/self/environ", "/", "relative/x"])
def test_outside_paths_are_refused_with_one_message_whether_they_exist_or_not(root, outside):
    with pytest.raises(PathRefused) as e:
        confine(outside, [root])
    assert e.value.message == REFUSED


def test_dot_dot_and_a_sibling_with_the_roots_name_as_prefix_are_outside(root, tmp_path):
    (tmp_path / "models-evil").mkdir()
    for spec in (str(root / ".." / "secret_key"), str(tmp_path / "models-evil")):
        with pytest.raises(PathRefused):
            confine(spec, [root])


def test_a_symlink_inside_a_root_pointing_outside_is_refused(root, tmp_path):
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    (root / "passwd").symlink_to("/etc/passwd")
    for spec in (root / "escape", root / "escape" / "x", root / "passwd"):
        with pytest.raises(PathRefused) as e:
            confine(str(spec), [root])
        assert e.value.message == REFUSED
    assert not is_inside(str(root / "passwd"), [root])


def test_a_root_that_is_itself_a_symlink_still_contains_its_folders(root, tmp_path):
    link = tmp_path / "link-to-models"
    link.symlink_to(root)
    assert confine(str(link / "m"), [link]) == os.path.realpath(root / "m")


def test_overlong_names_and_paths_are_refused_as_too_long_not_as_an_os_error(root):
    assert "255" in length_error("/x/" + "a" * 300)
    assert "4095" in length_error("/x" * 3000)
    with pytest.raises(PathRefused, match="too long"):
        confine(str(root / ("a" * 300)), [root])


def test_a_template_path_needs_roots_when_roots_are_given(root, tmp_path):
    (root / "t.jinja").write_text("{{ messages }}")
    assert get_template(str(root / "t.jinja"), roots=[root]).source == "custom"
    for spec in ("/etc/passwd", "/etc/no-such-file", "/proc/self/environ"):
        with pytest.raises(TemplateError) as e:
            get_template(spec, roots=[root])
        assert str(e.value) == REFUSED
    assert get_template("qwen3_training", roots=[root]).name == "qwen3_training"  # registry names are not paths


def test_a_model_reference_is_a_hub_id_or_a_folder_inside_the_roots(root):
    assert model_reference_error("Qwen/Qwen3-0.6B", roots=[root]) is None
    assert model_reference_error(str(root / "m"), roots=[root]) is None
    assert "No folder" in model_reference_error(str(root / "missing"), roots=[root])  # inside: say what's wrong
    existing, missing = model_reference_error("/etc", roots=[root]), model_reference_error("/no/such", roots=[root])
    assert existing == missing and existing.startswith("Not an allowed path")


def test_a_long_model_path_is_a_message_not_an_os_error():
    long_path = "/models/" + "x" * 300
    assert "too long" in model_reference_error(long_path)
    assert "too long" in model_reference_error(long_path, roots=["/models"])


def test_the_command_line_makes_existing_relative_paths_absolute(root, monkeypatch):
    monkeypatch.chdir(root.parent)
    assert cli_path("models/m") == str(root / "m")
    assert cli_path("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B" and cli_path("qwen3") == "qwen3"
