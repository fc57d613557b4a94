"""Writes on the channels' marketing caps (SPEC §4 caps): staff set them in the admin."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from consent.models import FrequencyCap
from consent.selectors import FREQUENCY_CAPS_CACHE_KEY


def frequency_cap_save(
    *, channel: str, per_day: int, per_week: int, by: AbstractBaseUser | AnonymousUser | None
) -> FrequencyCap:
    """Set the marketing caps of `channel` (per day, per 7 days; 0: no cap) in place of the
    settings' defaults; the eligibility rule applies them once the change is committed.
    Refuses (ValidationError, per field) a negative cap or a cap per 7 days below the one
    per day."""
    candidate = FrequencyCap(channel=channel, per_day=per_day, per_week=per_week)
    candidate.full_clean(validate_unique=False)
    with transaction.atomic():
        cap, _created = FrequencyCap.objects.update_or_create(
            channel=channel,
            defaults={
                "per_day": per_day,
                "per_week": per_week,
                "updated_at": timezone.now(),
                "updated_by": by if by is not None and by.is_authenticated else None,
            },
        )
        transaction.on_commit(_forget_cached_caps)
    return cap


def frequency_cap_delete(*, channel: str) -> None:
    """Remove the caps of `channel`: the settings' defaults apply to it again."""
    with transaction.atomic():
        FrequencyCap.objects.filter(channel=channel).delete()
        transaction.on_commit(_forget_cached_caps)


def _forget_cached_caps() -> None:
    # the eligibility rule reads the caps from the cache (consent.selectors)
    cache.delete(FREQUENCY_CAPS_CACHE_KEY)
