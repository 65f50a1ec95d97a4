"""The one place AWS sessions and clients are built.

Clients use botocore's standard retry mode and honour AWS_ENDPOINT_URL (the
embedded cloud), AWS_PROFILE and AWS_REGION through the settings.

`make_session` builds a botocore session behind boto3.Session's small surface
(`client`, `region_name`, `get_credentials`). The clients are the same
botocore clients boto3 returns; what is left out is boto3's own start-up
(its import, resource loaders and S3 transfer handlers: about a sixth of a
process's time to its first call), which the emergency path pays before users
move (issue 9, item 7). `Clients` takes a boto3.Session just as well.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollback.errors import ConfigError

if TYPE_CHECKING:
    import boto3
    import botocore.credentials
    import botocore.session


@dataclass
class Clients:
    """Builds and caches boto3 clients for one session; one instance per command."""

    session: boto3.Session | Session
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


class Session:
    """A botocore session with the part of boto3.Session's interface the toolkit uses."""

    def __init__(self, region: str, profile: str | None = None) -> None:
        import botocore.session

        self._session: botocore.session.Session = botocore.session.Session(profile=profile)
        self._session.set_config_variable("region", region)
        data_path = self._session.get_config_variable("data_path")
        self._session.register_component("data_loader", _data_loader(data_path))

    @property
    def region_name(self) -> str:
        return str(self._session.get_config_variable("region"))

    @property
    def profile_name(self) -> str | None:
        profile = self._session.profile
        return None if profile is None else str(profile)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A botocore client of `service` in this session's region (boto3.Session.client)."""
        kwargs.setdefault("region_name", self.region_name)
        return self._session.create_client(service, **kwargs)

    def get_credentials(self) -> botocore.credentials.Credentials | None:
        return self._session.get_credentials()


def _data_loader(search_path: str | None) -> Any:
    """botocore's model loader (`create_loader`), less two costs of a process's first client.

    - To check that a service exists, botocore lists every service it ships with (about
      450 directories, a `listdir` and `stat`s each, ~20 ms for each model type); this
      loader lists only the asked service's API versions, which is the same test.
    - It decodes model files with plain dicts instead of OrderedDict (dicts keep their
      order; botocore uses no OrderedDict-only method on loaded data): `endpoints.json`
      alone decodes in 16 ms instead of 45.

    About 80 ms of the emergency path before traffic moves (issue 9, item 7).
    """
    import gzip
    import json
    import os
    from collections.abc import Iterator, Sequence

    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import JSONFileLoader, Loader

    class Files(JSONFileLoader):  # type: ignore[misc]  # botocore has no type hints
        def load_file(self, file_path: str) -> Any:
            for ext, opener in ((".json", open), (".json.gz", gzip.open)):
                try:
                    with opener(file_path + ext, "rb") as fp:
                        payload = fp.read().decode("utf-8")
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    continue
                return json.loads(payload)
            return None

    class Known(Sequence[str]):
        """The services with `type_name` models: membership asks one service; the rest
        lists them all, as botocore does."""

        def __init__(self, loader: Models, type_name: str) -> None:
            self._loader, self._type = loader, type_name

        def __contains__(self, service: object) -> bool:
            try:
                return bool(self._loader.list_api_versions(str(service), self._type))
            except DataNotFoundError:
                return False

        def _all(self) -> list[str]:
            return list(Loader.list_available_services(self._loader, self._type))

        def __getitem__(self, index: Any) -> Any:
            return self._all()[index]

        def __iter__(self) -> Iterator[str]:
            return iter(self._all())

        def __len__(self) -> int:
            return len(self._all())

    class Models(Loader):  # type: ignore[misc]
        def list_available_services(self, type_name: str) -> Sequence[str]:
            return Known(self, type_name)

    paths = None
    if search_path:
        paths = [os.path.expanduser(os.path.expandvars(p)) for p in search_path.split(os.pathsep)]
    return Models(extra_search_paths=paths, file_loader=Files())


def make_session(region: str, profile: str | None = None) -> Session:
    """A session for the region and optional profile.

    Raises ConfigError when the profile does not exist.
    """
    import botocore.exceptions

    try:
        session = Session(region, profile)
        if profile is not None:
            session._session.get_scoped_config()  # an unknown profile fails here, not at a call
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {profile!r} does not exist; check AWS_PROFILE.") from exc
    return session
