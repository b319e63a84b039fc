"""Local stand-ins for the Azure services the pipeline reads, speaking their real HTTP protocols.

The real SDK clients (`LogsQueryClient`, `MetricsClient`) talk to them over loopback HTTP, so tests
and hand runs exercise the same code path as production, wire format included:

- `log_analytics.LogAnalyticsStandIn`: `POST /v1/workspaces/{id}/query`, KQL run by duckdb-kql.
- `metrics.MetricsStandIn`: `POST /subscriptions/{sub}/metrics:getBatch`.

`python -m chargeback_pipeline.standins --help` serves simulated tables by hand.
May import: `standins`, `sources` (the simulator, to serve), `storage`. Never `dagster`.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

LOOPBACK_HOST = "127.0.0.1"


class _QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up (timeout) is no error
            super().handle_error(request, client_address)


class _PostHandler(BaseHTTPRequestHandler):
    """Hands every POST (with its body read) to the stand-in's `handle(handler, body)`."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.standin.handle(self, body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests assert on what the stand-in recorded, not on stderr


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None) -> None:
    data = json.dumps(payload, separators=(",", ":")).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


class BackgroundHTTPServer:
    """A ThreadingHTTPServer on loopback, served from a daemon thread; port 0 picks a free port.
    Subclasses implement `handle(handler, body)` for POST requests."""

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK_HOST}:{self.port}"

    def start(self) -> Self:
        if self._server is None:
            server = _QuietThreadingHTTPServer((LOOPBACK_HOST, self._requested_port), _PostHandler)
            server.standin = self  # handlers reach their stand-in through self.server.standin
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # returns once serve_forever has returned
            self._server.server_close()
            self._server.standin = None
            self._server = None
        if self._thread is not None:
            # The serving thread ends here, not later: its end dropped the last reference to the server,
            # and through it to this stand-in and its DuckDB connection. Dropped in a daemon thread while
            # the interpreter was exiting, DuckDB's destructor aborted the process ("FATAL: exception not
            # rethrown", seen in a core dump of a test worker). shutdown() already waited for the loop.
            self._thread.join(timeout=10)
            self._thread = None

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
