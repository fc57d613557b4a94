"""A webhook receiver and a connection to it, for the push and feed tests; the Salesforce
emulator over TLS."""

from collections.abc import Iterator

import pytest

from crmsync.connections import connection_create
from crmsync.models import Connection
from tests.crmsync.receiver import Receiver, receiver_running
from tests.emulators.salesforce import SalesforceEmulator


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


@pytest.fixture
def salesforce(monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceEmulator]:
    """The Salesforce emulator; simple-salesforce speaks https only, so requests trusts the
    emulator's certificate for the test."""
    with SalesforceEmulator() as emulator:
        assert isinstance(emulator, SalesforceEmulator)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.certificate))
        yield emulator
