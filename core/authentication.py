"""`Authorization: Token <key>` for API clients, whose keys are stored as hashes."""

from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.models import ApiClient, hash_api_key


@dataclass(frozen=True)
class ClientUser:
    """What `request.user` is for an API client: authenticated, never staff."""

    client: ApiClient
    is_authenticated: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> str:
        return str(self.client.pk)

    def __str__(self) -> str:
        return self.client.name


def api_client(request: Request) -> ApiClient:
    """The API client that authenticated `request` (DRF types `request.auth` as its own Token).

    Views behind `HasScope` only run for an `ApiClient`; anything else is not authenticated.
    """
    client = request.auth
    if not isinstance(client, ApiClient):
        raise exceptions.NotAuthenticated()
    return client


class ApiClientTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[ClientUser, ApiClient] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid token header."))
        try:
            key = header[1].decode()
        except UnicodeError as error:
            raise exceptions.AuthenticationFailed(_("Invalid token header.")) from error
        client = ApiClient.objects.filter(key_hash=hash_api_key(key), is_active=True).first()
        if client is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        now = timezone.now()
        if client.last_used_at is None or (now - client.last_used_at).total_seconds() > 60:
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        return ClientUser(client), client

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiClientTokenScheme(OpenApiAuthenticationExtension):
    target_class = "core.authentication.ApiClientTokenAuthentication"
    name = "TokenAuth"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`, from `manage.py create_api_client`.",
        }
