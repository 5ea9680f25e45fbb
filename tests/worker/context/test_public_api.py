from __future__ import annotations

import importlib

import pytest

from mamba_worker.config import CompactionConfig
from mamba_worker.context import CompactionConfig as ReExported


@pytest.mark.parametrize("module", ["mamba_worker.context", "mamba_worker.context.compaction"])
def test_the_public_names_are_sorted_and_importable(module: str) -> None:
    namespace = importlib.import_module(module)
    assert namespace.__all__ == sorted(namespace.__all__)
    assert all(hasattr(namespace, name) for name in namespace.__all__)


def test_compaction_config_is_the_one_from_config() -> None:
    assert ReExported is CompactionConfig
