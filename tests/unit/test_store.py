"""One suite, both backends: blobs, documents and keys, asserted on what is stored."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import random
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback.errors import (
    AlreadyExists,
    ConfigError,
    IntegrityError,
    NotFound,
    UsageError,
)
from rollback.store import BlobRef, Store, open_store
from rollback.store.keys import blob_key
from rollback.store.local import LocalStore
from tests.unit.store_backends import (
    BACKENDS,
    BUCKET,
    flip_one_bit,
    open_backend,
    raw_key,
    stored_objects,
)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


class GeneratedStream:
    """`size` pseudo-random bytes produced on demand: never held whole in memory."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self._left = size
        self._random = random.Random(seed)
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._random.randbytes(n)
        self._left -= n
        self.digest.update(data)
        return data


# blobs


def test_blob_round_trip(store: Store, tmp_path: Path) -> None:
    data = b"release artifact v1.4.0\n" * 100
    ref = store.put_blob(io.BytesIO(data))

    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert stored_objects(store)[raw_key(store, blob_key(ref.sha256))] == data
    assert store.get_blob(ref.sha256) == data
    assert store.has_blob(ref.sha256)
    assert store.verify_blob(ref.sha256) == ref
    assert list(store.list_blobs()) == [ref.sha256]
    dest = tmp_path / "fetched.bin"
    assert store.fetch_blob(ref.sha256, dest) == ref
    assert dest.read_bytes() == data


def test_putting_the_same_bytes_twice_stores_one_blob(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "app.tar.gz"
    source.write_bytes(b"same bytes")
    first = store.put_blob_file(source)
    before = stored_objects(store)

    second = store.put_blob(io.BytesIO(b"same bytes"))

    assert second == first
    assert stored_objects(store) == before
    assert list(before) == [raw_key(store, blob_key(first.sha256))]  # no temporary files left


def test_big_blob_streams_in_constant_memory(store: Store, tmp_path: Path) -> None:
    size = 12 * 1024 * 1024
    stream = GeneratedStream(size)

    put_peak, fetch_peak, ref = _peaks(store, stream, tmp_path / "big.bin")

    assert ref.sha256 == stream.digest.hexdigest() and ref.size == size
    assert (tmp_path / "big.bin").stat().st_size == size
    assert store.verify_blob(ref.sha256) == ref
    if isinstance(store, LocalStore):  # in-process moto holds S3 bytes here: see the next test
        assert put_peak < 4 * 1024 * 1024, put_peak  # one 1 MiB chunk in flight
        assert fetch_peak < 4 * 1024 * 1024, fetch_peak


def test_s3_big_blob_streams_in_constant_memory(moto_endpoint: str, tmp_path: Path) -> None:
    import boto3

    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=BUCKET)
    size = 24 * 1024 * 1024
    # The moto server lives in this process, so measure the store in a child process.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        put_peak, fetch_peak, digest = pool.apply(_s3_peaks_in_child, (size, str(tmp_path)))

    expected = GeneratedStream(size)
    while expected.read(1024 * 1024):
        pass
    assert digest == expected.digest.hexdigest()
    assert (tmp_path / "big.bin").stat().st_size == size
    assert put_peak < size / 2, put_peak
    assert fetch_peak < size / 2, fetch_peak


def _s3_peaks_in_child(size: int, tmp: str) -> tuple[int, int, str]:
    store = open_store(f"s3://{BUCKET}/big")
    put_peak, fetch_peak, ref = _peaks(store, GeneratedStream(size), Path(tmp) / "big.bin")
    return put_peak, fetch_peak, ref.sha256


def _peaks(store: Store, stream: GeneratedStream, dest: Path) -> tuple[int, int, BlobRef]:
    """tracemalloc peaks (bytes) of put_blob(stream) and of fetch_blob to `dest`."""
    tracemalloc.start()
    try:
        ref = store.put_blob(stream)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.fetch_blob(ref.sha256, dest)
        _, fetch_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return put_peak, fetch_peak, ref


def test_tampered_blob_is_refused_and_nothing_is_fetched(store: Store, tmp_path: Path) -> None:
    ref = store.put_blob(io.BytesIO(b"the good build" * 1000))
    flip_one_bit(store, blob_key(ref.sha256))
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(IntegrityError) as raised:
        store.get_blob(ref.sha256)
    assert raised.value.exit_code == 4
    with pytest.raises(IntegrityError):
        store.verify_blob(ref.sha256)
    with pytest.raises(IntegrityError):
        store.fetch_blob(ref.sha256, out / "artifact.bin")

    assert list(out.iterdir()) == []


def test_missing_blob_is_not_found(store: Store, tmp_path: Path) -> None:
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not store.has_blob(absent)
    for read in (store.get_blob, store.verify_blob):
        with pytest.raises(NotFound):
            read(absent)
    with pytest.raises(NotFound):
        store.fetch_blob(absent, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_put_blob_file_refuses_missing_file_and_directory(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        store.put_blob_file(tmp_path / "nope.tar.gz")
    with pytest.raises(UsageError, match="is a directory") as raised:
        store.put_blob_file(tmp_path)
    assert type(raised.value) is UsageError
    assert stored_objects(store) == {}


def test_a_digest_that_is_not_sha256_is_a_usage_error(store: Store) -> None:
    with pytest.raises(UsageError, match="not a sha256 digest"):
        store.get_blob("../../etc/passwd")
    with pytest.raises(UsageError):
        store.has_blob("ABC")


def test_delete_blob_is_idempotent(store: Store) -> None:
    ref = store.put_blob(io.BytesIO(b"old build"))
    store.delete_blob(ref.sha256)
    store.delete_blob(ref.sha256)
    assert not store.has_blob(ref.sha256)
    assert stored_objects(store) == {}


# documents


def test_create_only_document_is_written_once(store: Store) -> None:
    key = "releases/webapp/prod/1.4.0/manifest.json"
    store.put_doc(key, b'{"version": "1.4.0"}', create_only=True)

    with pytest.raises(AlreadyExists, match="already exists"):
        store.put_doc(key, b'{"version": "forged"}', create_only=True)

    assert store.get_doc(key) == b'{"version": "1.4.0"}'
    assert stored_objects(store)[raw_key(store, key)] == b'{"version": "1.4.0"}'


def test_put_doc_replaces_and_leaves_no_temporary_file(store: Store) -> None:
    key = "stacks/webapp/prod/checkpoint.json"
    store.put_doc(key, b"one")
    store.put_doc(key, b"two")
    assert stored_objects(store) == {raw_key(store, key): b"two"}


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "/etc/passwd",
        "runs//x",
        "runs\\x",
        "runs/a\x00b",
        "runs/\nx",
        "",
        "a/../b",
        "a/./b",
        ".state/pid",
        "runs/",
    ],
)
def test_bad_keys_are_refused_and_nothing_is_written(store: Store, key: str) -> None:
    with pytest.raises(UsageError, match="is not valid"):
        store.put_doc(key, b"x")
    for call in (store.get_doc, store.has_doc, store.delete_doc):
        with pytest.raises(UsageError):
            call(key)
    assert stored_objects(store) == {}


def test_list_and_delete_documents(store: Store) -> None:
    keys = [
        "runs/webapp/prod/r2/journal.json",
        "runs/webapp/prod/r1/journal.json",
        "runs/webapp/dev/r9/journal.json",
        "locks/webapp/prod.lock",
    ]
    for key in keys:
        store.put_doc(key, key.encode())

    assert store.list_docs("runs/") == sorted(k for k in keys if k.startswith("runs/"))
    assert store.list_docs("runs/webapp/prod/") == [
        "runs/webapp/prod/r1/journal.json",
        "runs/webapp/prod/r2/journal.json",
    ]
    assert store.list_docs("runs/webapp/prod/r1") == ["runs/webapp/prod/r1/journal.json"]
    assert store.list_docs("releases/") == []
    with pytest.raises(UsageError):
        store.list_docs("../")

    store.delete_doc("runs/webapp/prod/r1/journal.json")
    store.delete_doc("runs/webapp/prod/r1/journal.json")  # idempotent

    assert not store.has_doc("runs/webapp/prod/r1/journal.json")
    assert store.has_doc("runs/webapp/prod/r2/journal.json")
    with pytest.raises(NotFound):
        store.get_doc("runs/webapp/prod/r1/journal.json")
    assert sorted(stored_objects(store)) == sorted(raw_key(store, k) for k in keys if "r1" not in k)


def test_a_folder_goes_with_its_last_document_as_a_prefix_does_in_s3(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = LocalStore(root)
    store.put_doc("releases/webapp/dev/1.0.0/manifest.json", b"{}")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    store.put_doc("locks/webapp/dev.lock", b"held")
    assert store.swap_doc("locks/webapp/dev.lock", b"held", None)  # a lock released
    store.put_doc("triggers/webapp/dev/stop.json", b"{}")
    store.delete_doc("triggers/webapp/dev/stop.json")  # a stop request cleared

    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    store.put_doc("locks/webapp/dev.lock", b"again")  # and the folder comes back when needed
    assert store.get_doc("locks/webapp/dev.lock") == b"again"


def _take_and_release(root: str, worker: int, rounds: int) -> int:
    """Take a create-only document, swap it, release it; count what was held."""
    from rollback.errors import AlreadyExists

    store = LocalStore(Path(root))
    held = 0
    for n in range(rounds):
        mine = f"{worker}-{n}".encode()
        try:
            store.put_doc("locks/webapp/dev.lock", mine, create_only=True)
        except AlreadyExists:
            continue
        held += 1
        assert store.swap_doc("locks/webapp/dev.lock", mine, mine + b"+")
        assert store.get_doc("locks/webapp/dev.lock") == mine + b"+"
        assert store.swap_doc("locks/webapp/dev.lock", mine + b"+", None)
    return held


def test_writers_and_pruners_of_one_folder_race_without_errors(tmp_path: Path) -> None:
    """Processes take, renew and release one lock document while its folder comes and goes:
    none sees an error, each swap acts on the document it read, nothing is left behind."""
    root = tmp_path / "artifacts"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        held = pool.starmap(_take_and_release, [(str(root), w, 300) for w in range(4)])

    assert sum(held) > 0
    assert not (root / "locks").exists()
    assert not [p for p in root.rglob(".tmp-*")]


# opening


def test_opening_a_local_store_creates_nothing_until_the_first_write(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = open_store(f"file://{root}")
    assert not root.exists()

    store.put_doc("locks/webapp/dev.lock", b"{}")

    assert (root / "locks" / "webapp" / "dev.lock").read_bytes() == b"{}"


def test_local_state_dir_is_inside_the_store_and_not_a_document(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "artifacts"))
    state = store.state_dir()
    (state / "cloud.pid").write_text("123")

    assert state == tmp_path / "artifacts" / ".state"
    assert store.list_docs("") == []


def test_s3_state_dir_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_backend("s3", tmp_path) as store:
        assert store.state_dir() == tmp_path / ".rollback-state"
        assert (tmp_path / ".rollback-state").is_dir()


def test_unknown_scheme_is_a_config_error_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown scheme 'ftp'") as raised:
        open_store("ftp://x")
    assert raised.value.exit_code == 2
    assert os.listdir(tmp_path) == []


def test_a_store_path_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "artifacts").write_text("not a directory")
    with pytest.raises(ConfigError, match="is a file"):
        open_store(str(tmp_path / "artifacts"))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("~no-such-user-here/x", "starts with a home directory this machine does not know"),
        ("a" * 5000, "is not a usable path (File name too long); fix --store."),
        ("a" * 300 + "/artifacts", "is not a usable path"),
        # From rollback.toml (`store = "artifacts\u0000"`): ValueError on every open, exit 70.
        ("artifacts\x00", "is not a usable path (it contains a NUL byte); fix --store."),
    ],
)
def test_a_store_path_the_system_cannot_take_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    # Not RuntimeError or OSError (an internal error, exit 70) from the first stat.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(says)) as raised:
        open_store(url)
    assert raised.value.exit_code == 2 and len(raised.value.message) < 300
    assert os.listdir(tmp_path) == []


def test_missing_bucket_is_a_config_error_and_no_bucket_is_created() -> None:
    from moto import mock_aws

    from rollback.aws.session import Clients, make_session

    with mock_aws():
        clients = Clients(make_session("us-east-1"))
        with pytest.raises(ConfigError) as raised:
            open_store("s3://no-such-bucket/prefix", clients)
        assert raised.value.message == (
            "bucket no-such-bucket does not exist; create it or fix --store."
        )
        assert clients("s3").list_buckets()["Buckets"] == []


def test_s3_store_keeps_to_its_prefix(tmp_path: Path) -> None:
    with open_backend("s3", tmp_path) as store:
        store.put_doc("locks/webapp/dev.lock", b"{}")
        assert list(stored_objects(store)) == ["team/prod/locks/webapp/dev.lock"]
        assert store.url == f"s3://{BUCKET}/team/prod"


@pytest.mark.parametrize(
    "url", ["s3://Not_A_Bucket/x", "s3://", "s3:///prefix", "s3://ok-bucket/../x"]
)
def test_malformed_s3_urls_are_config_or_usage_errors(url: str) -> None:
    from moto import mock_aws

    from rollback.aws.session import Clients, make_session

    with mock_aws():
        clients = Clients(make_session("us-east-1"))
        with pytest.raises(UsageError) as raised:
            open_store(url, clients)
        assert raised.value.exit_code == 2
        assert clients("s3").list_buckets()["Buckets"] == []
