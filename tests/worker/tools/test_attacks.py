"""The attack corpus: every attempt to reach outside the sandbox is refused, and nothing outside changes."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from mamba_worker.tools import (
    BashPolicy,
    SandboxRule,
    SandboxViolation,
    append_file,
    copy_file,
    delete_file,
    file_info,
    glob_search,
    grep_search,
    list_directory,
    move_file,
    read_file,
    run_bash,
    write_file,
)
from tests.worker.tools.conftest import Layout

Attack = Callable[[Layout], Any]

R = SandboxRule

ATTACKS: list[tuple[str, Attack, SandboxRule]] = [
    # Traversal
    ("read ../", lambda L: read_file("../outside/secret.txt", security=L.security), R.OUTSIDE_SANDBOX),
    ("read sub/../../", lambda L: read_file("sub/../../outside/secret.txt", security=L.security), R.OUTSIDE_SANDBOX),
    ("read deep ../", lambda L: read_file("sub/" + "../" * 12 + "etc/passwd", security=L.security), R.OUTSIDE_SANDBOX),
    ("write ../", lambda L: write_file("../outside/secret.txt", "pwned", security=L.security), R.OUTSIDE_SANDBOX),
    ("write new ../", lambda L: write_file("../outside/new.txt", "pwned", security=L.security), R.OUTSIDE_SANDBOX),
    ("append ../", lambda L: append_file("../outside/secret.txt", "pwned", security=L.security), R.OUTSIDE_SANDBOX),
    ("delete ../", lambda L: delete_file("../outside/secret.txt", security=L.security), R.OUTSIDE_SANDBOX),
    ("info ../", lambda L: file_info("../outside/secret.txt", security=L.security), R.OUTSIDE_SANDBOX),
    ("list ..", lambda L: list_directory("..", security=L.security), R.OUTSIDE_SANDBOX),
    ("list ../outside", lambda L: list_directory("../outside", recursive=True, security=L.security), R.OUTSIDE_SANDBOX),
    ("grep ..", lambda L: grep_search("SECRET", "..", security=L.security), R.OUTSIDE_SANDBOX),
    ("write parent dir", lambda L: write_file("..", "x", security=L.security), R.OUTSIDE_SANDBOX),
    # Absolute paths and ~
    ("read absolute", lambda L: read_file(str(L.outside / "secret.txt"), security=L.security), R.OUTSIDE_SANDBOX),
    ("read /etc/passwd", lambda L: read_file("/etc/passwd", security=L.security), R.OUTSIDE_SANDBOX),
    ("write absolute", lambda L: write_file(str(L.outside / "x.txt"), "pwned", security=L.security), R.OUTSIDE_SANDBOX),
    ("read ~", lambda L: read_file("~/.bashrc", security=L.security), R.OUTSIDE_SANDBOX),
    ("read ~root", lambda L: read_file("~root/.bashrc", security=L.security), R.OUTSIDE_SANDBOX),
    ("list /", lambda L: list_directory("/", security=L.security), R.OUTSIDE_SANDBOX),
    ("grep absolute", lambda L: grep_search("SECRET", str(L.outside), security=L.security), R.OUTSIDE_SANDBOX),
    # Prefix and case tricks
    (
        "sibling with the same prefix",
        lambda L: read_file(str(L.evil_sibling / "secret.txt"), security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    ("sibling via ..", lambda L: read_file("../sandbox-evil/secret.txt", security=L.security), R.OUTSIDE_SANDBOX),
    (
        "upper-cased sandbox path",
        lambda L: read_file(str(L.sandbox).upper() + "/INSIDE.TXT", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    ("case-changed ..", lambda L: read_file("../OUTSIDE/secret.txt", security=L.security), R.OUTSIDE_SANDBOX),
    # Symbolic links
    ("read link to file", lambda L: read_file("link_to_outside_file.txt", security=L.security), R.OUTSIDE_SANDBOX),
    (
        "read through dir link",
        lambda L: read_file("link_to_outside_dir/secret.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "read through relative link",
        lambda L: read_file("relative_escape/secret.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "write through link to file",
        lambda L: write_file("link_to_outside_file.txt", "pwned", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "write through dir link",
        lambda L: write_file("link_to_outside_dir/new.txt", "pwned", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "write through dangling link",
        lambda L: write_file("dangling_out.txt", "pwned", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "append through link",
        lambda L: append_file("link_to_outside_file.txt", "pwned", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "mkdir through dir link",
        lambda L: write_file("link_to_outside_dir/made/new.txt", "x", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    ("info through link", lambda L: file_info("link_to_outside_file.txt", security=L.security), R.OUTSIDE_SANDBOX),
    ("list dir link", lambda L: list_directory("link_to_outside_dir", security=L.security), R.OUTSIDE_SANDBOX),
    ("grep dir link", lambda L: grep_search("SECRET", "link_to_outside_dir", security=L.security), R.OUTSIDE_SANDBOX),
    (
        "delete through dir link",
        lambda L: delete_file("link_to_outside_dir/secret.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    # Hard links
    ("read hard link", lambda L: read_file("hardlink.txt", security=L.security), R.HARD_LINK),
    ("write hard link", lambda L: write_file("hardlink.txt", "pwned", security=L.security), R.HARD_LINK),
    ("append hard link", lambda L: append_file("hardlink.txt", "pwned", security=L.security), R.HARD_LINK),
    ("copy hard link", lambda L: copy_file("hardlink.txt", "copied.txt", security=L.security), R.HARD_LINK),
    ("grep hard link", lambda L: grep_search("SECRET", "hardlink.txt", security=L.security), R.HARD_LINK),
    ("info hard link", lambda L: file_info("hardlink.txt", security=L.security), R.HARD_LINK),
    # Moves and copies: both ends are checked
    (
        "move from outside",
        lambda L: move_file("../outside/secret.txt", "stolen.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "move to outside",
        lambda L: move_file("inside.txt", "../outside/inside.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "move into dir link",
        lambda L: move_file("inside.txt", "link_to_outside_dir", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "move through dir link",
        lambda L: move_file("inside.txt", "link_to_outside_dir/moved.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "copy from outside",
        lambda L: copy_file("../outside/secret.txt", "stolen.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "copy from link",
        lambda L: copy_file("link_to_outside_file.txt", "stolen.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "copy to outside",
        lambda L: copy_file("inside.txt", "../outside/evil.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "copy over link to outside",
        lambda L: copy_file("inside.txt", "link_to_outside_file.txt", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "copy into dir link",
        lambda L: copy_file("inside.txt", "link_to_outside_dir", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    # Glob patterns that climb out
    ("glob ../", lambda L: glob_search("../outside/*", security=L.security), R.UNSAFE_PATTERN),
    ("glob **/../..", lambda L: glob_search("**/../../outside/*", security=L.security), R.UNSAFE_PATTERN),
    ("glob sub/../..", lambda L: glob_search("sub/../../*", security=L.security), R.UNSAFE_PATTERN),
    ("glob absolute", lambda L: glob_search(str(L.outside) + "/*", security=L.security), R.UNSAFE_PATTERN),
    ("glob /etc", lambda L: glob_search("/etc/*", security=L.security), R.UNSAFE_PATTERN),
    ("glob ~", lambda L: glob_search("~/*", security=L.security), R.UNSAFE_PATTERN),
    ("glob root_dir ..", lambda L: glob_search("*", root_dir="..", security=L.security), R.OUTSIDE_SANDBOX),
    (
        "glob root_dir absolute",
        lambda L: glob_search("**/*", root_dir=str(L.outside), security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "glob through dir link",
        lambda L: glob_search("link_to_outside_dir/**/*", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "glob root_dir link",
        lambda L: glob_search("*", root_dir="link_to_outside_dir", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    # Malformed names
    ("NUL byte", lambda L: read_file("inside.txt\x00.png", security=L.security), R.NUL_BYTE),
    ("NUL in write", lambda L: write_file("x\x00/../../outside/secret.txt", "pwned", security=L.security), R.NUL_BYTE),
    ("NUL in glob", lambda L: glob_search("*\x00", security=L.security), R.NUL_BYTE),
    ("long name", lambda L: write_file("a" * 300 + ".txt", "x", security=L.security), R.PATH_TOO_LONG),
    ("long path", lambda L: read_file("sub/" * 1100 + "x.txt", security=L.security), R.PATH_TOO_LONG),
    ("long traversal", lambda L: read_file("../" * 1500 + "etc/passwd", security=L.security), R.PATH_TOO_LONG),
    # Unicode and backslash look-alikes
    ("fullwidth dots", lambda L: read_file("\uff0e\uff0e/outside/secret.txt", security=L.security), R.UNSAFE_NAME),
    (
        "one-dot leader pair",
        lambda L: write_file("\u2024\u2024/outside/x.txt", "x", security=L.security),
        R.UNSAFE_NAME,
    ),
    ("fullwidth solidus", lambda L: read_file("..\uff0foutside\uff0fsecret.txt", security=L.security), R.UNSAFE_NAME),
    ("backslash traversal", lambda L: read_file("..\\outside\\secret.txt", security=L.security), R.UNSAFE_NAME),
    ("backslash in write", lambda L: write_file("sub\\..\\..\\x.txt", "x", security=L.security), R.UNSAFE_NAME),
    # The shell's working directory
    ("bash cwd ..", lambda L: run_bash("pwd", cwd="..", security=L.security), R.OUTSIDE_SANDBOX),
    (
        "bash cwd link",
        lambda L: run_bash("touch pwned", cwd="link_to_outside_dir", security=L.security),
        R.OUTSIDE_SANDBOX,
    ),
    (
        "bash command not allowed",
        lambda L: run_bash(f"rm -rf {L.outside}", security=L.security, policy=BashPolicy(allowed_commands=["ls"])),
        R.COMMAND_NOT_ALLOWED,
    ),
    (
        "bash hidden command",
        lambda L: run_bash(
            f"ls $(rm -rf {L.outside})", security=L.security, policy=BashPolicy(allowed_commands=["ls"])
        ),
        R.UNPARSABLE_COMMAND,
    ),
]


@pytest.mark.parametrize(("attack", "rule"), [(a, r) for _, a, r in ATTACKS], ids=[name for name, _, _ in ATTACKS])
def test_attack_is_refused_and_nothing_outside_changes(layout: Layout, attack: Attack, rule: SandboxRule) -> None:
    before = layout.digest_outside()

    with pytest.raises(SandboxViolation) as caught:
        attack(layout)

    assert caught.value.rule is rule
    assert layout.digest_outside() == before


def test_the_corpus_leaves_the_home_directory_alone(layout: Layout) -> None:
    # ~ is outside the sandbox (conftest points HOME at a temporary directory).
    home = os.path.expanduser("~")
    with pytest.raises(SandboxViolation):
        write_file("~/planted.txt", "x", security=layout.security)
    assert not os.path.exists(os.path.join(home, "planted.txt"))
