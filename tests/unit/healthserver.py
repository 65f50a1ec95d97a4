"""The `health_server` fixture over rollback.healthserver.HealthServer (import it into a test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollback.healthserver import HealthServer

__all__ = ["HealthServer", "health_server"]


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    """A started HealthServer answering 200 "ok"; stopped after the test."""
    with HealthServer() as server:
        yield server
