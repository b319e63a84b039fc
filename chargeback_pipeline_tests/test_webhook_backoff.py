"""The alert webhook's back-off as it happens: the gaps between the posts a local receiver sees while it
answers 503, against what AlertWebhookResource.post's docstring says (urllib3 2's `Retry`: the first retry
at once, retry n after `backoff_seconds` x 2^(n-1))."""

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chargeback_pipeline.defs.resources import AlertWebhookResource, WebhookError

BACKOFF = 0.2
SLACK = 0.5  # a loaded machine may answer late; it never answers early


def test_the_webhook_retries_once_at_once_then_doubles_the_wait():
    arrivals: list[float] = []

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self):
            arrivals.append(time.monotonic())
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        webhook = AlertWebhookResource(
            url=f"http://127.0.0.1:{server.server_port}/hook", attempts=4, backoff_seconds=BACKOFF
        )
        with pytest.raises(WebhookError, match="HTTP 503"):
            webhook.post({"text": "an alert"})
    finally:
        server.shutdown()
        server.server_close()

    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) == 4, gaps
    expected = [0.0, BACKOFF * 2, BACKOFF * 4]
    for gap, wait in zip(gaps, expected, strict=True):
        assert wait <= gap + 0.01 and gap < wait + SLACK, f"waits {gaps}, expected {expected}"
