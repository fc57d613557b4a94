"""Fixtures of the campaign tests: a real SMTP server in the test process."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.campaigns.smtp_sink import (
    DEFERRED_ADDRESS,
    REFUSED_ADDRESS,
    REJECTED_CONTENT_ADDRESS,
    SmtpSink,
    sink_started,
    smtp_settings,
)


@pytest.fixture
def smtp_sink(settings: Any) -> Iterator[SmtpSink]:
    """Django's SMTP backend pointed at a local aiosmtpd server that keeps what it accepts
    and refuses `REFUSED_ADDRESS` (550 at RCPT TO) and `REJECTED_CONTENT_ADDRESS` (554 after
    DATA), and defers `DEFERRED_ADDRESS` (451 after DATA)."""
    sink = SmtpSink(
        refuse=(REFUSED_ADDRESS,), reject=(REJECTED_CONTENT_ADDRESS,), defer=(DEFERRED_ADDRESS,)
    )
    controller = sink_started(sink)
    smtp_settings(settings, controller.port)
    try:
        yield sink
    finally:
        controller.stop()
