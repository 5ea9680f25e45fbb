"""Spec README, "Built-in Tools": the tool table and both examples, as written.

Substitution: ``"/project"`` and ``"/safe/path"`` are temporary directories (passed as strings,
as the spec does); the working directory is a temporary one holding ``config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SPEC_TOOL_TABLE = {
    "read_file": "Read contents of a file",
    "write_file": "Write or overwrite a file",
    "append_file": "Append content to a file",
    "list_directory": "List contents of a directory with metadata",
    "file_info": "Get file or directory metadata (size, modified, created)",
    "delete_file": "Delete a file",
    "move_file": "Move or rename a file",
    "copy_file": "Copy a file",
    "glob_search": "Find files matching a glob pattern (e.g., **/*.py)",
    "grep_search": "Search file contents for a pattern with context lines",
    "run_bash": "Execute a shell command with timeout support",
}


@pytest.fixture
def project(in_tmp_cwd: Path) -> str:
    """A small Python project, and a config.json in the working directory."""
    (in_tmp_cwd / "config.json").write_text(json.dumps({"debug": True}))
    root = in_tmp_cwd / "project"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "utils.py").write_text("import os\n\n\ndef helper(x):\n    return x * 2\n\nVALUE = 1\n")
    (root / "main.py").write_text("def main():\n    pass\n")
    (root / "README.md").write_text("# project\n")
    return str(root)


def test_every_tool_of_the_table_is_exported_with_its_name() -> None:
    import mamba_worker.tools as tools

    for name in SPEC_TOOL_TABLE:
        tool = getattr(tools, name)
        assert tool.name == name
        assert callable(tool)
        assert tool.description  # what the model is told the tool does


def test_spec_examples(project: str, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker.tools import (
        glob_search,
        grep_search,
        list_directory,
        read_file,
        run_bash,
        write_file,
    )

    # File operations
    content = read_file("config.json")
    write_file("output.txt", "Hello, World!")
    entries = list_directory(project, recursive=True)
    # Search for files by pattern
    py_files = glob_search("**/*.py", root_dir=project)
    # Search file contents
    matches = grep_search(
        pattern=r"def \w+",
        path=project,
        file_pattern="*.py",
        context_lines=2,
    )
    # Run shell commands
    result = run_bash("ls -la", timeout=30)
    print(result.stdout)

    assert json.loads(content) == {"debug": True}
    assert Path("output.txt").read_text() == "Hello, World!"
    assert {entry.name for entry in entries} == {"src", "pkg", "utils.py", "main.py", "README.md"}
    assert sorted(py_files) == [str(Path(project, "main.py")), str(Path(project, "src/pkg/utils.py"))]
    found = {(Path(match.path).name, match.line) for match in matches}
    assert found == {("utils.py", "def helper(x):"), ("main.py", "def main():")}
    helper = next(match for match in matches if match.line == "def helper(x):")
    assert helper.context_before == ["", ""] and helper.context_after == ["    return x * 2", ""]
    assert result.exit_code == 0
    out = capsys.readouterr().out
    assert "config.json" in out and "output.txt" in out


def test_other_tools_of_the_table(project: str) -> None:
    from mamba_worker.tools import append_file, copy_file, delete_file, file_info, move_file, read_file, write_file

    write_file("log.txt", "one\n")
    append_file("log.txt", "two\n")
    assert read_file("log.txt") == "one\ntwo\n"
    info = file_info("log.txt")
    assert info.size == 8 and info.kind == "file" and info.modified is not None and info.created is not None
    copy_file("log.txt", "copy.txt")
    move_file("copy.txt", "moved.txt")
    assert read_file("moved.txt") == "one\ntwo\n" and not Path("copy.txt").exists()
    delete_file("moved.txt")
    assert not Path("moved.txt").exists()


def test_run_bash_timeout(in_tmp_cwd: Path) -> None:
    from mamba_worker.tools import run_bash

    result = run_bash("sleep 5", timeout=0.5)
    assert result.timed_out and result.exit_code != 0


def test_security_context(in_tmp_cwd: Path) -> None:
    safe = in_tmp_cwd / "safe" / "path"
    safe.mkdir(parents=True)
    (safe / "data.txt").write_text("inside the sandbox")
    (safe / "secret.env").write_text("KEY=1")
    (in_tmp_cwd / "outside.txt").write_text("outside")

    from mamba_worker.tools import read_file
    from mamba_worker.tools.filesystem import FilesystemSecurity

    security = FilesystemSecurity(
        sandbox_mode=True,
        base_directory=str(safe),
        allowed_extensions=[".txt", ".json", ".py"],
    )
    # Pass security context to tools
    content = read_file("data.txt", security=security)

    assert content == "inside the sandbox"
    from mamba_worker.tools import SandboxViolation

    with pytest.raises(SandboxViolation):
        read_file("../../outside.txt", security=security)
    with pytest.raises(SandboxViolation):
        read_file("secret.env", security=security)
