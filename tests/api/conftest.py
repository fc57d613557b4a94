"""Fixtures for the REST API tests: purposes with their wording, a known contact."""

import pytest

from consent.models import Purpose
from contacts.models import Contact
from tests.factories import ContactFactory, PurposeFactory


@pytest.fixture
def newsletter() -> Purpose:
    return PurposeFactory(slug="newsletter", channels=["email", "sms"])


@pytest.fixture
def offers() -> Purpose:
    """A purpose whose grants wait for the confirmation link (double opt-in)."""
    return PurposeFactory(slug="offers", channels=["email"], double_opt_in=True)


@pytest.fixture
def camille() -> Contact:
    return ContactFactory(email="camille@example.fr", first_name="Camille")
