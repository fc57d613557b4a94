"""Sales alerts: an email when a contact reaches a chosen lifecycle stage, once per reach."""

import pytest
from django.core import mail

from contacts.services import contact_upsert
from crmsync import alerts
from crmsync.alerts import sales_alerts_scan, sales_alerts_send
from crmsync.models import SalesAlert, SalesAlertDelivery
from privacy.services import contact_erase

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The deliveries each scan queued after its commit (sent by the test, whatever the
    Celery mode of the run)."""
    calls: list[list[int]] = []
    monkeypatch.setattr(alerts, "_queue_send", calls.append)
    return calls


def scan_and_send(queued: list[list[int]]) -> int:
    queued.clear()
    sales_alerts_scan()
    return sum(sales_alerts_send(delivery_ids=ids) for ids in queued)


@pytest.fixture
def sales() -> SalesAlert:
    sales_alerts_scan()  # the cursor starts at the end of the outbox: no alert for the past
    return SalesAlert.objects.create(stage="sql", recipient="sales@example.fr", language="en")


def test_reaching_the_stage_emails_sales_once(sales: SalesAlert, queued: list[list[int]]) -> None:
    contact, _created = contact_upsert(email="lea@example.fr", fields={"first_name": "Léa"})
    mail.outbox.clear()

    contact_upsert(email="lea@example.fr", fields={"lifecycle_stage": "sql"})

    assert scan_and_send(queued) == 1
    [message] = mail.outbox
    assert message.to == ["sales@example.fr"]
    assert "Sales qualified lead" in message.subject
    assert "lea@example.fr" in message.body
    # scanned and sent again: nothing more
    assert scan_and_send(queued) == 0
    [delivery] = SalesAlertDelivery.objects.all()
    assert sales_alerts_send(delivery_ids=[delivery.pk]) == 0
    assert len(mail.outbox) == 1


def test_an_update_while_in_the_stage_sends_nothing(
    sales: SalesAlert, queued: list[list[int]]
) -> None:
    contact_upsert(email="lea@example.fr", fields={"lifecycle_stage": "sql"})
    scan_and_send(queued)
    mail.outbox.clear()

    contact_upsert(email="lea@example.fr", fields={"first_name": "Léa"})

    assert scan_and_send(queued) == 0
    assert mail.outbox == []


def test_reaching_the_stage_again_later_alerts_again(
    sales: SalesAlert, queued: list[list[int]]
) -> None:
    contact_upsert(email="lea@example.fr", fields={"lifecycle_stage": "sql"})
    contact_upsert(email="lea@example.fr", fields={"lifecycle_stage": "lead"})
    contact_upsert(email="lea@example.fr", fields={"lifecycle_stage": "sql"})

    assert scan_and_send(queued) == 2


def test_another_stage_is_not_alerted(sales: SalesAlert, queued: list[list[int]]) -> None:
    contact_upsert(email="lea@example.fr", fields={"lifecycle_stage": "customer"})

    assert scan_and_send(queued) == 0
    assert not SalesAlertDelivery.objects.exists()


def test_the_alert_is_in_the_recipients_language(queued: list[list[int]]) -> None:
    sales_alerts_scan()
    SalesAlert.objects.create(stage="sql", recipient="ventes@example.fr", language="fr")

    contact_upsert(email="lea@example.fr", fields={"lifecycle_stage": "sql"})
    scan_and_send(queued)

    [message] = [m for m in mail.outbox if m.to == ["ventes@example.fr"]]
    assert "Sales qualified lead" not in message.subject


def test_a_person_erased_before_the_email_is_not_described(
    sales: SalesAlert, queued: list[list[int]]
) -> None:
    contact, _created = contact_upsert(email="lea@example.fr", fields={"lifecycle_stage": "sql"})
    queued.clear()
    sales_alerts_scan()
    contact_erase(contact=contact, reason="erasure")
    mail.outbox.clear()

    assert sum(sales_alerts_send(delivery_ids=ids) for ids in queued) == 0

    assert mail.outbox == []
    assert SalesAlertDelivery.objects.get().sent_at is not None
