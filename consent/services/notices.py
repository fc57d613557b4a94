"""Writes on privacy notice versions (GDPR Art. 12-13): the DPO adds them in the admin."""

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from consent.models import PrivacyNotice
from consent.selectors import CURRENT_NOTICE_CACHE_KEY, privacy_notice_in_use


def privacy_notice_save(*, notice: PrivacyNotice, by: str) -> PrivacyNotice:
    """Store a new privacy notice version, or correct one no consent record names yet: once a
    record names it, it is the evidence of what the person was shown and stays as it is."""
    with transaction.atomic():
        if notice.pk is not None:
            stored = PrivacyNotice.objects.select_for_update().get(pk=notice.pk)
            if privacy_notice_in_use(stored.version):
                raise ValidationError(
                    _(
                        "Consent records name this version: it cannot change any more. "
                        "Add a new version instead."
                    )
                )
        else:
            notice.created_by = by
        notice.full_clean()
        notice.save()
        # the recipient pages read the current notice from the cache
        transaction.on_commit(lambda: cache.delete(CURRENT_NOTICE_CACHE_KEY))
    return notice
