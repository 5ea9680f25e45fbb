from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGED = "mamba_worker/prompts/_default_templates"


def _uv() -> str:
    beside_python = Path(sys.executable).with_name("uv")
    found = str(beside_python) if beside_python.exists() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed; it builds the wheel")
    return found


@pytest.mark.slow
def test_the_wheel_ships_the_default_templates(tmp_path: Path) -> None:
    uv = _uv()
    # Offline first (the build backend is usually cached); online when the cache lacks it.
    for extra in (["--offline"], []):
        built = subprocess.run(
            [uv, "build", "--wheel", *extra, "-o", str(tmp_path), str(ROOT)], capture_output=True, text=True
        )
        if built.returncode == 0:
            break
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {
        f"{PACKAGED}/{path.relative_to(ROOT / 'prompts').as_posix()}" for path in (ROOT / "prompts").rglob("*.jinja2")
    }
    assert f"{PACKAGED}/v1/system/assistant.jinja2" in expected
    assert expected <= names
