"""HTTP receivers for what fakeai pushes (alert webhooks, OTLP exports): a small ``http.server``
on 127.0.0.1 in a thread that records every POST, answers it with a given status, or holds it
unanswered until the test lets it go."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records ``(path, headers (names in lower case), body)`` of every POST in ``posts``.

    Args:
        status: What it answers.
        body: The body of its answers.
        hold: Hold every POST unanswered until ``release()`` (or the receiver stops);
            ``holding`` counts those held now.
    """

    def __init__(self, status: int = 200, body: bytes = b"", hold: bool = False) -> None:
        self.status = status
        self.body = body
        self.hold = hold
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.holding = 0
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.url = ""

    def release(self) -> None:
        self._released.set()

    def bodies(self, path: str | None = None) -> list[bytes]:
        with self._lock:
            return [body for at, _, body in self.posts if path is None or at == path]

    @contextlib.contextmanager
    def running(self, port: int = 0) -> Iterator[Receiver]:
        """Serve on ``port`` (0: a free one); ``url`` is its base URL meanwhile."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.holding += receiver.hold
                if receiver.hold:
                    receiver._released.wait()
                    with receiver._lock:
                        receiver.holding -= 1
                self.send_response(receiver.status)
                self.send_header("content-length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="test-receiver", daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            self._released.set()
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
