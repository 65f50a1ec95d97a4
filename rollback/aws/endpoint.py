"""Where AWS calls go: is an endpoint on this machine, and is anything answering there.

A loopback AWS_ENDPOINT_URL is the embedded cloud (or a stand-in for it). The
engine, preflight, the data checks and the CLI's first call all ask the same
question; this is the one answer. Standard library only: the CLI asks before
boto3 is imported.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from urllib.parse import urlsplit

from rollback.errors import ConfigError

# moto's server answers this with its configuration (a JSON object).
PROBE_PATH = "/moto-api/config"


def is_loopback(host: str | None) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when `url` is an http(s) URL to a loopback host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and is_loopback(parts.hostname)


def require_answering(url: str | None, timeout: float = 1.0) -> None:
    """Raise ConfigError when `url` is a loopback endpoint nothing listens on.

    When the embedded cloud is down every AWS call would fail with a
    connection error that names a listener or a bucket instead of the cause.
    A TCP connect only, in well under a millisecond when the port is closed.
    Remote endpoints pass.
    """
    if not url or not is_loopback_url(url):
        return
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # a malformed port: botocore says so in its own words
    try:
        with socket.create_connection((str(parts.hostname), port), timeout=timeout):
            return
    except OSError:
        pass
    raise ConfigError(
        f"the embedded cloud at {url} (AWS_ENDPOINT_URL) is not answering; start it with "
        '`eval "$(rollback cloud start)"`, or unset AWS_ENDPOINT_URL to work on AWS.',
        endpoint_url=url,
    )


def is_embedded_endpoint(url: str | None, timeout: float = 1.0) -> bool:
    """True when `url` is on a loopback host and a moto server answers there.

    Never raises: an unparsable URL, a remote host or a silent port is False.
    `timeout` is in seconds, for the one HTTP request made. http.client, not
    urllib.request: botocore has loaded the first already, the second costs a
    start-up its own import.
    """
    if not url or not is_loopback_url(url):
        return False
    import http.client

    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        connection = kind(str(parts.hostname), parts.port, timeout=timeout)
        try:
            connection.request("GET", PROBE_PATH)
            response = connection.getresponse()
            return 200 <= response.status < 300 and isinstance(json.loads(response.read()), dict)
        finally:
            connection.close()
    except (OSError, ValueError, http.client.HTTPException):  # timeouts and bad JSON included
        return False
