"""The admin home's dashboards (issue 15 point 2; SPEC "security, registers and the DPO's
view"): the DPO's deadlines, consent rates, unsubscribes and complaints, suppressions and the
ledger's seals and checks; the marketer's audiences, campaign results, consent growth and
exclusion reasons. Who sees which is decided by permissions."""

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from html import unescape
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.template.loader import get_template
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from freezegun import freeze_time

from campaigns.models import Recipient
from campaigns.selectors import campaign_stats
from consent.eligibility import eligible_contacts
from consent.ledger import LedgerProblem, LedgerReport, ledger_seal, ledger_verification_record
from consent.models import (
    ConsentRateSnapshot,
    ConsentRecord,
    ConsentState,
    LedgerVerification,
    Purpose,
    SourceKind,
)
from consent.tasks import snapshot_consent_rates, verify_ledger
from contacts.models import (
    Contact,
    ContactStatus,
    Suppression,
    SuppressionReason,
    TimelineEvent,
    TimelineKind,
)
from contacts.services import suppressions_add_many
from core.dashboard import (
    COMPUTING_KEY,
    DPO,
    FIGURES_KEY,
    MARKETER,
    REFRESHING_KEY,
    DashboardRefreshFailed,
    consent_rates,
    dpo_figures_count,
    unsubscribes_and_complaints,
)
from core.tasks import refresh_dashboards
from preferences.services import Visit, preference_token_issue, preferences_unsubscribe_all
from privacy.models import Breach, PrivacyRequest, PrivacyRequestStatus
from tests.admin.conftest import otp_verified_login
from tests.campaigns.test_stats import campaign_with_feedback
from tests.factories import (
    BreachFactory,
    ContactFactory,
    PrivacyRequestFactory,
    PurposeFactory,
    UserFactory,
    grant,
)
from tests.preferences.conftest import BROWSER, save_consents, unsubscribe_path

pytestmark = pytest.mark.django_db

HOME = "/admin/"
NOW = "2026-11-26T09:00:00Z"  # a Thursday, 10:00 in Paris


def client_for(user: object, language: str = "en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    otp_verified_login(client, user)
    return client


def cells(row: str) -> list[str]:
    return [
        " ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split())
        for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    ]


def table(text: str, css_class: str) -> list[list[str]]:
    found = re.search(rf'<table class="cd-table {css_class}">(.*?)</table>', text, re.S)
    assert found, css_class
    return [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)]


def captioned(text: str, caption: str) -> list[list[str]]:
    """The rows of the table with that caption (a chart's numbers)."""
    found = re.search(rf"<caption>{re.escape(caption)}</caption>(.*?)</table>", text, re.S)
    assert found, caption
    return [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)]


def request_due(due_at: object, status: str = "") -> PrivacyRequest:
    request = PrivacyRequestFactory()
    changes = {"due_at": due_at, **({"status": status} if status else {})}
    PrivacyRequest.objects.filter(pk=request.pk).update(**changes)
    return request


@pytest.fixture
def frozen() -> Iterator[None]:
    with freeze_time(NOW):
        yield


# --- who sees what -----------------------------------------------------------------------------


def test_the_dpo_sees_the_dpo_dashboard_above_the_sections(as_dpo: Client) -> None:
    page = as_dpo.get(HOME)

    text = page.content.decode()
    assert page.status_code == 200
    assert "Site administration" in text
    assert "DPO dashboard" in text
    assert "Data-subject requests" in text
    assert 'id="all-sections"' in text and 'href="#all-sections"' in text
    # Django's list of sections is still there, below the dashboard
    assert text.index("Data-subject requests") < text.index('id="content-main"')
    assert reverse("admin:privacy_privacyrequest_changelist") in text
    assert "Marketing dashboard" not in text


def test_a_marketer_sees_the_marketing_dashboard_and_none_of_the_dpo_panels(
    as_marketer: Client,
) -> None:
    for url in (HOME, HOME + "?view=dpo"):
        text = as_marketer.get(url).content.decode()

        assert "Audience per purpose and channel" in text
        for dpo_panel in ("dash-requests", "dash-rates", "dash-feedback", "dash-ledger"):
            assert f'id="{dpo_panel}"' not in text
        assert 'id="dash-suppressions"' not in text
        assert 'href="?view=dpo"' not in text


def test_a_superuser_switches_between_both_dashboards(as_superuser: Client) -> None:
    dpo_page = as_superuser.get(HOME).content.decode()
    marketer_page = as_superuser.get(HOME + "?view=marketer").content.decode()

    assert "Data-subject requests" in dpo_page
    assert 'href="?view=marketer"' in dpo_page
    assert "Audience per purpose and channel" in marketer_page
    assert "Data-subject requests" not in marketer_page
    assert 'href="?view=dpo"' in marketer_page


def test_the_dashboard_follows_permissions_not_group_names(db: None) -> None:
    # given: a staff user outside both groups, then given the right to view campaigns
    user = UserFactory(username="analyst")
    client = client_for(user)
    assert 'id="dashboard"' not in client.get(HOME).content.decode()

    user.user_permissions.add(Permission.objects.get(codename="view_campaign"))

    assert "Marketing dashboard" in client.get(HOME).content.decode()


def test_staff_without_either_right_keep_django_s_index_only(db: None) -> None:
    text = client_for(UserFactory(username="helpdesk")).get(HOME).content.decode()

    assert "Site administration" in text
    assert 'id="dashboard"' not in text


# --- the DPO's dashboard -----------------------------------------------------------------------


def test_the_dpo_sees_late_and_due_requests_with_links_and_deadlines_in_words(
    dpo: object, frozen: None
) -> None:
    now = timezone.now()
    late = request_due(now - timedelta(days=4))
    due = request_due(now + timedelta(days=3))
    later = request_due(now + timedelta(days=20))
    done = request_due(now - timedelta(days=10), status=PrivacyRequestStatus.COMPLETED)

    text = client_for(dpo).get(HOME).content.decode()

    assert "1 late request" in text
    assert "1 request due within 7 days" in text
    for request in (late, due):
        assert reverse("admin:privacy_privacyrequest_change", args=[request.pk]) in text
    for request in (later, done):
        assert reverse("admin:privacy_privacyrequest_change", args=[request.pk]) not in text
    assert "4 days late" in text
    assert "due in 3 days" in text


def test_a_request_due_later_today_is_due_today_and_one_past_this_morning_is_late(
    dpo: object, frozen: None
) -> None:
    now = timezone.now()
    request_due(now + timedelta(hours=3))
    request_due(now - timedelta(hours=1))

    text = client_for(dpo).get(HOME).content.decode()

    assert "due today" in text
    assert "late since today" in text


def test_the_rates_table_matches_the_consent_states_of_the_people_on_file(as_dpo: Client) -> None:
    # given: four people on file, three granted email, one of whom withdrew; one erased
    offers = PurposeFactory(slug="offers", name_en="Offers", channels=["email", "sms"])
    people = [ContactFactory() for _ in range(4)]
    for person in people[:3]:
        grant(person, offers, "email")
    grant(people[2], offers, "email", action="withdraw", evidence=None)
    grant(people[0], offers, "sms")
    gone = ContactFactory()
    grant(gone, offers, "email")
    gone.status = ContactStatus.ERASED
    gone.save(update_fields=["status"])

    rows = table(as_dpo.get(HOME).content.decode(), "cd-rates-table")

    assert rows[1:] == [
        ["Offers", "Email", "2", "0", "1", "0", "50.0 %"],
        ["Offers", "SMS", "1", "0", "0", "0", "25.0 %"],
    ]


def test_past_weeks_of_the_rate_come_from_the_daily_snapshots(db: None) -> None:
    offers = PurposeFactory(slug="offers", channels=["email"])
    people = [ContactFactory() for _ in range(4)]
    with freeze_time("2026-11-13T21:00:00Z"):  # a Friday, two weeks before NOW
        grant(people[0], offers, "email")
        assert snapshot_consent_rates() == 1
    with freeze_time(NOW):
        grant(people[1], offers, "email")
        figures = dpo_figures_count(timezone.now())
        chart = consent_rates(list(Purpose.objects.all()), figures)["charts"][0]

    values = chart.series[0].values
    assert figures.weeks[-3] == date(2026, 11, 9)
    assert values[-3] == 25.0  # the snapshot of that week
    assert values[-2] is None  # no snapshot last week
    assert values[-1] == 50.0  # now
    assert ConsentRateSnapshot.objects.get().granted == 1


def test_a_second_snapshot_the_same_day_replaces_the_first(db: None) -> None:
    offers = PurposeFactory(channels=["email"])
    person = ContactFactory()
    snapshot_consent_rates()
    grant(person, offers, "email")

    snapshot_consent_rates()

    snapshot = ConsentRateSnapshot.objects.get()
    assert (snapshot.granted, snapshot.contacts) == (1, 1)


def test_unsubscribes_and_complaints_are_counted_in_the_week_they_happened(db: None) -> None:
    offers = PurposeFactory(channels=["email"])
    anne, bruno = ContactFactory(), ContactFactory()
    with freeze_time("2026-11-02T10:00:00Z"):  # Monday of the week of 2 Nov
        grant(anne, offers, "email")
        grant(bruno, offers, "email")
    with freeze_time("2026-11-15T22:30:00Z"):  # Sunday 23:30 in Paris: still the 9 Nov week
        preferences_unsubscribe_all(
            contact=anne, visit=Visit(), source_kind=SourceKind.ONE_CLICK_UNSUBSCRIBE
        )
    with freeze_time("2026-11-16T08:00:00Z"):  # an admin's withdrawal is no unsubscribe
        grant(bruno, offers, "email", action="withdraw", source_kind="admin", evidence=None)
    TimelineEvent.objects.create(
        contact=bruno,
        kind=TimelineKind.COMPLAINT,
        summary="complaint",
        occurred_at=timezone.make_aware(timezone.datetime(2026, 11, 17, 12, 0)),
    )

    with freeze_time(NOW):
        chart = unsubscribes_and_complaints(dpo_figures_count(timezone.now()))

    by_week = dict(chart.rows)
    assert by_week["9 Nov"] == ["1", "0"]
    assert by_week["16 Nov"] == ["0", "1"]
    assert by_week["2 Nov"] == ["0", "0"]
    assert sum(int(unsubscribes) for unsubscribes, _complaints in by_week.values()) == 1


def test_a_stop_answered_to_an_sms_counts_as_an_unsubscribe(db: None) -> None:
    TimelineEvent.objects.create(
        contact=ContactFactory(),
        kind=TimelineKind.SMS_STOPPED,
        summary="sms_stop",
        occurred_at=timezone.make_aware(timezone.datetime(2026, 11, 18, 12, 0)),
    )

    with freeze_time(NOW):
        chart = unsubscribes_and_complaints(dpo_figures_count(timezone.now()))

    assert dict(chart.rows)["16 Nov"] == ["1", "0"]


def unsubscribes_per_week(text: str) -> list[int]:
    rows = captioned(text, "Unsubscribes and complaints per week")[1:]
    return [int(unsubscribes) for _week, unsubscribes, _complaints in rows]


def test_an_unsubscribe_from_all_counts_once_and_one_purpose_withdrawn_counts_none(
    client: Client, as_dpo: Client
) -> None:
    # given: Anne holds two purposes on two channels each; Bruno the newsletter by email
    newsletter = PurposeFactory(slug="newsletter", channels=["email", "sms"])
    offers = PurposeFactory(slug="offers", channels=["email", "sms"])
    anne, bruno = ContactFactory(phone="+33612345670"), ContactFactory()
    for purpose in (newsletter, offers):
        for channel in ("email", "sms"):
            grant(anne, purpose, channel)
    grant(bruno, newsletter, "email")
    grant(bruno, offers, "email")

    # when: Anne unsubscribes from all through a message's one-click link (four withdrawals),
    # and Bruno unticks the newsletter in the preference center
    one_click = client.post(
        unsubscribe_path(preference_token_issue(contact=anne)),
        {"List-Unsubscribe": "One-Click"},
        **BROWSER,
    )
    saved = save_consents(
        client, preference_token_issue(contact=bruno), untick=["newsletter:email"]
    )

    # then: the ledger holds five withdrawals by unsubscribing; the dashboard one unsubscribe
    assert one_click.status_code == 200 and saved.status_code == 303
    withdrawals = ConsentRecord.objects.filter(action="withdraw")
    assert withdrawals.filter(contact=anne, source_kind="one_click_unsubscribe").count() == 4
    assert withdrawals.filter(contact=bruno, source_kind="preference_center").count() == 1
    per_week = unsubscribes_per_week(as_dpo.get(HOME).content.decode())
    assert per_week[-1] == 1 and sum(per_week) == 1


def test_the_dpo_sees_the_suppression_list_per_reason(as_dpo: Client) -> None:
    suppressions_add_many(
        reason=SuppressionReason.COMPLAINT, addresses=[("a@example.fr", ""), ("b@example.fr", "")]
    )
    suppressions_add_many(reason=SuppressionReason.HARD_BOUNCE, addresses=[("c@example.fr", "")])

    text = as_dpo.get(HOME).content.decode()

    assert captioned(text, "Suppression list per reason")[1:] == [
        ["Erased", "0"],
        ["Hard bounce", "1"],
        ["Complaint", "2"],
        ["Global unsubscribe", "0"],
    ]


def seal_facts(text: str) -> dict[str, str]:
    found = re.search(r'<dl class="cd-facts">(.*?)</dl>', text, re.S)
    assert found
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", found.group(1), re.S)
    return {
        term: " ".join(unescape(re.sub(r"<[^>]+>", " ", value)).split()) for term, value in pairs
    }


# committed writes: on PostgreSQL the sealer seals only what finished transactions wrote
@pytest.mark.django_db(transaction=True)
def test_the_seal_status_shows_the_last_seal_and_the_records_waiting(dpo: object) -> None:
    offers = PurposeFactory(channels=["email"])
    with freeze_time(NOW):
        grant(ContactFactory(), offers, "email")
        seal = ledger_seal()[-1]
        grant(ContactFactory(), offers, "email")
        grant(ContactFactory(), offers, "email")
        facts = seal_facts(client_for(dpo).get(HOME).content.decode())

    assert facts["Last seal"].startswith(f"#{seal.number},")
    assert "late" not in facts["Last seal"]
    assert facts["Records not yet sealed"] == "2"

    with freeze_time("2026-11-26T09:20:00Z"):  # twenty minutes without a seal
        cache.clear()
        facts = seal_facts(client_for(dpo).get(HOME).content.decode())

    assert "The sealing job is late" in facts["Last seal"]


def test_the_last_verification_is_recorded_by_the_command_and_shown(as_dpo: Client) -> None:
    grant(ContactFactory(), PurposeFactory(channels=["email"]), "email")
    ledger_seal()
    assert "never run" in seal_facts(as_dpo.get(HOME).content.decode())["Last verification"]

    call_command("verify_ledger", stdout=StringIO())

    check = LedgerVerification.objects.get()
    assert (check.problem_count, check.records, check.first_problem) == (0, 1, "")
    assert "intact" in seal_facts(as_dpo.get(HOME).content.decode())["Last verification"]


def test_the_dpo_lists_every_verification_with_its_outcome(as_dpo: Client) -> None:
    report = LedgerReport([LedgerProblem("record #7", "hash mismatch")])
    with freeze_time("2026-11-25T08:00:00Z"):
        ledger_verification_record(report=report)
    with freeze_time(NOW):
        ledger_verification_record(report=LedgerReport())

    response = as_dpo.get(reverse("admin:consent_ledgerverification_changelist"))

    assert response.status_code == 200
    text = response.content.decode()
    assert "record #7: hash mismatch" in text
    assert text.count('class="field-problem_count"') == 2


def test_the_daily_verification_task_records_its_outcome_too(db: None) -> None:
    with freeze_time(NOW):
        assert verify_ledger() == 0

    check = LedgerVerification.objects.get()
    assert check.checked_at == datetime.fromisoformat(NOW) and check.intact


def test_the_snapshot_of_the_rates_is_a_daily_beat_job() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["snapshot-consent-rates"]

    assert entry["task"] == snapshot_consent_rates.name


def test_a_failed_verification_shows_how_many_problems_and_the_first(as_dpo: Client) -> None:
    report = LedgerReport([LedgerProblem("record #12", "hash mismatch")])
    report.left_off = 2
    with freeze_time("2026-11-26T08:00:00Z"):
        ledger_verification_record(report=report)

    with freeze_time(NOW):
        check = seal_facts(as_dpo.get(HOME).content.decode())["Last verification"]

    assert "3 problems found" in check
    assert "record #12: hash mismatch" in check
    assert "intact" not in check


def test_the_dpo_sees_the_breaches_awaiting_the_authority_decision_with_time_left(
    dpo: object, frozen: None
) -> None:
    pending = BreachFactory(aware_at=timezone.now() - timedelta(hours=1))
    overdue = BreachFactory(aware_at=timezone.now() - timedelta(hours=75))
    decided = BreachFactory()
    Breach.objects.filter(pk=decided.pk).update(not_notified=True)

    text = client_for(dpo).get(HOME).content.decode()

    assert "2 breaches awaiting the decision to notify the authority" in text
    for breach in (pending, overdue):
        assert reverse("admin:privacy_breach_change", args=[breach.pk]) in text
    assert reverse("admin:privacy_breach_change", args=[decided.pk]) not in text
    assert "in 71 h" in text
    assert "late by 3 h" in text
    # the nearest deadline (the one already past) first
    assert text.index(overdue.reference) < text.index(pending.reference)


def test_the_breaches_panel_is_a_block_the_templates_can_replace() -> None:
    source = get_template("admin/dashboard_index.html").template.source

    assert "{% block breaches %}" in source


# --- the marketer's dashboard ------------------------------------------------------------------


def test_the_marketer_sees_audience_sizes_equal_to_the_eligible_contacts(
    as_marketer: Client,
) -> None:
    offers = PurposeFactory(slug="offers", name_en="Offers", channels=["email", "sms"])
    news = PurposeFactory(slug="news", name_en="News", channels=["email"])
    people = [ContactFactory(phone=f"+3361234567{n}") for n in range(4)]
    for person in people[:3]:
        grant(person, offers, "email")
    grant(people[0], offers, "sms")
    grant(people[3], news, "email")
    suppressions_add_many(reason=SuppressionReason.COMPLAINT, addresses=[(people[1].email, "")])

    rows = table(as_marketer.get(HOME).content.decode(), "cd-audience-table")

    pairs = ((news, "email", "Email"), (offers, "email", "Email"), (offers, "sms", "SMS"))
    expected = [
        [purpose.name_en, label, str(eligible_contacts(purpose, channel).count())]
        for purpose, channel, label in pairs
    ]
    assert rows[1:] == expected
    assert [row[2] for row in expected] == ["1", "2", "1"]


def test_audience_sizes_are_those_of_the_last_count_of_the_beat_job(
    as_marketer: Client,
) -> None:
    offers = PurposeFactory(slug="offers", name_en="Offers", channels=["email"])
    grant(ContactFactory(), offers, "email")
    refresh_dashboards()
    grant(ContactFactory(), offers, "email")

    kept = table(as_marketer.get(HOME).content.decode(), "cd-audience-table")
    assert refresh_dashboards() == [DPO, MARKETER]
    recounted = table(as_marketer.get(HOME).content.decode(), "cd-audience-table")

    assert kept[1][2] == "1"
    assert recounted[1][2] == "2"


def test_the_marketer_sees_the_last_campaigns_results_linked(as_marketer: Client) -> None:
    campaign = campaign_with_feedback()
    stats = campaign_stats(campaign)

    text = as_marketer.get(HOME).content.decode()

    assert reverse("admin:campaigns_campaign_change", args=[campaign.pk]) in text
    row = table(text, "cd-campaigns-table")[1]
    assert row[0].startswith(campaign.name)
    names = ("targeted", "sent", "delivered", "bounced", "complained", "unsubscribed")
    assert row[1:] == [str(stats[name]) for name in names]
    assert table(text, "cd-exclusions-table")[1:] == [["no consent", "1"]]


def test_a_campaign_begun_since_the_last_count_gets_its_results_at_the_next(
    as_marketer: Client,
) -> None:
    refresh_dashboards()
    campaign = campaign_with_feedback()

    before = as_marketer.get(HOME).content.decode()
    refresh_dashboards()
    after = as_marketer.get(HOME).content.decode()

    row = table(before, "cd-campaigns-table")[1]
    assert row[0].startswith(campaign.name)
    assert row[1:] == ["Counted at the next refresh."]
    assert table(before, "cd-exclusions-table")[1:] == [["No contact excluded."]]
    assert table(after, "cd-campaigns-table")[1][1] == str(campaign_stats(campaign)["targeted"])
    assert table(after, "cd-exclusions-table")[1:] == [["no consent", "1"]]


def test_the_growth_of_consents_counts_grants_and_withdrawals_per_week(
    marketer: object,
) -> None:
    offers = PurposeFactory(channels=["email"])
    anne = ContactFactory()
    with freeze_time("2026-11-18T10:00:00Z"):
        grant(anne, offers, "email")
        grant(ContactFactory(), offers, "email")
    with freeze_time(NOW):
        grant(anne, offers, "email", action="withdraw", evidence=None)
        text = client_for(marketer).get(HOME).content.decode()

    rows = {row[0]: row[1:] for row in captioned(text, "Consents granted and withdrawn per week")}
    assert rows["16 Nov"] == ["2", "0"]
    assert rows["23 Nov"] == ["0", "1"]


# --- charts, cost and language -----------------------------------------------------------------


def test_each_chart_is_an_accessible_image_without_style_attributes(as_dpo: Client) -> None:
    PurposeFactory(channels=["email", "sms"])

    text = as_dpo.get(HOME).content.decode()

    charts = re.findall(r'<svg [^>]*class="dashboard-chart".*?</svg>', text, re.S)
    assert len(charts) == 3  # a rate chart per purpose, feedback, suppressions
    for chart in charts:
        assert 'role="img"' in chart
        assert re.search(r'aria-label="[^"]+"', chart)
        assert "style=" not in chart
    assert "<script" not in text.split('id="dashboard"', 1)[1]
    assert text.count("<details>") >= 3


VIEWS = ("dpo", "marketer")


def dashboard_queries(client: Client, url: str) -> int:
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def a_crowd(count: int) -> None:
    news = Purpose.objects.get(slug="news")
    for _ in range(count):
        person = ContactFactory()
        grant(person, news, "email")
        grant(person, news, "sms", action="withdraw", evidence=None)
        request_due(timezone.now() + timedelta(days=2))
    suppressions_add_many(
        reason=SuppressionReason.HARD_BOUNCE,
        addresses=[(f"gone{count}-{n}@example.fr", "") for n in range(count)],
    )


def test_the_queries_of_a_dashboard_do_not_grow_with_the_contacts(
    as_superuser: Client, django_assert_max_num_queries: object
) -> None:
    PurposeFactory(slug="news", channels=["email", "sms"])
    campaign_with_feedback()
    a_crowd(2)
    few = {view: dashboard_queries(as_superuser, HOME + "?view=" + view) for view in VIEWS}

    a_crowd(15)
    many = {view: dashboard_queries(as_superuser, HOME + "?view=" + view) for view in VIEWS}

    assert many == few
    cache.clear()
    with django_assert_max_num_queries(30):  # type: ignore[operator]
        as_superuser.get(HOME + "?view=dpo")
    cache.clear()
    with django_assert_max_num_queries(40):  # type: ignore[operator]
        as_superuser.get(HOME + "?view=marketer")


# what the figures count, which a request must not read once the beat job has run
COUNTED_TABLES = (
    ConsentState._meta.db_table,
    ConsentRateSnapshot._meta.db_table,
    Contact._meta.db_table,
    Suppression._meta.db_table,
    TimelineEvent._meta.db_table,
    Recipient._meta.db_table,
)


def counted_tables_read(queries: CaptureQueriesContext) -> list[str]:
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    read = [name for name in COUNTED_TABLES if f'"{name}"' in sql]
    ledger_weeks = f'"{ConsentRecord._meta.db_table}"."recorded_at"' in sql
    return read + (["the ledger's weeks"] if ledger_weeks else [])


def counts_as_of(moment: str) -> str:
    """The dashboard's words for counts made at `moment`, in English."""
    with translation.override("en"):
        at = date_format(timezone.localtime(datetime.fromisoformat(moment)), "TIME_FORMAT")
    return "Counts as of " + at + ","


def test_once_the_beat_job_ran_a_dashboard_reads_its_counts_and_counts_nothing(
    as_superuser: Client, django_assert_max_num_queries: object
) -> None:
    PurposeFactory(slug="news", channels=["email", "sms"])
    campaign_with_feedback()
    a_crowd(3)

    with freeze_time(NOW):
        refresh_dashboards()
    with freeze_time("2026-11-26T09:04:00Z"):
        for view in VIEWS:
            with django_assert_max_num_queries(12) as queries:  # type: ignore[operator]
                text = as_superuser.get(HOME + "?view=" + view).content.decode()

            assert counted_tables_read(queries) == [], view
            assert counts_as_of(NOW) in text
            assert "refresh job is late" not in text


def test_counts_older_than_three_refreshes_say_the_refresh_job_is_late(as_dpo: Client) -> None:
    with freeze_time(NOW):
        refresh_dashboards()

    with freeze_time("2026-11-26T09:16:00Z"):  # beat's job did not run for 16 minutes
        text = as_dpo.get(HOME).content.decode()

    assert counts_as_of(NOW) in text
    assert "refresh job is late, check that beat runs" in text


@pytest.mark.parametrize("lock", [COMPUTING_KEY, REFRESHING_KEY], ids=["request", "job"])
def test_without_counts_yet_one_process_counts_and_the_others_see_them_being_computed(
    as_dpo: Client, as_marketer: Client, lock: str
) -> None:
    offers = PurposeFactory(slug="offers", name_en="Offers", channels=["email"])
    grant(ContactFactory(), offers, "email")
    # given: no counts yet, and another process counting them (a first request, or the job)
    cache.add(lock.format(DPO), True, 60)
    cache.add(lock.format(MARKETER), True, 60)

    for client in (as_dpo, as_marketer):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(HOME)

        text = page.content.decode()
        assert page.status_code == 200
        assert "The counts are being computed" in text
        assert 'class="cd-table cd-rates-table"' not in text
        assert counted_tables_read(queries) == []

    # when that process is done without leaving counts (it died): the next request counts
    cache.delete(lock.format(DPO))
    with CaptureQueriesContext(connection) as queries:
        text = as_dpo.get(HOME).content.decode()

    assert ConsentState._meta.db_table in counted_tables_read(queries)
    assert "The counts are being computed" not in text
    assert table(text, "cd-rates-table")[1:] == [["Offers", "Email", "1", "0", "0", "0", "100.0 %"]]
    assert cache.add(COMPUTING_KEY.format(DPO), True, 60)  # the request let its lock go


def test_the_refresh_job_leaves_alone_a_dashboard_its_previous_run_is_counting(
    db: None,
) -> None:
    cache.add(REFRESHING_KEY.format(MARKETER), True, 60)

    assert refresh_dashboards() == [DPO]


def test_a_request_counting_does_not_keep_the_refresh_job_from_counting(db: None) -> None:
    # a request stopped by the web server's timeout may leave its lock for a while
    cache.add(COMPUTING_KEY.format(DPO), True, 60)
    cache.add(COMPUTING_KEY.format(MARKETER), True, 60)

    assert refresh_dashboards() == [DPO, MARKETER]
    assert cache.add(REFRESHING_KEY.format(DPO), True, 60)  # the job let its lock go


def test_a_count_that_outlived_its_lock_leaves_the_next_holder_s_lock_alone(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = REFRESHING_KEY.format(DPO)

    def slow_count(now: object) -> object:
        cache.delete(lock)  # the lock expired meanwhile ...
        cache.add(lock, "another run", 60)  # ... and another run took it
        return dpo_figures_count(timezone.now())

    monkeypatch.setattr("core.dashboard.dpo_figures_count", slow_count)

    refresh_dashboards()

    assert cache.get(lock) == "another run"


def test_one_dashboard_failing_does_not_keep_the_other_from_being_counted(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(now: object) -> object:
        raise RuntimeError("the DPO's count broke")

    monkeypatch.setattr("core.dashboard.dpo_figures_count", broken)

    with pytest.raises(DashboardRefreshFailed):
        refresh_dashboards()

    assert cache.get(FIGURES_KEY.format(MARKETER)) is not None
    assert cache.add(REFRESHING_KEY.format(DPO), True, 60)  # the failed count let its lock go


def test_the_dashboards_are_refreshed_by_a_beat_job_every_few_minutes() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-dashboards"]

    assert entry["task"] == refresh_dashboards.name
    assert entry["schedule"] <= timedelta(minutes=10)


def test_the_home_renders_in_french(dpo: object) -> None:
    offers = PurposeFactory(channels=["email"])
    grant(ContactFactory(), offers, "email")
    ContactFactory()

    page = client_for(dpo, language="fr").get(HOME)

    text = page.content.decode()
    assert page.status_code == 200
    assert '<html lang="fr"' in text
    assert "Site d’administration" in text
    assert "50,0 %" in text
