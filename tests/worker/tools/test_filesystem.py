from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mamba_worker.tools import (
    FilesystemSecurity,
    SandboxRule,
    SandboxViolation,
    append_file,
    copy_file,
    delete_file,
    file_info,
    list_directory,
    move_file,
    read_file,
    write_file,
)
from tests.worker.tools.conftest import Layout


@pytest.fixture
def box(tmp_path: Path) -> FilesystemSecurity:
    base = tmp_path / "box"
    base.mkdir()
    return FilesystemSecurity(sandbox_mode=True, base_directory=base)


def base(security: FilesystemSecurity) -> Path:
    assert security.base_directory is not None
    return security.base_directory


# -- read_file -------------------------------------------------------------------------------------


def test_read_file_without_security_reads_relative_to_the_working_directory(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "config.json").write_text('{"a": 1}')

    assert read_file("config.json") == '{"a": 1}'


def test_read_file_accepts_a_path_object(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")

    assert read_file(tmp_path / "a.txt") == "x"


def test_read_file_in_a_sandbox_resolves_relative_to_the_base_directory(
    box: FilesystemSecurity, in_tmp_cwd: Path
) -> None:
    (in_tmp_cwd / "data.txt").write_text("cwd copy")
    (base(box) / "data.txt").write_text("sandbox copy")

    assert read_file("data.txt", security=box) == "sandbox copy"


def test_read_file_missing_names_the_path_as_given(box: FilesystemSecurity) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        read_file("notes.txt", security=box)

    assert caught.value.filename == "notes.txt"


def test_read_file_of_a_directory_raises_is_a_directory(box: FilesystemSecurity) -> None:
    (base(box) / "d").mkdir()

    with pytest.raises(IsADirectoryError):
        read_file("d", security=box)


def test_read_file_follows_a_symlink_that_stays_inside(layout: Layout) -> None:
    assert read_file("link_inside.txt", security=layout.security) == "hello from inside\n"


def test_read_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 11)
    security = FilesystemSecurity(base_directory=tmp_path, max_file_size=10)

    with pytest.raises(SandboxViolation) as caught:
        read_file("big.txt", security=security)

    assert caught.value.rule is SandboxRule.FILE_TOO_LARGE
    assert caught.value.path == "big.txt"


def test_read_file_of_a_fifo_is_refused_instead_of_blocking(box: FilesystemSecurity) -> None:
    os.mkfifo(base(box) / "pipe.txt")

    with pytest.raises(SandboxViolation) as caught:
        read_file("pipe.txt", security=box)

    assert caught.value.rule is SandboxRule.NOT_A_REGULAR_FILE


def test_read_file_with_a_disallowed_extension_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("-----BEGIN")
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path, allowed_extensions=[".txt"])

    with pytest.raises(SandboxViolation) as caught:
        read_file("key.pem", security=security)

    assert caught.value.rule is SandboxRule.EXTENSION_NOT_ALLOWED


def test_extension_check_uses_the_symlink_target(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("-----BEGIN")
    (tmp_path / "notes.txt").symlink_to(tmp_path / "key.pem")
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path, allowed_extensions=[".txt"])

    with pytest.raises(SandboxViolation) as caught:
        read_file("notes.txt", security=security)

    assert caught.value.rule is SandboxRule.EXTENSION_NOT_ALLOWED


def test_extensions_compare_without_case(tmp_path: Path) -> None:
    (tmp_path / "README.TXT").write_text("hi")
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path, allowed_extensions=["txt"])

    assert read_file("README.TXT", security=security) == "hi"


def test_read_file_of_non_utf8_content_raises_unicode_decode_error(tmp_path: Path) -> None:
    (tmp_path / "bin.dat").write_bytes(b"\xff\xfe\x00")

    with pytest.raises(UnicodeDecodeError):
        read_file(tmp_path / "bin.dat")


# -- write_file / append_file ---------------------------------------------------------------------


def test_write_file_creates_parents_and_reports_the_bytes(box: FilesystemSecurity) -> None:
    message = write_file("out/deep/output.txt", "Hello, World!", security=box)

    assert (base(box) / "out" / "deep" / "output.txt").read_text() == "Hello, World!"
    assert message == "wrote 13 bytes to out/deep/output.txt"


def test_write_file_replaces_existing_content(box: FilesystemSecurity) -> None:
    (base(box) / "a.txt").write_text("a much longer original text")

    write_file("a.txt", "short", security=box)

    assert (base(box) / "a.txt").read_text() == "short"


def test_write_file_without_create_parents_fails_on_a_missing_directory(box: FilesystemSecurity) -> None:
    with pytest.raises(FileNotFoundError):
        write_file("missing/a.txt", "x", create_parents=False, security=box)


def test_write_file_in_read_only_mode_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("original")
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path, read_only=True)

    with pytest.raises(SandboxViolation) as caught:
        write_file("a.txt", "changed", security=security)

    assert caught.value.rule is SandboxRule.READ_ONLY
    assert (tmp_path / "a.txt").read_text() == "original"


def test_write_file_over_the_limit_leaves_the_old_content(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("original")
    security = FilesystemSecurity(base_directory=tmp_path, max_file_size=10)

    with pytest.raises(SandboxViolation) as caught:
        write_file("a.txt", "x" * 11, security=security)

    assert caught.value.rule is SandboxRule.FILE_TOO_LARGE
    assert (tmp_path / "a.txt").read_text() == "original"


def test_write_file_with_a_disallowed_extension_creates_nothing(tmp_path: Path) -> None:
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path, allowed_extensions=[".txt"])

    with pytest.raises(SandboxViolation):
        write_file("run.sh", "rm -rf /", security=security)

    assert not (tmp_path / "run.sh").exists()


def test_write_file_to_the_base_directory_itself_is_a_directory_error(box: FilesystemSecurity) -> None:
    with pytest.raises(IsADirectoryError):
        write_file(".", "x", security=box)


def test_append_file_adds_to_the_end_and_creates_missing_files(box: FilesystemSecurity) -> None:
    append_file("log.txt", "one\n", security=box)
    message = append_file("log.txt", "two\n", security=box)

    assert (base(box) / "log.txt").read_text() == "one\ntwo\n"
    assert message == "appended 4 bytes to log.txt"


def test_append_file_counts_the_existing_content_against_the_limit(tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text("12345678")
    security = FilesystemSecurity(base_directory=tmp_path, max_file_size=10)

    with pytest.raises(SandboxViolation):
        append_file("log.txt", "abc", security=security)

    assert (tmp_path / "log.txt").read_text() == "12345678"


# -- list_directory ------------------------------------------------------------------------------


@pytest.fixture
def tree(box: FilesystemSecurity) -> FilesystemSecurity:
    root = base(box)
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "src" / "main.py").write_text("print()\n")
    (root / ".hidden").write_text("h")
    (root / "README.md").write_text("# r\n")
    return box


def test_list_directory_lists_children_with_metadata(tree: FilesystemSecurity) -> None:
    entries = list_directory(".", security=tree)

    assert [(e.name, e.kind, e.depth) for e in entries] == [
        (".hidden", "file", 1),
        ("README.md", "file", 1),
        ("src", "directory", 1),
    ]
    assert entries[1].size == 4
    assert entries[1].modified.tzinfo is not None


def test_list_directory_recursive_walks_depth_first(tree: FilesystemSecurity) -> None:
    entries = list_directory(".", recursive=True, include_hidden=False, security=tree)

    assert [e.path for e in entries] == ["README.md", "src", "src/main.py", "src/pkg", "src/pkg/mod.py"]


def test_list_directory_paths_keep_the_given_prefix(tree: FilesystemSecurity) -> None:
    entries = list_directory("src", recursive=True, security=tree)

    assert [e.path for e in entries] == ["src/main.py", "src/pkg", "src/pkg/mod.py"]


def test_list_directory_max_depth_stops_descending(tree: FilesystemSecurity) -> None:
    entries = list_directory(".", recursive=True, max_depth=2, include_hidden=False, security=tree)

    assert [e.path for e in entries] == ["README.md", "src", "src/main.py", "src/pkg"]


def test_list_directory_stops_at_max_entries(tree: FilesystemSecurity) -> None:
    assert len(list_directory(".", recursive=True, max_entries=2, security=tree)) == 2


def test_list_directory_of_a_file_is_not_a_directory(tree: FilesystemSecurity) -> None:
    with pytest.raises(NotADirectoryError):
        list_directory("README.md", security=tree)


def test_list_directory_never_follows_links_and_drops_those_pointing_out(layout: Layout) -> None:
    entries = list_directory(".", recursive=True, security=layout.security)
    by_name = {e.path: e.kind for e in entries}

    assert by_name["link_inside.txt"] == "symlink"
    assert "link_to_outside_dir" not in by_name
    assert "link_to_outside_file.txt" not in by_name
    assert "relative_escape" not in by_name
    assert not any("secret" in path for path in by_name)


# -- file_info ------------------------------------------------------------------------------------


def test_file_info_reports_kind_size_times_and_permissions(box: FilesystemSecurity) -> None:
    path = base(box) / "a.txt"
    path.write_text("12345")
    path.chmod(0o640)

    info = file_info("a.txt", security=box)

    assert (info.path, info.name, info.kind, info.size, info.permissions) == ("a.txt", "a.txt", "file", 5, "rw-r-----")
    assert not info.is_symlink
    assert info.modified.timestamp() == pytest.approx(path.stat().st_mtime)


def test_file_info_of_a_symlink_describes_the_target(layout: Layout) -> None:
    info = file_info("link_inside.txt", security=layout.security)

    assert info.is_symlink
    assert (info.kind, info.name) == ("file", "inside.txt")


def test_file_info_of_a_directory(box: FilesystemSecurity) -> None:
    assert file_info(".", security=box).kind == "directory"


# -- delete_file ---------------------------------------------------------------------------------


def test_delete_file_removes_the_file(box: FilesystemSecurity) -> None:
    (base(box) / "a.txt").write_text("x")

    assert delete_file("a.txt", security=box) == "deleted a.txt"
    assert not (base(box) / "a.txt").exists()


def test_delete_file_refuses_directories(box: FilesystemSecurity) -> None:
    (base(box) / "d").mkdir()

    with pytest.raises(IsADirectoryError):
        delete_file("d", security=box)
    assert (base(box) / "d").is_dir()


def test_delete_file_of_a_link_pointing_out_removes_only_the_link(layout: Layout) -> None:
    before = layout.digest_outside()

    delete_file("link_to_outside_file.txt", security=layout.security)

    assert not (layout.sandbox / "link_to_outside_file.txt").is_symlink()
    assert layout.digest_outside() == before


def test_delete_file_in_read_only_mode_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")

    with pytest.raises(SandboxViolation):
        delete_file("a.txt", security=FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path, read_only=True))
    assert (tmp_path / "a.txt").exists()


# -- move_file -----------------------------------------------------------------------------------


def test_move_file_renames(box: FilesystemSecurity) -> None:
    (base(box) / "a.txt").write_text("x")

    assert move_file("a.txt", "b.txt", security=box) == "moved a.txt to b.txt"
    assert (base(box) / "b.txt").read_text() == "x"
    assert not (base(box) / "a.txt").exists()


def test_move_file_into_an_existing_directory(box: FilesystemSecurity) -> None:
    (base(box) / "a.txt").write_text("x")
    (base(box) / "d").mkdir()

    move_file("a.txt", "d", security=box)

    assert (base(box) / "d" / "a.txt").read_text() == "x"


def test_move_file_without_overwrite_keeps_the_destination(box: FilesystemSecurity) -> None:
    (base(box) / "a.txt").write_text("new")
    (base(box) / "b.txt").write_text("old")

    with pytest.raises(FileExistsError):
        move_file("a.txt", "b.txt", overwrite=False, security=box)
    assert (base(box) / "b.txt").read_text() == "old"


def test_move_file_moves_directories(box: FilesystemSecurity) -> None:
    (base(box) / "d").mkdir()
    (base(box) / "d" / "f.txt").write_text("x")

    move_file("d", "e", security=box)

    assert (base(box) / "e" / "f.txt").read_text() == "x"


def test_move_file_of_a_missing_source_names_it(box: FilesystemSecurity) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        move_file("nope.txt", "b.txt", security=box)

    assert caught.value.filename == "nope.txt"


def test_move_file_cannot_launder_an_extension(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path, allowed_extensions=[".txt"])

    with pytest.raises(SandboxViolation):
        move_file("a.txt", "a.sh", security=security)
    assert (tmp_path / "a.txt").exists()


# -- copy_file -----------------------------------------------------------------------------------


def test_copy_file_copies_content_and_mode(box: FilesystemSecurity) -> None:
    source = base(box) / "a.sh"
    source.write_text("echo hi\n")
    source.chmod(0o750)

    assert copy_file("a.sh", "b.sh", security=box) == "copied a.sh to b.sh"

    copy = base(box) / "b.sh"
    assert copy.read_text() == "echo hi\n"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o750


def test_copy_file_into_an_existing_directory(box: FilesystemSecurity) -> None:
    (base(box) / "a.txt").write_text("x")
    (base(box) / "d").mkdir()

    copy_file("a.txt", "d", security=box)

    assert (base(box) / "d" / "a.txt").read_text() == "x"


def test_copy_file_without_overwrite_keeps_the_destination(box: FilesystemSecurity) -> None:
    (base(box) / "a.txt").write_text("new")
    (base(box) / "b.txt").write_text("old")

    with pytest.raises(FileExistsError):
        copy_file("a.txt", "b.txt", overwrite=False, security=box)
    assert (base(box) / "b.txt").read_text() == "old"


def test_copy_file_onto_itself_keeps_the_content(box: FilesystemSecurity) -> None:
    (base(box) / "a.txt").write_text("keep me")

    with pytest.raises(ValueError, match="same file"):
        copy_file("a.txt", "a.txt", security=box)
    assert (base(box) / "a.txt").read_text() == "keep me"


def test_copy_file_refuses_directories(box: FilesystemSecurity) -> None:
    (base(box) / "d").mkdir()

    with pytest.raises(IsADirectoryError):
        copy_file("d", "e", security=box)
