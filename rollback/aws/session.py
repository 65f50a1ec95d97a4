"""The one place boto3 sessions and clients are built.

Clients use botocore's standard retry mode and honour AWS_ENDPOINT_URL (the
embedded cloud), AWS_PROFILE and AWS_REGION through the settings.
"""

from __future__ import annotations

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

    def __call__(self, service: str) -> Any:
        if service not in self._cache:
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": self.max_attempts})
            self._cache[service] = self.session.client(
                service, endpoint_url=self.endpoint_url, config=config
            )
        return self._cache[service]


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
