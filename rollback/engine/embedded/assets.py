"""Pulumi assets (FileAsset, StringAsset, RemoteAsset) as plain JSON values, the way state holds them.

The SDK turns an asset input back into an object when the monitor reads a
registration; the engine keeps inputs as JSON, so an asset becomes Pulumi's
wire object: the asset signature key, `path`, `text` or `uri`, and the
sha256 `hash` of the content, which is what makes a changed file a diff.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

SIG_KEY = "4dabf18193072939515e22adb298388d"
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"


def plain_asset(value: Any) -> dict[str, Any] | None:
    """The wire object of a pulumi Asset, or None when `value` is no asset."""
    from pulumi.asset import FileAsset, RemoteAsset, StringAsset

    if isinstance(value, FileAsset):
        path = str(value.path)
        content = Path(path).read_bytes()
        return {SIG_KEY: ASSET_SIG, "path": path, "hash": hashlib.sha256(content).hexdigest()}
    if isinstance(value, StringAsset):
        text = str(value.text)
        return {SIG_KEY: ASSET_SIG, "text": text, "hash": hashlib.sha256(text.encode()).hexdigest()}
    if isinstance(value, RemoteAsset):
        return {SIG_KEY: ASSET_SIG, "uri": str(value.uri)}
    return None


def is_asset(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == ASSET_SIG


def asset_bytes(value: dict[str, Any], base: Path | None = None) -> bytes:
    """An asset's content: the file (relative to `base`), or the text. Remote assets are refused."""
    if "text" in value:
        return str(value["text"]).encode("utf-8")
    if "path" in value:
        path = Path(str(value["path"]))
        if not path.is_absolute() and base is not None:
            path = base / path
        return path.read_bytes()
    from rollback.errors import EngineError

    raise EngineError(
        f"a remote asset ({value.get('uri')}) cannot be uploaded by the embedded engine; "
        "use a FileAsset or StringAsset.",
    )


ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"


def plain_archive(value: Any) -> dict[str, Any] | None:
    """The wire object of a pulumi Archive (with a content hash), or None when `value` is none."""
    from pulumi.asset import AssetArchive, FileArchive, RemoteArchive

    if isinstance(value, FileArchive):
        path = str(value.path)
        return {SIG_KEY: ARCHIVE_SIG, "path": path, "hash": _digest(_entries({"path": path}))}
    if isinstance(value, RemoteArchive):
        return {SIG_KEY: ARCHIVE_SIG, "uri": str(value.uri)}
    if isinstance(value, AssetArchive):
        assets: dict[str, Any] = {}
        for name, member in value.assets.items():
            plain = plain_asset(member) or plain_archive(member)
            if plain is not None:
                assets[str(name)] = plain
        archive = {SIG_KEY: ARCHIVE_SIG, "assets": assets}
        return {**archive, "hash": _digest(_entries(archive))}
    return None


def is_archive(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == ARCHIVE_SIG


def archive_zip(value: dict[str, Any], base: Path | None = None) -> bytes:
    """The archive as zip bytes (entries sorted, fixed timestamps: the same content, the same bytes)."""
    import io
    import zipfile

    if "path" in value and str(value["path"]).endswith(".zip"):
        return _resolve(str(value["path"]), base).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(_entries(value, base).items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def _resolve(path: str, base: Path | None) -> Path:
    resolved = Path(path)
    if not resolved.is_absolute() and base is not None:
        resolved = base / resolved
    return resolved


def _entries(value: dict[str, Any], base: Path | None = None, prefix: str = "") -> dict[str, bytes]:
    """Archive member name -> bytes, directories walked, nested archives flattened under their name."""
    entries: dict[str, bytes] = {}
    if "path" in value:
        root = _resolve(str(value["path"]), base)
        if root.is_dir():
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                entries[prefix + file.relative_to(root).as_posix()] = file.read_bytes()
        else:
            entries[prefix + root.name] = root.read_bytes()
        return entries
    for name, member in (value.get("assets") or {}).items():
        if is_archive(member):
            inner = "" if name in (".", "") else f"{name.rstrip('/')}/"
            entries.update(_entries(member, base, prefix + inner))
        elif is_asset(member):
            entries[prefix + name] = asset_bytes(member, base)
    return entries


def _digest(entries: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, content in sorted(entries.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()
