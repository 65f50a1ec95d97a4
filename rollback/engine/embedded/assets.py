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
