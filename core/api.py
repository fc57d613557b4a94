"""What every API view shares: error format and `Idempotency-Key` handling."""

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import exception_handler as drf_exception_handler

from core.authentication import api_client
from core.error_views import body_too_big_message
from core.errors import error_detail
from core.models import IdempotencyRecord
from core.services import idempotency_records_expired

IDEMPOTENCY_HEADER = "Idempotency-Key"


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, also turning domain (Django) validation errors into 400 field errors."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(error_detail(exc))
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": body_too_big_message()}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = errors_aligned(response.data, _request_data(context.get("request")))
    return response


def _request_data(request: Request | None) -> Any:
    try:
        return request.data if request is not None else None
    except exceptions.ParseError:
        return None


def errors_aligned(errors: Any, data: Any) -> Any:
    """Errors on a list input as a list, one entry per item: `[{}, {"purpose": [...]}]`.

    DRF reports them as `{index: errors}` (list serializers and `ListField`); this keeps one
    shape for every error about an array, whether the serializer or a service found it.
    """
    if isinstance(errors, dict) and isinstance(data, list) and _keyed_by_index(errors):
        items = [errors.get(index, errors.get(str(index))) for index in range(len(data))]
        if all(item is None or _is_message_list(item) for item in items):
            return [message for item in items if item for message in item]
        return [
            errors_aligned(item, data[index]) if item is not None else {}
            for index, item in enumerate(items)
        ]
    if isinstance(errors, dict):
        nested = data if isinstance(data, dict) else {}
        return {key: errors_aligned(value, nested.get(key)) for key, value in errors.items()}
    if isinstance(errors, list) and isinstance(data, list) and len(errors) == len(data):
        return [errors_aligned(item, data[index]) for index, item in enumerate(errors)]
    return errors


def _keyed_by_index(errors: dict) -> bool:
    return bool(errors) and all(str(key).isdigit() for key in errors)


def _is_message_list(item: Any) -> bool:
    return isinstance(item, list) and all(isinstance(message, str) for message in item)


def _request_fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=JSONEncoder, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        return Response(
            {IDEMPOTENCY_HEADER: [_("This key was already used with a different request.")]},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Run a write atomically; with an `Idempotency-Key`, replay the first answer on retries.

    The key row is inserted first in the same transaction: a concurrent retry with the same
    key waits on the unique index, then replays the committed answer instead of writing twice.
    Failed requests roll back with their key, so a corrected retry may reuse it. An answer is
    kept for `IDEMPOTENCY_KEY_TTL`; after that the key starts a new request.
    """

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        with transaction.atomic():
            if not key:
                return handler(view, request, *args, **kwargs)
            if len(key) > 255:
                raise exceptions.ValidationError(
                    {IDEMPOTENCY_HEADER: [_("Use at most 255 characters.")]}
                )
            fingerprint = _request_fingerprint(request)
            client = api_client(request)
            # an expired key is free again, whether or not the purge job has run yet
            idempotency_records_expired().filter(client=client, key=key).delete()
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        client=client,
                        key=key,
                        method=request.method or "",
                        path=request.path[:500],
                        request_hash=fingerprint,
                    )
            except IntegrityError:
                record = IdempotencyRecord.objects.get(client=client, key=key)
                return _replay(record, fingerprint)
            response = handler(view, request, *args, **kwargs)
            if response.status_code >= 400:
                transaction.set_rollback(True)
                return response
            record.response_status = response.status_code
            record.response_body = json.loads(json.dumps(response.data, cls=JSONEncoder))
            record.save(update_fields=["response_status", "response_body"])
            return response

    return wrapper
