"""placeholder."""

from typing import Any


def appliers(clients: Any) -> list[Any]:
    return []
