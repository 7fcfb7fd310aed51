"""A local HTTP server on 127.0.0.1 that plays recorded upstream responses, good and broken.

    with Upstream() as up:
        up.route("/api/RUT_History.csv", body=b"...", status=200, headers={...})
        up.route("/slow", body=b"...", delay=5)             # slower than the client's timeout
        up.route("/flaky", responses=[(503, b""), (200, b"ok")])  # one response per request, last repeats
        up.url("/api/RUT_History.csv")
        up.requests  # list of (path, headers) received

    with live_upstream(monkeypatch, REGIME_HTTP_TIMEOUT="1") as up:  # the pipeline's live mode asks `up`
        up.route(path_of(cboe.url("RUT")), body=b"...")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class _Route:
    responses: list[tuple[int, bytes, dict]]
    delay: float = 0.0
    reset: bool = False  # close the connection without answering
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple[int, bytes, dict]:
        with self.lock:
            i = min(self.served, len(self.responses) - 1)
            self.served += 1
            return self.responses[i]


class Upstream:
    def __init__(self):
        self.routes: dict[str, _Route] = {}
        self.requests: list[tuple[str, dict]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's hook name)
                upstream.requests.append((self.path, dict(self.headers)))
                route = upstream.routes.get(self.path) or upstream.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404, "not found")
                    return
                if route.reset:
                    self.connection.close()
                    return
                if route.delay:
                    time.sleep(route.delay)
                status, body, headers = route.next()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(self, path: str, body: bytes = b"", status: int = 200, headers: dict | None = None,
              responses: list[tuple[int, bytes]] | None = None, delay: float = 0.0, reset: bool = False) -> str:
        answers = [(s, b, headers or {}) for s, b in responses] if responses else [(status, body, headers or {})]
        self.routes[path] = _Route(answers, delay=delay, reset=reset)
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def path_of(url: str) -> str:
    """The path and query of a publisher's URL: where an Upstream serves it (live mode swaps the host for the
    REGIME_LIVE_BASE_URL)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@contextmanager
def live_upstream(monkeypatch, **regime: str) -> Iterator[Upstream]:
    """A running Upstream that the pipeline's live mode asks instead of the publishers: REGIME_SOURCE=live and
    REGIME_LIVE_BASE_URL its URL, plus the REGIME_* settings given (e.g. REGIME_HTTP_TIMEOUT="1")."""
    with Upstream() as up:
        for name, value in {"REGIME_SOURCE": "live", "REGIME_LIVE_BASE_URL": up.url(""), **regime}.items():
            monkeypatch.setenv(name, value)
        yield up
