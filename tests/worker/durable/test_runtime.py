"""`freeze_startup_objects`: a ready worker's start-up objects leave the garbage collector's scans."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mamba_worker.durable import freeze_startup_objects


@pytest.fixture
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("_unfrozen")
def test_freezing_moves_the_live_objects_to_the_permanent_generation() -> None:
    assert gc.get_freeze_count() == 0

    freeze_startup_objects()

    assert gc.get_freeze_count() > 1000
