"""The mail house's file of a campaign's postal steps (SPEC §3 campaigns, "Postal"): one line
per letter, with the address normalised for the post.

The lines follow the French postal address standard (AFNOR NF Z10-011, which La Poste's
sorting machines read): capitals without accents or punctuation, at most 38 characters a
line. Only letters sent (rows `sent`: eligible when their batch ran) to people still eligible
when the file is made, whose address is still deliverable and complete, make the file: one
that came back since, someone who withdrew since, or an erased person, is left out.
"""

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone

from campaigns.kinds import KindRules, kind_rules
from campaigns.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Recipient,
    RecipientStatus,
    StepChannel,
)
from contacts.models import ContactStatus, PostalDeliverability

# SPEC §3: `public_id`, name, address lines normalised, postal code, city, country.
COLUMNS = ("public_id", "name", "address_line1", "address_line2", "postal_code", "city", "country")
LINE_LENGTH = 38
CHUNK = 2000
CONTACT_FIELDS = (
    "contact__public_id",
    "contact__first_name",
    "contact__last_name",
    "contact__address_line1",
    "contact__address_line2",
    "contact__postal_code",
    "contact__city",
    "contact__country",
)
_NOT_ALLOWED = re.compile(r"[^A-Z0-9 ]+")


def postal_line(value: str) -> str:
    """One address line as the post reads it: no accents, capitals, no punctuation (which
    also keeps a spreadsheet from reading a line as a formula), single spaces, 38 characters."""
    plain = unicodedata.normalize("NFKD", value or "")
    plain = "".join(char for char in plain if not unicodedata.combining(char))
    plain = plain.replace("ß", "SS").replace("Œ", "OE").replace("œ", "oe").replace("Æ", "AE")
    plain = _NOT_ALLOWED.sub(" ", plain.upper())
    return " ".join(plain.split())[:LINE_LENGTH].strip()


def postal_letters(campaign: Campaign) -> Iterator[dict[str, str]]:
    """The campaign's letters, in step then row order, streamed from the database. A letter
    leaves when the mail house prints the file: the rule is applied again now (someone who
    withdrew, objected or was paused since the step ran gets no letter), and a cancelled
    campaign has none."""
    if campaign.status == CampaignStatus.CANCELLED:
        return
    rules, now = kind_rules(campaign), timezone.now()
    steps = {step.pk: step for step in campaign.steps.filter(channel=StepChannel.POSTAL)}
    rows = (
        Recipient.objects.filter(
            campaign=campaign,
            step__in=list(steps),
            status=RecipientStatus.SENT,
            contact__status=ContactStatus.ACTIVE,
            contact__postal_deliverability=PostalDeliverability.DELIVERABLE,
        )
        .exclude(contact__address_line1="")
        .exclude(contact__city="")
        .order_by("step__position", "pk")
        .values_list("step_id", "contact_id", *CONTACT_FIELDS)
    )
    chunk: list[tuple[Any, ...]] = []
    for row in rows.iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield from _still_eligible(campaign, rules, steps, chunk, now)
            chunk = []
    yield from _still_eligible(campaign, rules, steps, chunk, now)


def _still_eligible(
    campaign: Campaign,
    rules: KindRules,
    steps: dict[int, CampaignStep],
    rows: list[tuple[Any, ...]],
    now: datetime,
) -> Iterator[dict[str, str]]:
    eligible = {
        # the letter itself is counted already: the frequency limits are not asked again
        step_id: rules.eligible_ids(
            campaign, step, [row[1] for row in rows if row[0] == step_id], now, frequency=False
        )
        for step_id, step in steps.items()
        if any(row[0] == step_id for row in rows)
    }
    for step_id, contact_id, public_id, first, last, line1, line2, code, city, country in rows:
        if contact_id not in eligible[step_id]:
            continue
        yield {
            "public_id": str(public_id),
            "name": postal_line(f"{first} {last}"),
            "address_line1": postal_line(line1),
            "address_line2": postal_line(line2),
            "postal_code": postal_line(code),
            "city": postal_line(city),
            "country": (country or "FR").upper(),
        }


def postal_file_lines(campaign: Campaign) -> Iterator[str]:
    """The CSV (comma-separated, UTF-8, a header line), one line at a time."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for letter in postal_letters(campaign):
        writer.writerow(letter)
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def postal_file_response(campaign: Campaign) -> StreamingHttpResponse:
    """The file as a download, streamed (the API's and the admin's)."""
    response = StreamingHttpResponse(
        postal_file_lines(campaign), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="letters-{campaign.public_id}.csv"'
    return response
