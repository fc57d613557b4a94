"""A webhook receiver and a connection to it, for the push and feed tests."""

from collections.abc import Iterator

import pytest

from crmsync.connections import connection_create
from crmsync.models import Connection
from tests.crmsync.receiver import Receiver, receiver_running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiver_running() as running:
        yield running


@pytest.fixture
def hook(receiver: Receiver) -> Connection:
    """An enabled webhook connection to `receiver`, created before any event."""
    return connection_create(
        name="integrator",
        kind="webhook",
        base_url=receiver.url,
        credentials={"secret": receiver.secret},
        options={"timeout": 5},
    )
