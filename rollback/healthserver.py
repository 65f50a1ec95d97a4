"""A real HTTP server on 127.0.0.1 standing in for a colour's application.

The demo serves each colour's health endpoint with it, and the tests use it
to make a colour fail, slow down or hang:

    server.status = 500          every answer's status
    server.script = [500, 200]   statuses for the next requests, then `status` again
    server.body = b"ok v1.4.0"   the body
    server.delay_s = 0.3         wait before answering (a slow or hung backend)

Use it as `with HealthServer() as server:`; stopping releases any request still waiting.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class HealthServer:
    """A threaded http.server on a free loopback port."""

    def __init__(self) -> None:
        self.status = 200
        self.script: list[int] = []
        self.body = b"ok"
        self.delay_s = 0.0
        self.requests: list[str] = []
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/health"

    def _answer(self, path: str) -> tuple[int, bytes, float]:
        with self._lock:
            self.requests.append(path)
            status = self.script.pop(0) if self.script else self.status
            return status, self.body, self.delay_s

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                status, body, delay = server._answer(self.path)
                if delay and server._released.wait(delay):
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: that is what a timeout test wants

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
