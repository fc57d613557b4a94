"""A survivor of a merge answers for every address of the person: a suppressed address of a
contact merged into it keeps a web-form grant pending, as it would have on that contact."""

import pytest

from consent.intake import FormConsent, form_submission_record
from consent.models import ConsentState, ConsentStatus
from consent.services import Evidence
from contacts.models import SuppressionReason
from contacts.services import suppression_add
from privacy.merge import contact_merge
from tests.factories import ContactFactory, PurposeFactory

pytestmark = pytest.mark.django_db


def test_a_web_form_grant_for_a_suppressed_address_merged_into_another_contact_stays_pending():
    # given: an unsubscribed address, merged into the person's other contact
    purpose = PurposeFactory(channels=["email"], double_opt_in=False)
    survivor = ContactFactory(email="camille@example.fr")
    merged = ContactFactory(email="c.martin@work.example")
    suppression_add(reason=SuppressionReason.GLOBAL_UNSUBSCRIBE, email="c.martin@work.example")
    contact_merge(survivor=survivor, merged=merged, actor="dpo")

    # when: someone ticks the box on a web form with the unsubscribed address
    form_submission_record(
        form="https://example.fr/newsletter",
        email="c.martin@work.example",
        contact_fields={},
        interests=None,
        consents=[
            FormConsent(
                purpose=purpose.slug,
                channel="email",
                granted=True,
                wording=purpose.current_version.wording_fr,
            )
        ],
        evidence=Evidence(unticked_by_default=True, ip="203.0.113.7", user_agent="Firefox"),
    )

    # then: it waits for the person's own click, on the contact that holds the person now
    state = ConsentState.objects.get(purpose=purpose, channel="email")
    assert state.contact_id == survivor.pk
    assert state.status == ConsentStatus.PENDING
