from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic_ai.models import override_allow_model_requests

from tests._support.openai_server import _shared_openai_server, openai_server, openai_server_factory

__all__ = ["_shared_openai_server", "openai_server", "openai_server_factory"]


@pytest.fixture(autouse=True)
def _allow_requests_to_the_test_server() -> Iterator[None]:
    # Every request in this folder goes to a server the test started on 127.0.0.1.
    with override_allow_model_requests(True):
        yield
