from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGED = "mamba_worker/prompts/_default_templates"


@pytest.mark.slow
def test_the_wheel_ships_the_default_templates(tmp_path: Path) -> None:
    # pip is in every venv (uv may not be); it builds the wheel with the project's build backend.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {
        f"{PACKAGED}/{path.relative_to(ROOT / 'prompts').as_posix()}" for path in (ROOT / "prompts").rglob("*.jinja2")
    }
    assert f"{PACKAGED}/v1/system/assistant.jinja2" in expected
    assert expected <= names
