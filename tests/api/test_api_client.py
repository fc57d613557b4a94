"""`api_client(request)`: the views' one way to the ApiClient behind a request."""

import pytest
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from core.authentication import ApiClientTokenAuthentication, api_client
from core.models import Scope
from tests.factories import ApiClientFactory


def _request(authorization: str | None) -> Request:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    return Request(
        APIRequestFactory().get("/api/v1/purposes/", **headers),
        authenticators=[ApiClientTokenAuthentication()],
    )


@pytest.mark.django_db
def test_it_returns_the_client_whose_token_authenticated_the_request() -> None:
    # given
    client = ApiClientFactory(scopes=[Scope.CONTACTS_READ])

    # when
    found = api_client(_request(f"Token {client.plain_key}"))

    # then
    assert found == client
    assert found.has_scope(Scope.CONTACTS_READ)


def test_it_refuses_a_request_without_a_client_as_not_authenticated() -> None:
    with pytest.raises(exceptions.NotAuthenticated):
        api_client(_request(None))
