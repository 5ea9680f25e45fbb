"""Conventions the machines enforce (STYLE.md rules 2, 8 and 14)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["mamba_worker", "mamba_client"]
MAX_MODULE_LINES = 400


def _packages() -> list[str]:
    names: list[str] = []
    for root in PACKAGES:
        module = importlib.import_module(root)
        names.append(root)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{root}."):
            if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
                if ".migrations" in info.name:
                    continue
                names.append(info.name)
    return names


@pytest.mark.parametrize("name", _packages())
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        init = Path(module.__file__ or "")
        tree = ast.parse(init.read_text())
        imports = [node for node in tree.body if isinstance(node, ast.ImportFrom | ast.Import)]
        assert not imports, f"{name} imports names but declares no __all__"
        return
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ lists {item!r}, which does not exist"
    public = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_") and not isinstance(value, type(module)) and key not in {"annotations"}
    }
    missing = public - set(exported)
    assert not missing, f"{name} has public names missing from __all__: {sorted(missing)}"


def _public_dataclasses() -> list[tuple[str, type]]:
    found: list[tuple[str, type]] = []
    for name in _packages():
        module = importlib.import_module(name)
        for item in getattr(module, "__all__", []):
            value = getattr(module, item)
            # Only classes Mamba itself declares as dataclasses (not subclasses of pydantic-ai's).
            if isinstance(value, type) and "__dataclass_params__" in vars(value) and value.__module__.startswith(name):
                found.append((f"{name}.{item}", value))
    return found


@pytest.mark.parametrize(("name", "cls"), _public_dataclasses())
def test_public_dataclasses_are_keyword_only(name: str, cls: type) -> None:
    positional = [
        field.name
        for field in dataclasses.fields(cls)
        if field.init and not field.kw_only and field.name not in {"kind"}
    ]
    # Up to two essential positional fields are allowed (STYLE rule 8).
    assert len(positional) <= 2, f"{name} takes {positional} positionally; make options keyword-only"


def _modules() -> list[Path]:
    return sorted(path for root in PACKAGES for path in (ROOT / root).rglob("*.py") if "migrations" not in path.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_length(path: Path) -> None:
    lines = path.read_text().count("\n")
    if lines <= MAX_MODULE_LINES:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert re.search(r"\b(over|more than) \d+ lines\b", docstring), (
        f"{path.relative_to(ROOT)} has {lines} lines; split it, or say why in its docstring"
    )


def test_no_sleep_as_synchronisation_in_tests() -> None:
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name == "wait.py" or "mcp_servers" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\btime\.sleep\(", line) and "noqa" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders, f"use tests._support.wait.wait_until instead of time.sleep: {offenders}"


def test_client_never_imports_worker() -> None:
    for path in (ROOT / "mamba_client").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("mamba_worker", "pydantic_ai", "celery", "sqlmodel")), path
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("mamba_worker", "pydantic_ai", "celery", "sqlmodel")), path


def test_importing_the_library_does_not_import_celery() -> None:
    import subprocess
    import sys

    code = "import sys, mamba_worker; print('celery' in sys.modules, 'fastapi' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False False"
