"""The agent's metrics in Prometheus text format, and `/healthz`.

    rollback_agent_runs_total{result}                 runs ended, by result
    rollback_agent_run_duration_seconds               histogram of run durations
    rollback_agent_time_to_traffic_restored_seconds   histogram, start to traffic back
    rollback_agent_queue_receive_lag_seconds          histogram, sent -> received
    rollback_agent_messages_total{outcome}            done | dead-lettered | retry | ignored
    rollback_agent_last_loop_timestamp_seconds        when the receive loop last turned

`/healthz` answers 200 while the receive loop has turned within
`stale_after_s`, else 503. The server binds 127.0.0.1 unless told otherwise:
metrics of an incident tool are not for the open network.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class AgentMetrics:
    """The agent's counters and histograms, in a registry of their own."""

    def __init__(self, stale_after_s: float = 90.0) -> None:
        self.registry = CollectorRegistry()
        self.stale_after_s = stale_after_s
        r = self.registry
        self.runs = Counter("rollback_agent_runs", "Runs ended, by result.", ["result"], registry=r)
        self.run_duration = Histogram(
            "rollback_agent_run_duration_seconds", "Run duration.", buckets=_SECONDS, registry=r
        )
        self.traffic_restored = Histogram(
            "rollback_agent_time_to_traffic_restored_seconds",
            "From a run's start until traffic was restored.",
            buckets=_SECONDS,
            registry=r,
        )
        self.receive_lag = Histogram(
            "rollback_agent_queue_receive_lag_seconds",
            "From a message being sent to this agent receiving it.",
            buckets=_SECONDS,
            registry=r,
        )
        self.messages = Counter(
            "rollback_agent_messages", "Messages settled, by outcome.", ["outcome"], registry=r
        )
        self.last_loop = Gauge(
            "rollback_agent_last_loop_timestamp_seconds",
            "When the receive loop last turned (epoch seconds).",
            registry=r,
        )
        self._last_loop = time.monotonic()

    def alive(self) -> None:
        self._last_loop = time.monotonic()
        self.last_loop.set_to_current_time()

    def healthy(self) -> bool:
        return time.monotonic() - self._last_loop < self.stale_after_s

    def received(self, lag_s: float) -> None:
        self.receive_lag.observe(lag_s)

    def ran(self, result: str, duration_s: float | None, traffic_s: float | None) -> None:
        self.runs.labels(result=result).inc()
        if duration_s is not None:
            self.run_duration.observe(duration_s)
        if traffic_s is not None:
            self.traffic_restored.observe(traffic_s)

    def settled(self, outcome: str) -> None:
        self.messages.labels(outcome=outcome).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        """Serve /metrics and /healthz on a daemon thread; returns the server (shutdown() it)."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] == "/metrics":
                    self._answer(200, metrics.text(), CONTENT_TYPE_LATEST)
                elif self.path.split("?")[0] == "/healthz":
                    ok = metrics.healthy()
                    body = b"ok\n" if ok else b"receive loop stalled\n"
                    self._answer(200 if ok else 503, body, "text/plain; charset=utf-8")
                else:
                    self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server
