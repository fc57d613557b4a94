"""`contact_find`: the one lookup of a contact by database id, public id or email."""

import uuid

import pytest

from contacts.models import ContactStatus
from contacts.selectors import contact_find
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_a_contact_is_found_by_its_id_public_id_or_email():
    camille = ContactFactory(email="camille.durand@example.fr")
    ContactFactory()  # someone else

    assert contact_find(pk=camille.pk) == camille
    assert contact_find(public_id=camille.public_id) == camille
    assert contact_find(public_id=str(camille.public_id)) == camille
    assert contact_find(email="camille.durand@example.fr") == camille


def test_an_email_is_matched_after_normalisation():
    camille = ContactFactory(email="camille.durand@example.fr")

    assert contact_find(email="  Camille.Durand@EXAMPLE.fr ") == camille


def test_nobody_is_found_for_an_unknown_or_malformed_value():
    ContactFactory()

    assert contact_find(pk=987654) is None
    assert contact_find(public_id=uuid.uuid4()) is None
    assert contact_find(public_id="not-a-uuid") is None
    assert contact_find(public_id="") is None
    assert contact_find(email="nobody@example.fr") is None
    assert contact_find(email="not an email") is None
    assert contact_find(email="") is None


def test_an_erased_contact_is_found_unless_the_caller_leaves_them_out():
    erased = ContactFactory(status=ContactStatus.ERASED)

    assert contact_find(public_id=erased.public_id) == erased
    assert contact_find(public_id=erased.public_id, with_erased=False) is None
    assert contact_find(pk=erased.pk, with_erased=False) is None
    assert contact_find(email=erased.email, with_erased=False) is None


@pytest.mark.parametrize(
    "kwargs", [{}, {"pk": 1, "email": "a@example.fr"}, {"public_id": uuid.uuid4(), "pk": 1}]
)
def test_exactly_one_way_to_find_must_be_given(kwargs):
    with pytest.raises(TypeError):
        contact_find(**kwargs)
