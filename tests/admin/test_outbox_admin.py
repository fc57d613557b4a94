"""The CRM outbox in the admin: marketers may watch it, never add to it."""

import pytest
from django.urls import reverse

from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_marketer_watches_the_crm_outbox_read_only(as_marketer):
    ContactFactory()  # writes nothing to the outbox by itself; list renders anyway
    url = reverse("admin:crmsync_outboxevent_changelist")

    assert as_marketer.get(url).status_code == 200
    assert as_marketer.get(reverse("admin:crmsync_outboxevent_add")).status_code == 403
