"""A real SMTP server in the test process (aiosmtpd), for the sending path's SMTP cases: it
keeps what it accepts, refuses the addresses it is told to (550), and may answer slowly."""

import asyncio
import email
import socket
import threading
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

# The address the `smtp_sink` fixture's server answers 550 for at RCPT TO.
REFUSED_ADDRESS = "refused@example.fr"
# The address whose message the `smtp_sink` fixture's server rejects after reading it (554).
REJECTED_CONTENT_ADDRESS = "filtered@example.fr"
# The address whose message the `smtp_sink` fixture's server defers after reading it (451).
DEFERRED_ADDRESS = "greylisted@example.fr"


class SmtpSink:
    """The handler: `messages` accepted, in order; `refuse` answered 550 at RCPT TO, the
    messages to `reject` answered 554 once their content is read (as a spam filter does),
    those to `defer` answered 451 (try again later)."""

    def __init__(
        self,
        *,
        refuse: tuple[str, ...] = (),
        reject: tuple[str, ...] = (),
        defer: tuple[str, ...] = (),
        delay: float = 0.0,
    ) -> None:
        self.refuse = {address.lower() for address in refuse}
        self.reject = {address.lower() for address in reject}
        self.defer = {address.lower() for address in defer}
        self.delay = delay
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        recipients = {address.lower() for address in envelope.rcpt_tos}
        if self.reject & recipients:
            return "554 5.7.1 Message rejected: content refused by policy"
        if self.defer & recipients:
            return "451 4.7.1 Greylisted, try again later"
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def received(self) -> list[Message]:
        with self.lock:
            return list(self.messages)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sink_started(sink: SmtpSink) -> Controller:
    """An SMTP server on a free local port answering with `sink`; `.port` names it."""
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller


def smtp_settings(settings: Any, port: int) -> None:
    """Point Django's SMTP backend at a local server on `port` (plain, no login)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
