"""Store keys: validated before any backend touches a file or an object.

A key is a relative, '/'-separated path such as `releases/webapp/dev/1.4.0/manifest.json`.
Names starting with '.' are reserved for the store itself (temporary files, `.state`).
"""

from __future__ import annotations

import re

from rollback.errors import UsageError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BLOB_PREFIX = "blobs/sha256/"


def check_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative key; raise UsageError otherwise."""
    problem = _key_problem(key)
    if problem:
        raise UsageError(
            f"store key {key!r} is not valid: {problem}; use a relative path like 'runs/webapp/dev/ID/journal.json'.",
            key=key,
        )
    return key


def check_prefix(prefix: str) -> str:
    """Return a listing prefix ('' for everything, else a key, usually ending in '/')."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def check_digest(sha256: str) -> str:
    """Return a lower-case sha256 hex digest; raise UsageError for anything else."""
    if not isinstance(sha256, str) or not is_digest(sha256):
        raise UsageError(
            f"{sha256!r} is not a sha256 digest; pass 64 lower-case hex characters.",
        )
    return sha256


def is_digest(name: str) -> bool:
    """True for a lower-case sha256 hex digest (a blob's file or object name)."""
    return bool(_SHA256.fullmatch(name))


def blob_key(sha256: str) -> str:
    """The key of a blob: `blobs/sha256/<first two hex>/<digest>`."""
    check_digest(sha256)
    return f"{BLOB_PREFIX}{sha256[:2]}/{sha256}"


def _key_problem(key: str) -> str | None:
    if not isinstance(key, str) or not key:
        return "it is empty"
    if _CONTROL.search(key):
        return "it contains a control character"
    if "\\" in key:
        return "it contains a backslash"
    if key.startswith("/") or re.match(r"[A-Za-z]:", key):
        return "it is an absolute path"
    for segment in key.split("/"):
        if segment == "":
            return "it has an empty segment"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
        if segment.startswith("."):
            return "a segment starts with '.', which the store reserves for itself"
    return None
