"""Field encryption: secrets and proofs stored as Fernet tokens, never as plaintext.

Keys: a `MultiFernet` of `FIELD_ENCRYPTION_KEY` (encrypts, and decrypts) and
`FIELD_ENCRYPTION_PREVIOUS_KEYS` (decrypt only). To rotate, put the new key first, the old one
in the previous keys, re-encrypt what is stored (`manage.py rotate_proof_archive`,
`manage.py rotate_crm_credentials`), then drop the old key.
"""

import json
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


def field_cipher() -> MultiFernet:
    """Encrypts with `FIELD_ENCRYPTION_KEY`, decrypts with it or a previous key (rotation)."""
    keys = [settings.FIELD_ENCRYPTION_KEY, *settings.FIELD_ENCRYPTION_PREVIOUS_KEYS]
    return MultiFernet([Fernet(key) for key in keys])


def json_encrypted(value: Any) -> str:
    """`value` as JSON, encrypted: a Fernet token (ASCII)."""
    return field_cipher().encrypt(json.dumps(value, sort_keys=True).encode()).decode("ascii")


def json_decrypted(token: str) -> Any:
    """What `json_encrypted` made of a value; `cryptography.fernet.InvalidToken` if no key
    reads it."""
    return json.loads(field_cipher().decrypt(token.encode("ascii")))
