"""Signed links: absolute on the public site, unforgeable, time-limited, and readable when
issued before (the same salts and serialisation as `django.core.signing.dumps`)."""

from datetime import timedelta

import pytest
from django.core import signing
from django.utils.crypto import salted_hmac
from freezegun import freeze_time

from consent.services import CONFIRMATION_SALT, confirmation_token_read
from consent.services.signups import SIGNUP_SALT, signup_token_read
from core.links import signed_token, signed_token_read, site_url
from preferences.services import LINK_SALT, action_link_read
from tests.factories import ContactFactory

DAY = timedelta(days=1)


def test_a_site_url_is_absolute_on_the_public_site(settings):
    settings.SITE_URL = "https://consent.example.fr"

    assert site_url("preferences:center", "tok") == "https://consent.example.fr/p/tok/"
    assert site_url("health") == "https://consent.example.fr/health/"


def test_a_signed_token_gives_back_its_data_for_its_salt_only():
    token = signed_token(salt="one.purpose", data={"c": "abc", "r": [1, 2]})

    assert signed_token_read(salt="one.purpose", token=token, max_age=DAY) == {
        "c": "abc",
        "r": [1, 2],
    }
    with pytest.raises(signing.BadSignature):
        signed_token_read(salt="another.purpose", token=token, max_age=DAY)
    with pytest.raises(signing.BadSignature):
        signed_token_read(salt="one.purpose", token=token[:-2] + "xx", max_age=DAY)


def test_a_signed_token_expires_after_max_age():
    with freeze_time("2026-03-01 10:00"):
        token = signed_token(salt="one.purpose", data="x")

    with freeze_time("2026-03-02 09:59"):
        assert signed_token_read(salt="one.purpose", token=token, max_age=DAY) == "x"
    with freeze_time("2026-03-02 10:01"), pytest.raises(signing.SignatureExpired):
        signed_token_read(salt="one.purpose", token=token, max_age=DAY)


def test_a_token_has_the_format_of_django_s_signing_both_ways():
    data = {"e": "camille@example.fr", "g": [{"p": "newsletter"}] * 20}
    issued_before = signing.dumps(data, salt="one.purpose", compress=True)

    assert signed_token_read(salt="one.purpose", token=issued_before, max_age=DAY) == data
    assert signing.loads(signed_token(salt="one.purpose", data=data), salt="one.purpose") == data


@pytest.mark.django_db
def test_a_double_opt_in_link_issued_before_still_confirms():
    camille = ContactFactory()
    payload = {"c": str(camille.public_id), "r": ["a-record"]}
    token = signing.dumps(payload, salt="consent.double-opt-in", compress=True)

    assert CONFIRMATION_SALT == "consent.double-opt-in"
    assert confirmation_token_read(token) == (camille, ["a-record"])


def test_a_signup_link_issued_before_still_reads():
    payload = {"e": "back@example.fr", "n": "nonce", "l": "en", "g": [{"p": "newsletter"}]}
    token = signing.dumps(payload, salt="consent.suppressed-address-signup", compress=True)

    request = signup_token_read(token)

    assert SIGNUP_SALT == "consent.suppressed-address-signup"
    assert (request.email, request.nonce, request.language) == ("back@example.fr", "nonce", "en")
    assert request.grants == [{"p": "newsletter"}]


@pytest.mark.django_db
def test_a_preference_action_link_issued_before_still_opens():
    camille = ContactFactory(email="camille@example.fr")
    mark = salted_hmac("preferences.action-link", camille.email).hexdigest()[:32]
    payload = {"c": str(camille.public_id), "a": "download", "e": "", "m": mark}
    token = signing.dumps(payload, salt="preferences.action-link", compress=True)

    assert LINK_SALT == "preferences.action-link"
    assert action_link_read(token) == (camille, "download", "")
