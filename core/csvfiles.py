"""CSV files people open in a spreadsheet: no cell written by us is ever read as a formula."""

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# What makes Excel, LibreOffice Calc or Google Sheets read a cell as a formula (OWASP CSV
# injection, ASVS 1.2.10), also after leading whitespace, which they strip; the full-width
# and small forms (＝ ＋ － ＠, ﹦ ﹢ ﹣ ﹫) count too, some apps fold them to ASCII.
FORMULA_STARTS = frozenset("=+-@")
CONTROL_STARTS = frozenset("\t\r\n\0")
# A phone number in E.164 is digits only: nothing to evaluate, and it stays machine-readable.
E164 = re.compile(r"\+[0-9]{6,15}")


def csv_cell(value: Any) -> Any:
    """The value as written in a cell: dates in ISO 8601, None empty, formulas neutralised."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and _reads_as_formula(value) and not E164.fullmatch(value):
        return "'" + value  # a leading quote makes spreadsheets show the text as it is
    return value


def _reads_as_formula(text: str) -> bool:
    if text[:1] in CONTROL_STARTS:
        return True
    first = text.lstrip()[:1]
    return bool(first) and unicodedata.normalize("NFKC", first)[:1] in FORMULA_STARTS


def csv_text(rows: Iterable[Mapping[str, Any]], *, header: Sequence[str] = ()) -> str:
    """Rows of one shape as CSV text with a header line, every cell through `csv_cell`;
    with no rows, the `header` line alone (if given)."""
    rows = list(rows)
    fieldnames = list(rows[0]) if rows else list(header)
    if not fieldnames:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fieldnames)
    writer.writerow({name: csv_cell(name) for name in fieldnames})
    for row in rows:
        writer.writerow({key: csv_cell(value) for key, value in row.items()})
    return out.getvalue()
