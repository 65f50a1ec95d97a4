"""The one place boto3 sessions and clients are built.

Clients use botocore's standard retry mode and honour AWS_ENDPOINT_URL (the
embedded cloud), AWS_PROFILE and AWS_REGION through the settings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollback.errors import ConfigError

if TYPE_CHECKING:
    import boto3


@dataclass
class Clients:
    """Builds and caches boto3 clients for one session; one instance per command."""

    session: boto3.Session
    endpoint_url: str | None = None
    max_attempts: int = 5
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    # A boto3 session must not build clients from two threads at once (preflight uses threads).
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _account: str | None = field(default=None, repr=False)

    def __call__(self, service: str) -> Any:
        with self._lock:
            return self._client(service)

    def _client(self, service: str) -> Any:
        if service not in self._cache:
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": self.max_attempts})
            self._cache[service] = self.session.client(
                service, endpoint_url=self.endpoint_url, config=config
            )
        return self._cache[service]

    def account(self) -> str:
        """The account id of the session's credentials (STS GetCallerIdentity, asked once)."""
        with self._lock:
            if self._account is None:
                self._account = str(self._client("sts").get_caller_identity()["Account"])
            return self._account

    def lazy(self, service: str) -> Any:
        """The client of `service`, created when first used.

        Creating a client loads its service model (tens of milliseconds); a
        rollback builds every step before it starts, and the steps after the
        traffic shift should not delay it.
        """
        return _ClientOnFirstUse(self, service)


class _ClientOnFirstUse:
    def __init__(self, clients: Clients, service: str) -> None:
        self._clients = clients
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients(self._service), name)


def make_session(region: str, profile: str | None = None) -> boto3.Session:
    """A boto3 session for the region and optional profile.

    Raises ConfigError when the profile does not exist.
    """
    import boto3
    import botocore.exceptions

    try:
        return boto3.Session(region_name=region, profile_name=profile)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {profile!r} does not exist; check AWS_PROFILE.") from exc
