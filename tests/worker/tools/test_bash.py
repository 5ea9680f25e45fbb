from __future__ import annotations

import os
from pathlib import Path

import pytest

from mamba_worker.tools import BashPolicy, FilesystemSecurity, SandboxRule, SandboxViolation, run_bash
from mamba_worker.tools._bash_policy import command_names
from tests._support.wait import wait_until


def is_dead(pid: int) -> bool:
    """Gone, or a zombie waiting for a parent that is not us (which no longer runs anything)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_returns_stdout_stderr_and_exit_code() -> None:
    result = run_bash("echo out; echo err >&2; exit 3")

    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    assert not result.timed_out and not result.truncated
    assert result.return_code == 3


def test_stdin_is_empty_so_readers_do_not_hang() -> None:
    assert run_bash("cat; echo done", timeout=30).stdout == "done\n"


def test_timeout_kills_the_whole_process_group() -> None:
    result = run_bash("sleep 300 & echo $!; wait", timeout=0.5)

    assert result.timed_out
    assert result.exit_code == -9
    grandchild = int(result.stdout)
    wait_until(lambda: is_dead(grandchild), timeout=10, what="the background sleep to die")


def test_background_processes_end_with_the_command() -> None:
    result = run_bash("sleep 300 & echo $!", timeout=60)

    assert not result.timed_out
    assert result.exit_code == 0
    wait_until(lambda: is_dead(int(result.stdout)), timeout=10, what="the background sleep to die")


def test_long_output_is_cut_in_the_middle_with_a_marker() -> None:
    result = run_bash("seq 1 20000", max_output_chars=100)

    assert result.truncated
    assert result.stdout.startswith("1\n2\n3\n")
    assert result.stdout.endswith("19999\n20000\n")
    assert "bytes of output truncated" in result.stdout
    assert len(result.stdout) < 200


def test_output_within_the_limit_is_untouched() -> None:
    result = run_bash("printf 'h\\u00e9llo'", max_output_chars=5)

    assert (result.stdout, result.truncated) == ("héllo", False)


def test_secrets_do_not_reach_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MAMBA_MODEL_BACKEND__API_KEY",
        "OPENAI_API_KEY",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
    ):
        monkeypatch.setenv(name, "s3cr3t-value")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")

    env = run_bash("env").stdout

    assert "s3cr3t-value" not in env
    assert "PATH=" in env
    assert "LC_ALL=C.UTF-8" in env


def test_policy_can_pass_and_set_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", "/venv")
    policy = BashPolicy(pass_env=["VIRTUAL_ENV"], env={"MODE": "test"})

    assert run_bash('echo "$VIRTUAL_ENV $MODE"', policy=policy).stdout == "/venv test\n"


def test_runs_in_the_sandbox_with_home_there(tmp_path: Path) -> None:
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path)

    assert run_bash('pwd; echo "$HOME"', security=security).stdout == f"{tmp_path.resolve()}\n{tmp_path.resolve()}\n"


def test_cwd_is_resolved_inside_the_sandbox(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path)

    assert run_bash("pwd", cwd="sub", security=security).stdout == f"{tmp_path.resolve() / 'sub'}\n"


def test_a_missing_cwd_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_bash("pwd", cwd="missing", security=FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path))


def test_cwd_without_security_is_used_as_given(tmp_path: Path) -> None:
    assert run_bash("pwd", cwd=tmp_path).stdout == f"{tmp_path}\n"


def test_read_only_security_refuses_commands_without_an_allow_list(tmp_path: Path) -> None:
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path, read_only=True)

    with pytest.raises(SandboxViolation) as caught:
        run_bash("touch x", security=security)

    assert caught.value.rule is SandboxRule.READ_ONLY
    assert run_bash("ls", security=security, policy=BashPolicy(allowed_commands=["ls"])).exit_code == 0
    assert not (tmp_path / "x").exists()


def test_allow_list_accepts_a_pipeline_of_allowed_commands() -> None:
    policy = BashPolicy(allowed_commands=["echo", "tr"])

    assert run_bash("echo abc | tr a-z A-Z", policy=policy).stdout == "ABC\n"


@pytest.mark.parametrize(
    "command",
    ["rm -rf x", "echo a; rm x", "echo a && rm x", "echo a | rm", "echo a\nrm x", "(rm x)", "FOO=1 rm x", "/bin/rm x"],
)
def test_allow_list_refuses_any_other_command(command: str, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep")
    policy = BashPolicy(allowed_commands=["echo"])

    with pytest.raises(SandboxViolation) as caught:
        run_bash(command, cwd=tmp_path, policy=policy)

    assert (caught.value.rule, caught.value.path) == (SandboxRule.COMMAND_NOT_ALLOWED, "rm")
    assert (tmp_path / "x").read_text() == "keep"


@pytest.mark.parametrize("command", ["echo $(rm x)", "echo `rm x`", "diff <(rm x) y", 'echo "unclosed'])
def test_allow_list_refuses_what_it_cannot_see(command: str) -> None:
    with pytest.raises(SandboxViolation) as caught:
        run_bash(command, policy=BashPolicy(allowed_commands=["echo", "diff"]))

    assert caught.value.rule is SandboxRule.UNPARSABLE_COMMAND


def test_deny_list_refuses_a_denied_command_anywhere_in_the_line() -> None:
    policy = BashPolicy(denied_commands=["curl"])

    with pytest.raises(SandboxViolation) as caught:
        run_bash("echo hi && /usr/bin/curl http://127.0.0.1:9", policy=policy)

    assert caught.value.rule is SandboxRule.COMMAND_DENIED
    assert run_bash("echo hi", policy=policy).stdout == "hi\n"


def test_max_timeout_lowers_a_larger_request() -> None:
    result = run_bash("sleep 300", timeout=600, policy=BashPolicy(max_timeout=0.3))

    assert result.timed_out


def test_an_empty_command_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        run_bash("   ")


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("ls -la", ["ls"]),
        ("cd src && make test | tee log", ["cd", "make", "tee"]),
        ("A=1 B=2 python x.py", ["python"]),
        ("2>/dev/null grep x > out.txt", ["grep"]),
        ("if true; then rm x; fi", ["true", "rm"]),
        ("for f in *.py; do wc -l $f; done", ["wc"]),
        ("echo 'a; rm b'", ["echo"]),
        ("a & b", ["a", "b"]),
    ],
)
def test_command_names(line: str, names: list[str]) -> None:
    assert command_names(line) == names


def test_the_environment_is_not_inherited_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASH_ENV", os.devnull)
    monkeypatch.setenv("SOME_SETTING", "x")

    env = run_bash("env").stdout

    assert "BASH_ENV" not in env
    assert "SOME_SETTING" not in env
