"""A webhook receiver on 127.0.0.1 (http.server in a thread), as an integrator would run one:
it verifies each delivery's Standard Webhooks signature with `standardwebhooks`' own
`Webhook.verify`, records what it accepted, and answers failures on demand."""

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Delivery:
    webhook_id: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    secret: str = SECRET
    # seconds each delivery takes to answer (a kill can then land in the middle of a batch)
    delay: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    refused_signatures: int = 0
    # the answers to give next, before answering 204 again: (status, Retry-After or None)
    failures: list[tuple[int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def fail_next(self, count: int, status: int = 500, retry_after: str | None = None) -> None:
        with self.lock:
            self.failures.extend([(status, retry_after)] * count)

    def received_ids(self) -> list[str]:
        with self.lock:
            return [delivery.webhook_id for delivery in self.deliveries]

    def copies(self) -> Counter[str]:
        return Counter(self.received_ids())

    def answer(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        with self.lock:
            if self.failures:
                status, retry_after = self.failures.pop(0)
                return status, {"Retry-After": retry_after} if retry_after else {}
        try:
            parsed = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.refused_signatures += 1
            return 400, {}
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.deliveries.append(Delivery(headers["webhook-id"], parsed, headers))
        return 204, {}


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, extra = receiver.answer(body, headers)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def receiver_running(receiver: Receiver | None = None) -> Iterator[Receiver]:
    receiver = receiver or Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/consent-desk"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    with receiver.lock:
        return [json.loads(json.dumps(delivery.body)) for delivery in receiver.deliveries]
