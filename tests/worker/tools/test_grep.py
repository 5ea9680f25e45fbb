from __future__ import annotations

import re
from pathlib import Path

import pytest

from mamba_worker.tools import FilesystemSecurity, GrepMatch, SandboxViolation, grep_search
from tests.worker.tools.conftest import Layout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("import os\n\ndef alpha():\n    return 1\n\ndef beta():\n    return 2\n")
    (root / "pkg" / "b.txt").write_text("def not_python\n")
    (root / "pkg" / "blob.bin").write_bytes(b"def hidden\x00binary\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "lib.py").write_text("def vendored():\n")
    return root


def test_finds_lines_with_numbers_and_context(project: Path) -> None:
    matches = grep_search(pattern=r"def \w+", path=project, file_pattern="*.py", context_lines=2)

    assert matches == [
        GrepMatch(
            path=f"{project}/pkg/a.py",
            line_number=3,
            line="def alpha():",
            context_before=["import os", ""],
            context_after=["    return 1", ""],
        ),
        GrepMatch(
            path=f"{project}/pkg/a.py",
            line_number=6,
            line="def beta():",
            context_before=["    return 1", ""],
            context_after=["    return 2"],
        ),
    ]


def test_file_pattern_filters_by_name(project: Path) -> None:
    assert [m.path for m in grep_search("def", project, file_pattern="*.txt")] == [f"{project}/pkg/b.txt"]


def test_file_pattern_with_a_slash_matches_the_relative_path(project: Path) -> None:
    assert {m.line for m in grep_search("def", project, file_pattern="pkg/*.py")} == {"def alpha():", "def beta():"}


def test_binary_files_are_skipped(project: Path) -> None:
    assert not any(m.path.endswith("blob.bin") for m in grep_search("def", project))


def test_hidden_directories_are_skipped_unless_asked(project: Path) -> None:
    assert not any(".venv" in m.path for m in grep_search("def", project))
    assert any(".venv" in m.path for m in grep_search("def", project, include_hidden=True))


def test_ignore_case(project: Path) -> None:
    assert grep_search("IMPORT", project) == []
    assert len(grep_search("IMPORT", project, ignore_case=True)) == 1


def test_max_results_caps_the_matches(project: Path) -> None:
    assert len(grep_search("return", project, max_results=1)) == 1


def test_a_single_file_can_be_searched(project: Path) -> None:
    assert [m.line_number for m in grep_search("return", project / "pkg" / "a.py")] == [4, 7]


def test_an_invalid_regex_raises_re_error(project: Path) -> None:
    with pytest.raises(re.error):
        grep_search("def (", project)


def test_a_missing_path_raises_file_not_found(project: Path) -> None:
    with pytest.raises(FileNotFoundError):
        grep_search("x", project / "missing")


def test_long_lines_are_cut_with_a_marker(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("x" * 1500 + "\n")

    [match] = grep_search("x", tmp_path)

    assert match.line == "x" * 1000 + "... [500 more characters]"


def test_files_over_the_size_limit_are_skipped_in_a_directory_search(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("needle " * 10)
    (tmp_path / "small.txt").write_text("needle\n")
    security = FilesystemSecurity(base_directory=tmp_path, max_file_size=20)

    assert [m.path for m in grep_search("needle", security=security)] == ["small.txt"]


def test_a_sandboxed_directory_search_skips_links_and_hard_links_out(layout: Layout) -> None:
    (layout.sandbox / "notes.txt").write_text("SECRET plans inside\n")

    matches = grep_search("SECRET", security=layout.security)

    assert [m.path for m in matches] == ["notes.txt"]


def test_a_directly_named_refused_file_raises(layout: Layout) -> None:
    with pytest.raises(SandboxViolation):
        grep_search("SECRET", "hardlink.txt", security=layout.security)
