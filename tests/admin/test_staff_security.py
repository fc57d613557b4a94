"""Staff logins: TOTP two-factor authentication, enrolment of a first device, django-axes."""

import re
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from freezegun import freeze_time

from tests.factories import TOTPDeviceFactory, UserFactory, totp_code

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"  # UserFactory's
NOW = "2026-03-02 10:00:00"


@pytest.fixture
def staff() -> object:
    return UserFactory(username="staff-member", is_superuser=True)


def log_in(client: Client, username: str, password: str = PASSWORD, code: str = "", **extra):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "otp_token": code, "next": "/admin/"},
        **extra,
    )


def test_the_requirement_is_on_in_tests_as_in_production(settings):
    assert settings.DEBUG is False
    assert settings.STAFF_OTP_REQUIRED is True


def test_a_staff_session_without_a_verified_device_is_refused_the_admin(staff):
    TOTPDeviceFactory(user=staff)
    client = Client()
    client.force_login(staff)  # the password step only

    response = client.get("/admin/contacts/contact/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@freeze_time(NOW)
def test_the_right_code_from_the_device_logs_in(staff):
    device = TOTPDeviceFactory(user=staff)
    client = Client()

    response = log_in(client, "staff-member", code=totp_code(device))

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/contacts/contact/").status_code == 200


@freeze_time(NOW)
def test_a_wrong_code_fails_and_the_admin_stays_closed(staff):
    device = TOTPDeviceFactory(user=staff)
    right = totp_code(device)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    client = Client(HTTP_ACCEPT_LANGUAGE="en")

    response = log_in(client, "staff-member", code=wrong)

    assert response.status_code == 200
    assert "This code is wrong or has expired" in response.content.decode()
    assert client.get("/admin/").status_code == 302


@freeze_time(NOW)
def test_a_code_from_another_time_window_fails(staff):
    device = TOTPDeviceFactory(user=staff)
    client = Client()
    stale = totp_code(device, at=time.time() + 10 * 60)  # the code of ten minutes later

    response = log_in(client, "staff-member", code=stale)

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_an_enrolled_user_must_give_a_code(staff):
    TOTPDeviceFactory(user=staff)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")

    response = log_in(client, "staff-member")

    assert "Enter the code your authenticator app shows" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_a_newcomer_without_a_device_is_led_to_enrol_and_then_gets_in(staff):
    with freeze_time(NOW) as clock:
        _enrol(staff, clock)


def _enrol(staff: object, clock: object) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")

    # the password alone opens no admin page: it leads to the enrolment page
    assert log_in(client, "staff-member").status_code == 302
    assert client.get("/admin/contacts/contact/").status_code == 302
    response = client.get("/admin/login/?next=/admin/contacts/contact/", follow=True)
    assert (
        response.redirect_chain[-1][0] == "/admin/otp/enrol/?next=%2Fadmin%2Fcontacts%2Fcontact%2F"
    )
    page = response.content.decode()
    assert 'src="data:image/svg+xml;base64,' in page
    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    secret = re.search(r"<code>([A-Z2-7 ]+)</code>", page).group(1).replace(" ", "")
    assert "otpauth://totp/" in device.config_url and f"secret={secret}" in device.config_url

    wrong = client.post(response.redirect_chain[-1][0], {"otp_token": "000000"})
    assert "This code is wrong or has expired" in wrong.content.decode()
    assert client.get("/admin/").status_code == 302

    clock.tick(60)  # past django-otp's back-off after the wrong code
    right = client.post(response.redirect_chain[-1][0], {"otp_token": totp_code(device)})
    assert right.status_code == 302 and right["Location"] == "/admin/contacts/contact/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/contacts/contact/").status_code == 200


@freeze_time(NOW)
def test_a_password_alone_cannot_enrol_a_second_device(staff):
    TOTPDeviceFactory(user=staff)
    client = Client()
    client.force_login(staff)

    response = client.get("/admin/otp/enrol/")

    assert response.status_code == 302 and response["Location"] == "/admin/login/"
    assert TOTPDevice.objects.filter(user=staff).count() == 1


def test_the_enrolment_page_needs_a_logged_in_staff_user():
    response = Client().get("/admin/otp/enrol/")

    assert response.status_code == 302 and response["Location"] == "/admin/login/"


def test_without_the_requirement_the_password_is_enough(staff, settings):
    settings.STAFF_OTP_REQUIRED = False
    client = Client()

    assert log_in(client, "staff-member").status_code == 302
    assert client.get("/admin/contacts/contact/").status_code == 200


@freeze_time(NOW)
def test_axes_locks_the_username_out_from_that_ip_after_too_many_failures(staff, settings):
    device = TOTPDeviceFactory(user=staff)
    client = Client()
    for _attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "staff-member", password="wrong").status_code == 200
    # the last failure allowed locks the pair out at once
    assert log_in(client, "staff-member", password="wrong").status_code == 429

    locked = log_in(client, "staff-member", code=totp_code(device))

    assert locked.status_code == 429
    assert client.get("/admin/").status_code == 302


@freeze_time(NOW)
def test_wrong_codes_count_towards_the_lockout(staff, settings):
    device = TOTPDeviceFactory(user=staff)
    client = Client()
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "staff-member", code="000000")
        device.throttle_reset()  # django-otp's own backoff would refuse the right code anyway

    assert log_in(client, "staff-member", code=totp_code(device)).status_code == 429


@freeze_time(NOW)
def test_the_lockout_is_keyed_on_the_client_ip_behind_a_trusted_proxy(staff, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    device = TOTPDeviceFactory(user=staff)
    client = Client()
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "staff-member", password="wrong", HTTP_X_FORWARDED_FOR="203.0.113.5")

    assert log_in(client, "staff-member", HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 429
    other_office = log_in(
        client, "staff-member", code=totp_code(device), HTTP_X_FORWARDED_FOR="198.51.100.7"
    )
    assert other_office.status_code == 302


@pytest.mark.parametrize("required", [True, False])
def test_seed_demo_says_whether_the_demo_users_must_enrol(settings, required):
    settings.STAFF_OTP_REQUIRED = required
    out = StringIO()

    call_command("seed_demo", stdout=out, stderr=StringIO())

    assert ("Two-factor authentication is on" in out.getvalue()) is required
