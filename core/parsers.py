"""JSON bodies for the API, refused with a 400 when nested deeper than any real payload."""

from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import exceptions, parsers

# The deepest real body (a form submission's contact address) is 3 levels; 32 leaves room
# while keeping every later recursion over the data (validation, error shaping) shallow.
MAX_JSON_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's parser, answering a too-deeply nested body as a parse error (400), never a 500.

    Python's decoder raises `RecursionError` past ~1,000 levels, which DRF lets through.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise exceptions.ParseError(_too_deep()) from error
        if json_depth(data) > MAX_JSON_DEPTH:
            raise exceptions.ParseError(_too_deep())
        return data


def _too_deep() -> str:
    return _("JSON parse error - nested deeper than %d levels.") % MAX_JSON_DEPTH


def json_depth(data: Any) -> int:
    """How many arrays and objects deep `data` goes, walked without recursion."""
    deepest = 0
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest
