from datetime import timedelta
from io import StringIO

import pytest
from dateutil.relativedelta import relativedelta
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.models import Campaign, Recipient
from campaigns.selectors import campaign_stats
from consent.ledger import ledger_verify
from consent.models import (
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    PrivacyNotice,
    Purpose,
    PurposeVersion,
)
from consent.selectors import privacy_notice_current, privacy_notice_versions_unknown
from consent.services import purpose_wording_update
from contacts.models import Contact, Interest, TimelineEvent
from contacts.selectors import suppression_reason
from core.models import ApiClient
from crmsync.models import OutboxEvent
from privacy.models import Breach, PrivacyRequest
from privacy.selectors import breaches_within_deadline
from privacy.services import OPEN_STATUSES

pytestmark = pytest.mark.django_db

COUNTED = (
    get_user_model(),
    Group,
    Purpose,
    PurposeVersion,
    Interest,
    Contact,
    ConsentRecord,
    ConsentEvidence,
    ConsentState,
    TimelineEvent,
    OutboxEvent,
    ApiClient,
    PrivacyNotice,
)


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def test_running_it_twice_changes_nothing():
    seed()
    first = counts()
    hashes = list(ConsentRecord.objects.values_list("hash", flat=True))

    seed()

    assert counts() == first
    assert list(ConsentRecord.objects.values_list("hash", flat=True)) == hashes


def test_seeded_consents_verify_and_carry_their_evidence():
    seed()

    assert ledger_verify() == []
    grants = ConsentRecord.objects.filter(action="grant")
    assert grants.exists()
    for record in grants:
        assert record.unticked_by_default is True
        assert record.wording == getattr(record.purpose_version, f"wording_{record.language}")
        assert record.policy_version
        assert record.personal_evidence.ip and record.personal_evidence.user_agent


def test_it_seeds_purposes_in_french_and_english_with_a_double_opt_in():
    seed()

    purposes = {p.slug: p for p in Purpose.objects.all()}
    assert set(purposes) == {"newsletter", "offers", "events", "partners", "profiling"}
    assert purposes["newsletter"].double_opt_in
    assert purposes["offers"].channels == ["email", "sms"]
    assert purposes["events"].channels == ["email", "postal"]
    assert purposes["profiling"].legal_basis == "legitimate_interests"
    for purpose in purposes.values():
        version = purpose.current_version
        assert purpose.name_fr and purpose.name_en and version.wording_fr and version.wording_en
    assert 5 <= Contact.objects.count() <= 8 and 3 <= Interest.objects.count() <= 4


def test_one_double_opt_in_is_left_pending():
    seed()

    pending = ConsentState.objects.filter(status="pending")
    assert [(s.purpose.slug, s.channel) for s in pending] == [("newsletter", "email")]
    assert ConsentState.objects.filter(purpose__slug="newsletter", status="granted").exists()


def test_it_creates_the_demo_users_and_prints_their_credentials():
    output = seed()

    assert "admin / admin-demo-2026" in output and "marketer / marketer-demo-2026" in output
    login_request = RequestFactory().post("/admin/login/")  # django-axes needs the request
    admin = authenticate(login_request, username="admin", password="admin-demo-2026")
    marketer = authenticate(login_request, username="marketer", password="marketer-demo-2026")
    assert admin.is_superuser
    assert marketer.is_staff and not marketer.is_superuser
    assert list(marketer.groups.values_list("name", flat=True)) == ["Marketers"]
    assert marketer.has_perm("consent.view_consentrecord")


def test_the_demo_form_key_is_printed_only_when_created_and_works():
    first, second = seed(), seed()

    (line,) = [line for line in first.splitlines() if "demo-form" in line]
    key = line.split()[-1]
    assert key not in second and "demo-form" in second
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/purposes/").status_code == 200
    assert set(ApiClient.objects.get(name="demo-form").scopes) == {
        "contacts:write",
        "consents:write",
    }


def test_a_wording_edited_after_seeding_is_kept():
    seed()
    newsletter = Purpose.objects.get(slug="newsletter")
    purpose_wording_update(purpose=newsletter, wording_fr="Nouveau.", wording_en="New.")

    seed()

    assert newsletter.current_version.wording_en == "New."
    assert newsletter.versions.count() == 2


def test_it_stores_the_privacy_notice_its_consents_name():
    seed()

    notice = privacy_notice_current()
    assert notice is not None and notice.url.startswith("https://")
    assert ConsentRecord.objects.filter(policy_version=notice.version).exists()
    assert not privacy_notice_versions_unknown().exists()
    for purpose in Purpose.objects.filter(legal_basis="legitimate_interests"):
        purpose.full_clean()  # each states the interest it pursues


# --- the DPO, the register of requests and a campaign with its results ----------------------


def test_the_dpo_logs_in_and_is_in_the_dpo_group():
    output = seed()

    assert "dpo / dpo-demo-2026" in output
    login_request = RequestFactory().post("/admin/login/")
    dpo = authenticate(login_request, username="dpo", password="dpo-demo-2026")
    assert dpo.is_staff and not dpo.is_superuser
    assert list(dpo.groups.values_list("name", flat=True)) == ["DPO"]
    assert dpo.has_perm("privacy.view_privacyrequest") and dpo.has_perm("core.view_auditevent")


def test_requests_are_late_due_this_week_due_later_and_completed():
    seed()

    now = timezone.now()
    open_requests = PrivacyRequest.objects.filter(status__in=OPEN_STATUSES)
    completed = PrivacyRequest.objects.filter(status="completed")
    assert open_requests.filter(due_at__lt=now).count() == 1
    assert open_requests.filter(due_at__gte=now, due_at__lte=now + timedelta(days=7)).count() == 1
    assert open_requests.filter(due_at__gt=now + timedelta(days=7)).count() == 1
    assert completed.count() == 1
    (done,) = completed
    assert done.history.filter(status="completed", by="dpo").exists()
    for request in PrivacyRequest.objects.all():  # each through the filing path, with history
        assert request.history.filter(status__in=["received", "verified"]).exists()
        assert request.due_at == timezone.localtime(request.received_at) + relativedelta(months=1)


def test_a_campaign_was_sent_and_has_results():
    seed()

    campaign = Campaign.objects.get(status="sent")
    stats = campaign_stats(campaign)
    assert stats["sent"] >= 3
    assert stats["delivered"] >= 2
    assert stats["bounced"] == 1 and stats["unsubscribed"] == 1
    assert Contact.objects.get(email="hugo.petit@example.fr").email_deliverability == "hard_bounce"
    jordan = Contact.objects.get(email="jordan.smith@example.com")
    assert suppression_reason(kind="email", value=jordan.email) == "global_unsubscribe"
    assert ConsentRecord.objects.filter(
        contact=jordan, action="withdraw", source_kind="preference_center"
    ).exists()
    assert ledger_verify() == []


def test_the_demo_newsletter_never_leaves_through_the_mail_server(mailbox):
    seed()

    assert Campaign.objects.get(status="sent")
    subjects = [str(message["Subject"]) for message in mailbox.messages]
    assert not any("nouveautés de novembre" in subject for subject in subjects)
    assert not any("new in November" in subject for subject in subjects)


def test_a_breach_awaits_the_authority_decision_within_its_72_hours():
    seed()

    (pending,) = breaches_within_deadline()
    assert not pending.late and 40 <= pending.hours_left <= 42
    assert pending.breach.risk_reasoning and pending.breach.persons_count == 340


def test_a_second_run_sends_and_files_nothing_more():
    seed()
    before = (
        Breach.objects.count(),
        PrivacyRequest.objects.count(),
        Campaign.objects.count(),
        Recipient.objects.count(),
        list(Recipient.objects.order_by("pk").values_list("status", "delivered_at")),
    )

    output = seed()

    after = (
        Breach.objects.count(),
        PrivacyRequest.objects.count(),
        Campaign.objects.count(),
        Recipient.objects.count(),
        list(Recipient.objects.order_by("pk").values_list("status", "delivered_at")),
    )
    assert after == before
    assert "Privacy requests: 0 created" in output
