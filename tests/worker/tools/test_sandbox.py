from __future__ import annotations

import os
import pickle
from pathlib import Path

import pydantic
import pytest

from mamba_worker.errors import MambaError
from mamba_worker.tools import FilesystemSecurity, SandboxRule, SandboxViolation, read_file
from tests.worker.tools.conftest import Layout


def test_base_directory_is_stored_as_its_real_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")

    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path / "alias")

    assert security.base_directory == (tmp_path / "real").resolve()


def test_sandbox_mode_without_base_directory_pins_the_current_directory(in_tmp_cwd: Path, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    security = FilesystemSecurity(sandbox_mode=True)
    os.chdir(tmp_path_factory.mktemp("elsewhere"))

    assert security.base_directory == in_tmp_cwd.resolve()
    assert security.root == in_tmp_cwd.resolve()


def test_a_missing_base_directory_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="not an existing directory"):
        FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path / "missing")


def test_extensions_are_normalised(tmp_path: Path) -> None:
    security = FilesystemSecurity(allowed_extensions=["TXT", ".Json", ""])

    assert security.allowed_extensions == frozenset({".txt", ".json", ""})


def test_security_is_frozen(tmp_path: Path) -> None:
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path)

    with pytest.raises(pydantic.ValidationError):
        security.read_only = True  # type: ignore[misc]


def test_containment_compares_components_not_string_prefixes(tmp_path: Path) -> None:
    (tmp_path / "safe").mkdir()
    security = FilesystemSecurity(sandbox_mode=True, base_directory=tmp_path / "safe")

    assert security.contains(tmp_path / "safe")
    assert security.contains(tmp_path / "safe" / "a" / "b")
    assert not security.contains(tmp_path / "safe-evil" / "x")
    assert not security.contains(tmp_path)


def test_resolve_path_without_following_keeps_the_link_itself(layout: Layout) -> None:
    followed = layout.security.resolve_path("link_inside.txt")
    itself = layout.security.resolve_path("link_inside.txt", follow_symlinks=False)

    assert followed == layout.sandbox.resolve() / "inside.txt"
    assert itself == layout.sandbox.resolve() / "link_inside.txt"


def test_a_path_inside_by_way_of_dotdot_is_allowed(layout: Layout) -> None:
    assert read_file("sub/../inside.txt", security=layout.security) == "hello from inside\n"
    assert read_file(str(layout.sandbox / "inside.txt"), security=layout.security) == "hello from inside\n"


def test_look_alike_names_are_plain_names_outside_sandbox_mode(tmp_path: Path) -> None:
    name = "\uff0e\uff0e.txt"
    (tmp_path / name).write_text("fullwidth")

    assert read_file(name, security=FilesystemSecurity(base_directory=tmp_path)) == "fullwidth"


def test_nul_bytes_are_refused_even_without_a_sandbox() -> None:
    with pytest.raises(SandboxViolation) as caught:
        read_file("a\x00b")

    assert caught.value.rule is SandboxRule.NUL_BYTE


def test_hard_links_can_be_allowed_explicitly(layout: Layout) -> None:
    security = layout.security.model_copy(update={"allow_hard_links": True})

    assert read_file("hardlink.txt", security=security) == "TOP SECRET\n"


def test_hard_links_outside_sandbox_mode_are_ordinary_files(layout: Layout) -> None:
    assert read_file("hardlink.txt", security=FilesystemSecurity(base_directory=layout.sandbox)) == "TOP SECRET\n"


def test_verify_fd_refuses_a_descriptor_that_ended_up_outside(layout: Layout) -> None:
    # What a directory swapped for a symlink between check and open would produce.
    fd = os.open(layout.outside / "secret.txt", os.O_RDONLY)
    try:
        with pytest.raises(SandboxViolation) as caught:
            layout.security.verify_fd(fd, path=layout.sandbox / "inside.txt", given="inside.txt")
    finally:
        os.close(fd)

    assert caught.value.rule is SandboxRule.OUTSIDE_SANDBOX
    assert caught.value.path == "inside.txt"


def test_violation_names_path_and_rule_and_survives_pickling(layout: Layout) -> None:
    with pytest.raises(SandboxViolation) as caught:
        read_file("../outside/secret.txt", security=layout.security)
    error = caught.value

    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(error, MambaError)
    assert error.code == "sandbox_violation"
    assert (copy.path, copy.rule, str(copy)) == ("../outside/secret.txt", SandboxRule.OUTSIDE_SANDBOX, str(error))
    assert "'../outside/secret.txt'" in str(error)
    assert "outside the sandbox" in str(error)
