"""The registers' CSV export and printed page (core.admin_registers) keep what staff typed
as typed, and an empty register still exports its header line."""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from privacy.models import Breach
from tests.factories import BreachFactory

pytestmark = pytest.mark.django_db

CSV = reverse("admin:privacy_breach_register_csv")
PRINT = reverse("admin:privacy_breach_register_print")
TYPED = "Export <clients_2026.csv> envoyé à <jean@ex.fr> & co"


def rows(response: object) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))  # type: ignore[attr-defined]


def test_text_with_angle_brackets_is_exported_and_printed_whole(as_dpo: Client) -> None:
    BreachFactory(reference="Envoi par erreur", nature=TYPED)

    header, line = rows(as_dpo.get(CSV))

    assert TYPED in line
    printed = as_dpo.get(PRINT).content.decode()
    assert "Export &lt;clients_2026.csv&gt; envoyé à &lt;jean@ex.fr&gt; &amp; co" in printed


def test_an_empty_register_exports_its_quoted_header_line(as_dpo: Client) -> None:
    assert not Breach.objects.exists()

    (header,) = rows(as_dpo.get(CSV))

    assert len(header) > 3 and all(header)
