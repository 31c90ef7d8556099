"""A real webhook receiver for tests: an HTTP server on loopback answering each POST as scripted."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The part of a webhook URL that is its secret (as in a Slack URL): it must never be logged.
SECRET_PATH = "hooks/T0001/B0002/s3cr3t-hook-token-4d2a"
#: The longest a ``hang`` answer holds a request (the test's stop releases it sooner).
HANG_S = 30.0


class Receiver:
    """Answers the n-th POST with ``answers[n]`` (an HTTP status, or ``"hang"``: no answer), then 200.

    ``posts`` holds each request's JSON body and ``headers`` its headers, in arrival order.
    """

    def __init__(self, answers: list[int | str] | None = None):
        self.answers = list(answers or [])
        self.posts: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.posts.append(json.loads(body))
                    receiver.headers.append(dict(self.headers))
                    answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == "hang":
                    receiver.released.wait(HANG_S)
                    answer = 200
                try:
                    self.send_response(int(answer))
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up waiting: that was the point

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{SECRET_PATH}"

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiving(answers: list[int | str] | None = None) -> Iterator[Receiver]:
    """A started receiver, stopped on exit."""
    receiver = Receiver(answers)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def refused_url() -> str:
    """A loopback URL where nothing listens: a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{SECRET_PATH}"
