from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_mamba_logger() -> Iterator[None]:
    """setup_logging changes the process-wide ``mamba_worker`` logger; put it back after each test."""
    logger = logging.getLogger("mamba_worker")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.fixture
def secret() -> str:
    """A secret value unique to the test (registrations are process-wide)."""
    return f"s3cr3t-{uuid.uuid4().hex}"
