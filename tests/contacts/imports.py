"""Helpers of the import tests: files built in memory, an import run to its end in-process."""

import io
from typing import Any

import openpyxl

from contacts.imports import contact_import_run, contacts_import
from contacts.models import ContactImport


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
