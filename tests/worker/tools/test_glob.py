from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from mamba_worker.tools import FilesystemSecurity, glob_search
from tests.worker.tools.conftest import Layout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for path, text in {
        "setup.py": "",
        "src/app/__init__.py": "",
        "src/app/main.py": "",
        "src/app/data.json": "{}",
        "src/lib/util.py": "",
        "src/lib/util_test.py": "",
        "docs/index.md": "",
        ".github/workflows/ci.yml": "",
        ".hidden.py": "",
        "src/.cache/x.py": "",
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_double_star_finds_files_at_every_depth(project: Path) -> None:
    assert glob_search("**/*.py", root_dir=project) == [
        f"{project}/setup.py",
        f"{project}/src/app/__init__.py",
        f"{project}/src/app/main.py",
        f"{project}/src/lib/util.py",
        f"{project}/src/lib/util_test.py",
    ]


def test_results_are_relative_when_root_dir_is_the_default(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)

    assert glob_search("src/*/*.json") == ["src/app/data.json"]


@pytest.mark.parametrize(
    "pattern",
    ["*.py", "src/*", "src/**/*.py", "**/util*.py", "src/*/[mu]*.py", "src/*/[!m]*.py", "**/app/*", "s?c/**/*.json"],
)
def test_matches_what_the_standard_glob_finds(project: Path, pattern: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)

    expected = sorted(glob.glob(pattern, recursive=True))

    assert sorted(glob_search(pattern)) == expected


def test_hidden_names_match_only_when_asked_or_spelled_out(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)

    assert ".hidden.py" not in glob_search("**/*.py")
    assert {".hidden.py", "src/.cache/x.py"} <= set(glob_search("**/*.py", include_hidden=True))
    assert glob_search(".github/**/*.yml") == [".github/workflows/ci.yml"]


def test_a_trailing_slash_matches_directories_only(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)

    assert glob_search("src/*/") == ["src/app", "src/lib"]


def test_max_results_caps_the_list(project: Path) -> None:
    assert len(glob_search("**/*", root_dir=project, max_results=3)) == 3


def test_a_literal_pattern_finds_one_path_or_none(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)

    assert glob_search("src/app/main.py") == ["src/app/main.py"]
    assert glob_search("src/app/missing.py") == []
    assert glob_search("missing/*.py") == []


def test_a_missing_root_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        glob_search("*", root_dir=tmp_path / "missing")


def test_an_absolute_pattern_works_without_a_sandbox(project: Path) -> None:
    assert glob_search(f"{project}/src/lib/*_test.py") == [f"{project}/src/lib/util_test.py"]


def test_an_invalid_set_is_a_value_error(project: Path) -> None:
    with pytest.raises(ValueError, match="invalid glob pattern"):
        glob_search("[z-a]", root_dir=project)


def test_in_a_sandbox_links_are_not_followed_and_outside_never_appears(layout: Layout) -> None:
    results = glob_search("**/*", security=layout.security, include_hidden=True)

    assert "link_inside.txt" in results
    assert "sub/code.py" in results
    assert not any("secret" in path or "link_to_outside" in path or "relative_escape" in path for path in results)


def test_in_a_sandbox_patterns_are_relative_to_the_base_directory(layout: Layout, in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "decoy.py").write_text("")

    assert glob_search("**/*.py", security=layout.security) == ["sub/code.py"]


def test_a_symlink_cycle_does_not_loop(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path)

    assert glob_search("**/*", security=security) == ["a", "a/loop"]
    assert os.path.islink(tmp_path / "a" / "loop")
