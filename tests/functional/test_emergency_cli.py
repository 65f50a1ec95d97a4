"""`rollback emergency` while a cutover bakes: the cutover halts on a verified state, the
emergency waits for its lock, rolls back to last-stable, and tells the webhook why."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rollback.journal import Journal, list_runs
from rollback.store import open_store
from tests.functional.conftest import ROLLBACK, RunCli, build_env, describe, parse_json
from tests.functional.test_cutover_cli import FAST, STACK, Site, site  # noqa: F401  (fixture)


class Webhook:
    """A real HTTP endpoint on 127.0.0.1 that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def test_emergency_halts_a_baking_cutover_then_rolls_back(
    site: Site,  # noqa: F811
    run_cli: RunCli,
    moto_endpoint: str,
    webhook: Webhook,
    tmp_path: Path,
) -> None:
    cutover_args = site.args("cutover", "green", "--steps", "100", "--bake", "120s", *FAST)
    cutover = subprocess.Popen(
        [str(ROLLBACK), *cutover_args],
        env=build_env({"AWS_ENDPOINT_URL": moto_endpoint}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while site.weights().get("green") != 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert site.weights() == {"blue": 0, "green": 100}, "the cutover never shifted"
        started = time.monotonic()
        result = run_cli(
            *site.args("emergency", "--reason", "checkout errors on green"),
            env={"ROLLBACK_WEBHOOK_URL": webhook.url},
            timeout=120,
        )
        took = time.monotonic() - started
        out, err = cutover.communicate(timeout=30)
    finally:
        if cutover.poll() is None:
            cutover.kill()
            cutover.communicate()

    assert result.returncode == 0, describe(result)
    assert took < 60, f"the emergency took {took:.0f}s: it should not wait out a 120 s bake"
    halted = json.loads(out)
    assert cutover.returncode == 1 and halted["result"] == "stopped", err
    doc = parse_json(result)
    assert doc["ok"] and doc["result"]["result"] == "succeeded"
    assert (doc["result"]["from_version"], doc["result"]["to_version"]) == ("1.5.0", "1.4.0")

    # The cloud, the registry and the store say the same.
    assert site.weights() == {"blue": 100, "green": 0}
    assert site.dns_weights() == {"blue": 100, "green": 0}
    assert site.registry().current() == "1.4.0"
    assert site.registry().show("1.5.0").status == "bad"
    store = open_store(str(site.store_dir))
    assert not store.list_docs("stops/"), "the stop request outlived the emergency"
    runs = {r.run_id: r for r in list_runs(store, STACK)}
    emergency = Journal.load(store, STACK, doc["result"]["run_id"])
    assert emergency.reason == "checkout errors on green"
    assert emergency.options["emergency"] is True
    assert runs[halted["run_id"]].result == "stopped"

    # The webhook heard the start and the end, with the reason, in Slack's text field.
    events = [b["event"] for b in webhook.bodies]
    assert events[0] == "started" and events[-1] == "finished", events
    assert all("text" in b for b in webhook.bodies)
    assert any(b.get("result") == "succeeded" for b in webhook.bodies)
    assert all(b["reason"] == "checkout errors on green" for b in webhook.bodies)
    assert "checkout errors on green" in str(webhook.bodies[0]["text"])
