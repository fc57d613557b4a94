"""Keep the secret of the recipient pages out of logs.

The token in `/p/<token>/` and `/u/<token>/`, and the signed payloads of `/p/confirm/<...>/`
and of the double opt-in page `/confirm/<...>/`, open a person's preference center or confirm
an action in their name: anyone who reads a log
line holding one could use it. Django logs the path of every 4xx answer, gunicorn the request
line and the referer (the pages' own styles are fetched with the page URL as referer).
"""

import logging
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

SECRET_PATH = re.compile(r"((?:/p)?/confirm/|/[pu]/)[^/\s?#\"']+")
MASK = "…"


def mask_secret_paths(text: str) -> str:
    return SECRET_PATH.sub(rf"\g<1>{MASK}", text)


class SecretPathFilter(logging.Filter):
    """A logging filter (on the handlers) that masks the secret part of recipient-page URLs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secret_paths(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class AccessLogger(GunicornLogger):
    """gunicorn's logger (`--logger-class preferences.logging.AccessLogger`), with the secret
    part of recipient-page URLs masked in every field an access log format can use (request
    line, path, referer, headers and environ variables)."""

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            key: mask_secret_paths(value) if isinstance(value, str) else value
            for key, value in atoms.items()
        }
