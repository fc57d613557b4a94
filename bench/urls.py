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
from preferences.selectors import _token_holder_sql


def trivial(request: HttpRequest) -> HttpResponse:
    """The cheapest Django answer: the same middleware, no query, no template."""
    return HttpResponse("ok")


def _statements() -> list[str]:
    """What the preference page reads (`preferences.selectors`), by hand: the purposes with
    their wordings, the person's states with their ledger records, the interests marked
    chosen, the suppression of the address (the token's holder is the page's own statement)."""
    purpose, version = Purpose._meta.db_table, PurposeVersion._meta.db_table
    state, record = ConsentState._meta.db_table, ConsentRecord._meta.db_table
    interest, chosen = Interest._meta.db_table, Contact.interests.through._meta.db_table
    suppression = Suppression._meta.db_table
    return [
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
    """The preference page's five statements, written once and read whole, without the ORM or
    a template: the floor of any page that reads what this one shows from the database on
    each request."""
    purposes, states, interests, suppressed = STATEMENTS
    with connection.cursor() as cursor:
        cursor.execute(_token_holder_sql(), [token_hash(token)])
        row = cursor.fetchone()
        if row is None:
            return HttpResponse("unknown", status=404)
        holder = dict(zip((column.name for column in cursor.description), row, strict=True))
        cursor.execute(purposes)
        cursor.fetchall()
        cursor.execute(states, [holder["id"]])
        cursor.fetchall()
        cursor.execute(interests, [holder["id"]])
        cursor.fetchall()
        digests = [holder["email_digest"], holder["email_quoted_digest"] or holder["email_digest"]]
        cursor.execute(suppressed, digests)
        cursor.fetchall()
    return HttpResponse("ok")


urlpatterns = [
    path("bench/trivial/", trivial, name="bench-trivial"),
    path("bench/page-statements/<str:token>/", page_statements, name="bench-page-statements"),
    *app_urlpatterns,
]
