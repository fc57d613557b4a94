"""Admin personas: a marketer and a DPO with the roles `setup_roles` gives them."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import TOTPDeviceFactory, UserFactory


@pytest.fixture
def roles(db: None) -> None:
    call_command("setup_roles", stdout=StringIO())


def otp_verified_login(client: Client, user: object) -> TOTPDevice:
    """Log `user` in as the admin requires (two-factor on in tests): password and TOTP device.

    The session holds the verifying device the way `django_otp.login` stores it.
    """
    device = TOTPDeviceFactory(user=user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def _client_for(user: object) -> Client:
    # Our own strings are asserted in English; the French catalogue is compiled separately.
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, user)
    return client


@pytest.fixture
def marketer(roles: None) -> object:
    user = UserFactory(username="marketer-persona")
    user.groups.add(Group.objects.get(name="Marketers"))
    return user


@pytest.fixture
def dpo(roles: None) -> object:
    user = UserFactory(username="dpo-persona")
    user.groups.add(Group.objects.get(name="DPO"))
    return user


@pytest.fixture
def as_marketer(marketer: object) -> Client:
    return _client_for(marketer)


@pytest.fixture
def as_dpo(dpo: object) -> Client:
    return _client_for(dpo)


@pytest.fixture
def as_superuser(db: None) -> Client:
    return _client_for(UserFactory(username="root-persona", is_superuser=True))
