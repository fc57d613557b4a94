"""The client IP: X-Forwarded-For counts only when the peer is a trusted proxy."""

import pytest
from django.test import RequestFactory

from core.http import client_ip


def request_from(peer: str, forwarded: str | None = None):
    headers = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **headers)


def test_forwarded_for_is_ignored_from_an_untrusted_peer(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request_from("203.0.113.9", "198.51.100.1")) == "203.0.113.9"


def test_forwarded_for_names_the_client_behind_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request_from("10.0.0.2", "198.51.100.1")) == "198.51.100.1"


def test_a_client_cannot_spoof_its_address_through_the_proxy(settings):
    # given a client that sends its own X-Forwarded-For, which the proxy appends to
    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    request = request_from("10.0.0.2", "1.2.3.4, 198.51.100.1")
    # then the address the proxy saw wins, not the one the client wrote
    assert client_ip(request) == "198.51.100.1"


def test_chained_trusted_proxies_are_skipped(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.168.1.1"]
    request = request_from("10.0.0.2", "198.51.100.1, 192.168.1.1")
    assert client_ip(request) == "198.51.100.1"


@pytest.mark.parametrize("forwarded", ["", "not-an-ip", "unknown, 10.0.0.3"])
def test_a_malformed_header_falls_back_to_the_peer(settings, forwarded):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request_from("10.0.0.2", forwarded)) == "10.0.0.2"
