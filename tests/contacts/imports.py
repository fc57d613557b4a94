"""Helpers of the import tests: files built in memory, an import run to its end in-process."""

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openpyxl
import pytest

from contacts.imports import contact_import_run, contacts_import
from contacts.models import ContactImport
from tests.conftest import USES_REAL_WORKER, wait_for


def csv_bytes(lines: list[str], *, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    return "\n".join(line.replace(",", delimiter) for line in lines).encode(encoding) + b"\n"


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def run_import(content: bytes, *, name: str = "list.csv", batch_size: int = 1000, **kwargs: Any):
    """Check, store and load a list synchronously; answer the finished import."""
    contact_import = contacts_import(
        file=io.BytesIO(content), file_name=name, queue=False, **kwargs
    )
    return contact_import_run(contact_import_id=contact_import.pk, batch_size=batch_size)


def rejected(contact_import: ContactImport) -> list[tuple[int, str]]:
    return list(contact_import.rejections.values_list("line", "reason"))


# Imports started through a public surface are loaded by the worker once their transaction
# commits: the real one (the test then needs committed rows) or in-process on commit.
LOADED_BY_WORKER = (
    pytest.mark.django_db(transaction=True) if USES_REAL_WORKER else pytest.mark.django_db
)


@contextmanager
def loaded_by_worker(capture_on_commit: Any) -> Iterator[None]:
    """Run the block, then wait until the worker has finished every import it started."""
    if USES_REAL_WORKER:
        yield
        wait_for(
            lambda: not ContactImport.objects.exclude(status__in=["done", "failed"]).exists(),
            timeout=60,
        )
    else:
        with capture_on_commit(execute=True):
            yield
