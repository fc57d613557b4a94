"""Preference links: the random tokens in every message's footer, kept only as hashes."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact


class PreferenceToken(models.Model):
    """One issued preference link of a contact; only the SHA-256 of its token is stored.

    A contact may hold several live links (each message may carry its own); renewing the
    link from the admin revokes them all.
    """

    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        related_name="preference_tokens",
        verbose_name=_("contact"),
    )
    digest = models.CharField(_("digest"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("preference link")
        verbose_name_plural = _("preference links")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["contact", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.digest[:12]}…"
