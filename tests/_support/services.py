"""Reachability of the external services (PostgreSQL, Redis, RabbitMQ) tests may use.

Locally a missing service skips its tests; with ``MAMBA_REQUIRE_SERVICES=1`` (CI) it fails them,
because a skip there would hide a broken build.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import pytest

POSTGRES_URL = os.environ.get("MAMBA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MAMBA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("MAMBA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int


POSTGRES = Service("PostgreSQL", "127.0.0.1", 5432)
REDIS = Service("Redis", "127.0.0.1", 6379)
RABBITMQ = Service("RabbitMQ", "127.0.0.1", 5672)


def services_required() -> bool:
    return os.environ.get("MAMBA_REQUIRE_SERVICES") == "1"


def reachable(service: Service, *, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((service.host, service.port), timeout=timeout):
            return True
    except OSError:
        return False


def require(service: Service) -> None:
    """Skip (locally) or fail (CI) the current test when ``service`` is unreachable."""
    if reachable(service):
        return
    message = f"{service.name} is not reachable on {service.host}:{service.port}"
    if services_required():
        pytest.fail(f"{message}, and MAMBA_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(message)
