"""`rollback demo` as a user runs it: from nothing to a verified rollback, and nothing left behind."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from rollback.engine.embedded.secrets import SecretsKeyring
from tests.conftest import postgres_missing
from tests.functional.conftest import RunCli, describe, parse_json

ROOT = Path(__file__).resolve().parents[2]


def dev_password() -> str:
    """The reference stack's database password, decrypted the way the engine does."""
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    crypter = SecretsKeyring().crypter(doc["encryptionsalt"], "test-passphrase")
    return crypter.decrypt(doc["config"]["webapp:dbPassword"]["secure"])


def test_demo_rolls_back_verified_and_leaves_no_secret_and_no_server(
    run_cli: RunCli, tmp_path: Path
) -> None:
    result = run_cli("--output", "json", "demo", timeout=180)
    assert result.returncode == 0, describe(result)
    doc = parse_json(result)
    run = doc["rollback"]["result"]
    assert doc["ok"] and run["result"] == "succeeded"
    assert (run["from_version"], run["to_version"]) == ("2.0.0", "1.0.0")
    assert [s["state"] for s in run["steps"]] == ["verified"] * len(run["steps"])
    names = [s["name"] for s in run["steps"]]
    assert run["time_to_traffic_restored_s"] < run["duration_s"]

    report = Path(doc["rollback"]["report"][0])
    assert report.is_file() and "## Lessons learned" in report.read_text()
    if postgres_missing() is None:
        # Real rows: v2's schema change puts the database before traffic; v1's snapshot comes
        # back, v2's 37 orders are counted as the window and kept in the pre-restore snapshot.
        assert names[:2] == ["preflight", "db-snapshot"]
        assert names.index("db-restore") < names.index("integrity") < names.index("traffic")
        assert "orders +37 (157 before the restore, 120 in the snapshot)" in report.read_text()
        assert doc["data"]["orders_after_rollback"] == 120
        assert doc["data"]["orders_in_pre_restore_snapshot"] == 157
        integrity = next(e for e in run["steps"] if e["name"] == "integrity")
        assert [ev["observed"]["value"] for ev in integrity["evidence"]] == [120]
    else:
        assert names[:4] == ["preflight", "traffic", "dns", "db-snapshot"]
    store = Path(doc["store"])
    # The embedded cloud it started is gone: no record, and its port no longer answers.
    assert not (store / ".state" / "cloud.json").exists()
    port = int(doc["endpoint_url"].rsplit(":", 1)[1])
    assert not any(f":{port:04X}" in line.split()[1] for line in _listening_sockets()), (
        "moto server left running"
    )

    password = dev_password()
    assert len(password) >= 8
    stored = [p for p in store.rglob("*") if p.is_file()]
    assert any(
        p.name == "checkpoint.json" for p in stored
    )  # the engine's state is among what we scan
    for path in stored:
        assert password.encode() not in path.read_bytes(), f"plain-text password in {path}"
    assert password not in result.stdout + result.stderr


def _listening_sockets() -> list[str]:
    lines: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            with open(table) as f:
                lines += [ln for ln in f.readlines()[1:] if re.search(r"\s0A\s", ln)]
    return lines
