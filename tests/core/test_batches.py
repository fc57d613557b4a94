"""`in_batches`: the one loop of the jobs that touch many rows."""

import pytest

from contacts.models import Contact
from core.batches import each_pk, in_batches
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_every_row_is_read_once_in_key_order_batch_by_batch():
    contacts = ContactFactory.create_batch(5)

    batches = list(in_batches(Contact.objects.all(), batch_size=2))

    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [c.pk for batch in batches for c in batch] == sorted(c.pk for c in contacts)


def test_a_row_the_job_leaves_unchanged_is_not_read_again():
    # a job whose filter still selects what it could not change would loop forever if each
    # batch were read from the start again
    ContactFactory.create_batch(3, first_name="Camille")
    still_selected = Contact.objects.filter(first_name="Camille").values_list("id", flat=True)

    reads = list(in_batches(still_selected, batch_size=2, key=lambda row: row))

    assert sum(len(batch) for batch in reads) == 3


def test_rows_the_job_takes_out_of_the_set_do_not_shift_the_next_batch():
    contacts = ContactFactory.create_batch(4, first_name="Camille")
    selected = Contact.objects.filter(first_name="Camille")
    seen = []

    for batch in in_batches(selected, batch_size=2):
        for contact in batch:
            seen.append(contact.pk)
            Contact.objects.filter(pk=contact.pk).update(first_name="Done")

    assert seen == sorted(c.pk for c in contacts)


def test_an_exact_multiple_of_the_batch_size_ends_with_one_empty_read():
    ContactFactory.create_batch(4)

    assert [len(b) for b in in_batches(Contact.objects.all(), batch_size=2)] == [2, 2]


def test_each_pk_reads_every_key_once_across_batches():
    contacts = ContactFactory.create_batch(5)

    keys = list(each_pk(Contact.objects.all(), batch_size=2))

    assert keys == sorted(c.pk for c in contacts)
