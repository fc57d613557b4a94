import pytest

from consent.models import PurposeVersion
from consent.services import purpose_wording_update
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


def test_new_wording_creates_the_next_version_and_leaves_the_previous_one_as_it_was():
    purpose = PurposeFactory(wording="Recevoir la lettre.")
    first = purpose.current_version
    record = grant(ContactFactory(), purpose)

    second = purpose_wording_update(
        purpose=purpose,
        wording_fr="Recevoir la lettre mensuelle.",
        wording_en="Receive the monthly letter.",
        is_material=False,
        by="dpo@example.fr",
    )

    assert second.number == first.number + 1
    assert (second.is_material, second.created_by) == (False, "dpo@example.fr")
    assert purpose.current_version == second
    unchanged = PurposeVersion.objects.get(pk=first.pk)
    assert (unchanged.number, unchanged.wording_fr, unchanged.wording_en) == (
        1,
        "Recevoir la lettre.",
        "Recevoir la lettre.",
    )
    assert record.purpose_version_id == first.pk


def test_the_same_wording_creates_no_version():
    purpose = PurposeFactory()
    current = purpose.current_version

    result = purpose_wording_update(
        purpose=purpose, wording_fr=current.wording_fr, wording_en=current.wording_en
    )

    assert result is None
    assert purpose.versions.count() == 1


def test_a_change_in_one_language_is_a_new_version():
    purpose = PurposeFactory()
    current = purpose.current_version

    result = purpose_wording_update(
        purpose=purpose, wording_fr=current.wording_fr, wording_en="A clearer English wording."
    )

    assert result.number == 2 and result.wording_fr == current.wording_fr


def test_grant_after_a_wording_change_points_at_the_new_version():
    purpose = PurposeFactory()
    new = purpose_wording_update(purpose=purpose, wording_fr="Nouveau.", wording_en="New.")

    record = grant(ContactFactory(), purpose)

    assert record.purpose_version == new
