"""The application's URLs plus the yardsticks of the benchmarks: `bench/trivial/`, and
`bench/page-statements/<token>/`, the preference page's statements alone."""

# ruff: noqa: S608 - the statements are built from model metadata only; values are parameters

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import urlpatterns as app_urlpatterns
from consent.models import ConsentRecord, ConsentState, Purpose, PurposeVersion
from contacts.models import Contact, Interest, Suppression
from core.tokens import token_hash
from preferences.models import PreferenceToken


def trivial(request: HttpRequest) -> HttpResponse:
    """The cheapest Django answer: the same middleware, no query, no template."""
    return HttpResponse("ok")


def _statements() -> list[str]:
    """What the preference page reads (`preferences.selectors`), by hand: the token's holder,
    the active purposes with their wordings, the person's states with their ledger records,
    the interests marked chosen, the suppression of the address."""
    contact, link = Contact._meta.db_table, PreferenceToken._meta.db_table
    purpose, version = Purpose._meta.db_table, PurposeVersion._meta.db_table
    state, record = ConsentState._meta.db_table, ConsentRecord._meta.db_table
    interest, chosen = Interest._meta.db_table, Contact.interests.through._meta.db_table
    suppression = Suppression._meta.db_table
    return [
        f"SELECT c.id, c.email_digest, c.email_quoted_digest, c.* FROM {contact} c "
        f"JOIN {link} t ON t.contact_id = c.id WHERE t.digest = %s AND t.revoked_at IS NULL "
        f"AND c.status <> 'erased' "
        f"AND (c.email_changed_at IS NULL OR t.created_at >= c.email_changed_at)",
        f"SELECT v.*, p.* FROM {version} v JOIN {purpose} p ON p.id = v.purpose_id "
        f"WHERE p.is_active ORDER BY p.slug, v.number DESC",
        f"SELECT s.*, r.* FROM {state} s JOIN {record} r ON r.id = s.record_id "
        f"WHERE s.contact_id = %s",
        f"SELECT i.*, EXISTS (SELECT 1 FROM {chosen} ci WHERE ci.contact_id = %s "
        f"AND ci.interest_id = i.id) FROM {interest} i ORDER BY i.slug",
        f"SELECT reason FROM {suppression} WHERE digest IN (%s, %s) LIMIT 1",
    ]


STATEMENTS = _statements()


def page_statements(request: HttpRequest, token: str) -> HttpResponse:
    """The preference page's five statements, written once by hand and read whole, without
    the ORM or a template: the floor of any page that reads what this one shows from the
    database on each request."""
    holder, purposes, states, interests, suppressed = STATEMENTS
    with connection.cursor() as cursor:
        cursor.execute(holder, [token_hash(token)])
        row = cursor.fetchone()
        if row is None:
            return HttpResponse("unknown", status=404)
        pk, email_digest, quoted_digest = row[:3]
        cursor.execute(purposes)
        cursor.fetchall()
        cursor.execute(states, [pk])
        cursor.fetchall()
        cursor.execute(interests, [pk])
        cursor.fetchall()
        cursor.execute(suppressed, [email_digest, quoted_digest or email_digest])
        cursor.fetchall()
    return HttpResponse("ok")


urlpatterns = [
    path("bench/trivial/", trivial, name="bench-trivial"),
    path("bench/page-statements/<str:token>/", page_statements, name="bench-page-statements"),
    *app_urlpatterns,
]
