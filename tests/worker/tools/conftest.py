from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from mamba_worker.tools import FilesystemSecurity


def tree_digest(root: Path) -> dict[str, tuple[str, ...]]:
    """Everything observable about a tree, byte for byte: names, kinds, modes, contents, link targets."""
    digest: dict[str, tuple[str, ...]] = {".": ("dir", oct(root.lstat().st_mode))}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                digest[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                digest[rel] = ("dir", oct(st.st_mode))
            else:
                digest[rel] = ("file", oct(st.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return digest


@dataclass
class Layout:
    """A sandbox with traps inside, next to directories that must never change."""

    root: Path
    sandbox: Path
    outside: Path
    evil_sibling: Path
    security: FilesystemSecurity

    def digest_outside(self) -> dict[str, dict[str, tuple[str, ...]]]:
        return {"outside": tree_digest(self.outside), "evil": tree_digest(self.evil_sibling)}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    root = tmp_path
    sandbox = root / "sandbox"
    outside = root / "outside"
    evil = root / "sandbox-evil"
    for directory in (sandbox, outside, evil, sandbox / "sub", outside / "deep"):
        directory.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n")
    (outside / "deep" / "secret.py").write_text("password = 'hunter2'\n")
    (evil / "secret.txt").write_text("evil twin\n")
    (sandbox / "inside.txt").write_text("hello from inside\n")
    (sandbox / "sub" / "code.py").write_text("def greet():\n    return 'hi'\n")
    (sandbox / "link_to_outside_file.txt").symlink_to(outside / "secret.txt")
    (sandbox / "link_to_outside_dir").symlink_to(outside)
    (sandbox / "relative_escape").symlink_to("../outside")
    (sandbox / "dangling_out.txt").symlink_to(outside / "created-by-attack.txt")
    (sandbox / "link_inside.txt").symlink_to(sandbox / "inside.txt")
    os.link(outside / "secret.txt", sandbox / "hardlink.txt")
    security = FilesystemSecurity(sandbox_mode=True, base_directory=sandbox, allowed_extensions=None)
    return Layout(root=root, sandbox=sandbox, outside=outside, evil_sibling=evil, security=security)
