"""Local HTTP emulators of the CRMs' documented endpoints, for the tests and the benchmarks.

Each emulator is an in-memory server started on 127.0.0.1 with an ephemeral port, in a
thread of the test process; the real clients (hubspot-api-client, simple-salesforce) talk to
it over real HTTP. What is shared lives here: the server thread, the call log, and the
faults a test can ask for (a given status for the next calls, a share of throttled calls
drawn from a seeded generator, a cap of requests per second, a delay before each answer).

State lives in dicts and sorted indexes, so that an emulator holds 100,000 contacts and
answers the pull's "changed since" queries without scanning them; a benchmark passes
`keep_bodies=False` so that the call log keeps no request bodies. Being in the test's own
process, an emulator shares its interpreter (and GIL) with the client it serves.
"""

import json
import random
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    """One request the emulator answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: Any = None  # the decoded JSON body, when the emulator keeps bodies


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    status: int
    body: Any
    headers: dict[str, str]


class Throttle:
    """Which calls are refused for the rate limit: a seeded share of them, and/or whatever
    goes beyond `per_second` requests in the current second."""

    def __init__(self, *, ratio: float = 0.0, seed: int = 0, per_second: int | None = None):
        self.ratio = ratio
        self.random = random.Random(seed)
        self.per_second = per_second
        self.window: deque[float] = deque()

    def refuses(self) -> bool:
        if self.per_second is not None:
            now = time.monotonic()
            while self.window and now - self.window[0] >= 1.0:
                self.window.popleft()
            if len(self.window) >= self.per_second:
                return True
            self.window.append(now)
        return bool(self.ratio) and self.random.random() < self.ratio


class EmulatorServer:
    """The server thread, the call log and the faults; subclasses route the requests."""

    scheme = "http"

    def __init__(self, *, keep_bodies: bool = True) -> None:
        self.keep_bodies = keep_bodies
        self.calls: list[Call] = []
        self.lock = threading.RLock()
        self.faults: deque[Fault] = deque()
        self.throttle: Throttle | None = None
        self.delay = 0.0  # seconds each answer waits (a slow CRM, for timeouts)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "EmulatorServer":
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        context = self.ssl_context()
        if context is not None:
            # the handshake happens in the request's thread: a client that refuses the
            # certificate does not block the accept loop
            self.server.socket = context.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ssl_context(self) -> ssl.SSLContext | None:
        return None

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the emulator first"
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    # -- faults ------------------------------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `count` authenticated calls with this status instead."""
        with self.lock:
            for _ in range(count):
                self.faults.append(Fault(status, body, dict(headers or {})))

    def throttled(self) -> Response:
        """The answer to a call refused by the throttle (each CRM has its own)."""
        raise NotImplementedError

    # -- the call log ------------------------------------------------------------------------
    def calls_to(self, path_part: str, method: str | None = None) -> list[Call]:
        with self.lock:
            return [
                call
                for call in self.calls
                if path_part in call.path and (method is None or call.method == method)
            ]

    # -- routing -----------------------------------------------------------------------------
    def authenticate(self, headers: Any) -> Response | None:
        """None when the call may proceed, else the answer refusing it."""
        raise NotImplementedError

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Response:
        raise NotImplementedError

    def answer(self, method: str, target: str, headers: Any, raw: bytes) -> Response:
        if self.delay:
            time.sleep(self.delay)
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body, response = None, self.malformed("The body is not JSON.")
        else:
            response = (
                self.authenticate(headers)
                or self.fault()
                or self.dispatch(method, parts.path, query, body)
            )
        with self.lock:
            kept = body if self.keep_bodies else None
            self.calls.append(Call(method, parts.path, query, response.status, kept))
        return response

    def fault(self) -> Response | None:
        with self.lock:
            if self.faults:
                fault = self.faults.popleft()
                return Response(fault.status, fault.body, fault.headers)
            if self.throttle is not None and self.throttle.refuses():
                return self.throttled()
        return None

    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Response:
        with self.lock:
            return self.route(method, path, query, body)

    def malformed(self, message: str) -> Response:
        return Response(400, {"message": message})


def _handler_for(emulator: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # keep-alive, as the real APIs do: the clients' connection pools reuse connections
        protocol_version = "HTTP/1.1"
        # headers and body leave in one write, without Nagle's wait for the client's delayed
        # ACK (40 ms a call otherwise, on keep-alive connections)
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (ssl.SSLError, ConnectionError):
                # a client refusing our certificate, or hanging up: nothing to answer
                self.close_connection = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            response = emulator.answer(self.command, self.path, self.headers, raw)
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            self.send_response(response.status)
            if payload:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the call log says what happened; stderr stays quiet

    return Handler
