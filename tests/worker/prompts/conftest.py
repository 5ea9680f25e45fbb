from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mamba_worker.prompts import PromptConfig, PromptManager


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    """An empty prompts folder; `write` puts templates in it."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    return folder


@pytest.fixture
def write(prompts_dir: Path) -> Callable[[str, str], Path]:
    """Write ``source`` to ``prompts_dir/<relative>`` (``"v1/system/x.jinja2"``) and return the path."""

    def _write(relative: str, source: str) -> Path:
        path = prompts_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def make_manager(prompts_dir: Path) -> Callable[..., PromptManager]:
    """Build a manager over ``prompts_dir``; bundled defaults off unless asked for."""

    def _make(**options: object) -> PromptManager:
        options.setdefault("include_defaults", False)
        return PromptManager(PromptConfig(prompts_dir=prompts_dir, **options))  # type: ignore[arg-type]

    return _make
