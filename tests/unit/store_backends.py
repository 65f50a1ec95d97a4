"""Both store backends behind one context manager, and raw access to what they hold.

The raw functions read the backend directly (files, S3 objects), never through
the Store protocol, so tests see what is really stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rollback.store import Store, open_store
from rollback.store.local import LocalStore
from rollback.store.s3 import S3Store

BUCKET = "rollback-store-test"
BACKENDS = ["local", "s3"]


@contextlib.contextmanager
def open_backend(kind: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of `kind` ("local": a directory; "s3": in-process moto)."""
    if kind == "local":
        yield open_store(str(tmp_path / "artifacts"))
        return
    from moto import mock_aws

    from rollback.aws.session import Clients, make_session

    with mock_aws():
        clients = Clients(make_session("us-east-1"))
        clients("s3").create_bucket(Bucket=BUCKET)
        yield open_store(f"s3://{BUCKET}/team/prod", clients)


def stored_objects(store: Store) -> dict[str, bytes]:
    """Every file or object the backend holds, by key relative to the store's root."""
    if isinstance(store, LocalStore):
        if not store.root.exists():
            return {}
        return {
            p.relative_to(store.root).as_posix(): p.read_bytes()
            for p in store.root.rglob("*")
            if p.is_file()
        }
    assert isinstance(store, S3Store)
    s3: Any = store._s3
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket):
        for item in page.get("Contents", ()):
            body = s3.get_object(Bucket=store.bucket, Key=item["Key"])["Body"].read()
            found[item["Key"]] = body
    return found


def raw_key(store: Store, key: str) -> str:
    """The key as `stored_objects` names it."""
    return key if isinstance(store, LocalStore) else f"{store.prefix}{key}"  # type: ignore[attr-defined]


def flip_one_bit(store: Store, key: str) -> None:
    """Corrupt a stored object in place, behind the store's back."""
    if isinstance(store, LocalStore):
        path = store.root / key
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        return
    assert isinstance(store, S3Store)
    s3: Any = store._s3
    full = store.prefix + key
    data = bytearray(s3.get_object(Bucket=store.bucket, Key=full)["Body"].read())
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=store.bucket, Key=full, Body=bytes(data))
