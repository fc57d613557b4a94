"""Links sent to people: absolute URLs on the public site, and signed, time-limited tokens.

A signed token carries its data itself (nothing stored): whoever holds it can read the data,
nobody can forge or alter it without `SECRET_KEY`, and it expires after `max_age`. The salt
names what the token is for, so that a token of one kind never opens another kind's page.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse


def site_url(viewname: str, *args: Any) -> str:
    """The absolute URL of a view on the public site (`SITE_URL`), for links in emails."""
    return settings.SITE_URL + reverse(viewname, args=args)


def signed_token(*, salt: str, data: Any) -> str:
    """A compressed, signed token carrying `data` (JSON-serialisable), for the purpose `salt`."""
    return signing.dumps(data, salt=salt, compress=True)


def signed_token_read(*, salt: str, token: str, max_age: timedelta) -> Any:
    """The data of a token signed for `salt`; raises `signing.BadSignature` when it is forged
    or altered, and `signing.SignatureExpired` (a subclass) when older than `max_age`."""
    return signing.loads(token, salt=salt, max_age=max_age)
