"""Jobs over many rows read them in batches, by keyset: one helper for every such loop."""

from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any

from django.db.models import QuerySet


def in_batches(
    queryset: QuerySet[Any, Any],
    *,
    batch_size: int,
    key: Callable[[Any], Any] = attrgetter("pk"),
) -> Iterator[list[Any]]:
    """The rows of `queryset`, `batch_size` at a time, in primary-key order.

    Each read starts after the last key of the previous batch (`key` reads it from a row: a
    model's `pk` by default, the row itself for `values_list("id", flat=True)`): a row the
    job could not change is not read again and again, and rows it changed never shift the
    next batch. Each batch is read when the caller asks for it, so work done on one batch
    (in its own transactions) is committed before the next read.
    """
    last = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        batch = list(page[:batch_size])
        if batch:
            yield batch
        if len(batch) < batch_size:
            return
        last = key(batch[-1])


def each_pk(queryset: QuerySet[Any, Any], *, batch_size: int) -> Iterator[Any]:
    """Every primary key `queryset` selects, read `batch_size` at a time (`in_batches`)."""
    keys = queryset.values_list("pk", flat=True)
    for batch in in_batches(keys, batch_size=batch_size, key=lambda pk: pk):
        yield from batch
