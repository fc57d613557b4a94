"""The one way a secret token is kept: only its SHA-256 digest is stored or compared.

API keys, preference-link tokens and the rate-limit keys of the recipient pages all use it,
so a digest stored by one surface is the digest another surface looks up.
"""

import hashlib


def token_hash(token: str) -> str:
    """The SHA-256 hex digest of a token (64 characters), as stored in place of the token."""
    return hashlib.sha256(token.encode()).hexdigest()
