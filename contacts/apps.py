from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ContactsConfig(AppConfig):
    name = "contacts"
    verbose_name = _("Contacts")

    def ready(self) -> None:
        # django-anymail reports ESP tracking webhooks by its `tracking` signal (its public
        # interface): the one receiver hands them to the deliverability domain function.
        from anymail.signals import tracking

        from contacts.webhooks import anymail_tracking_received

        tracking.connect(anymail_tracking_received, dispatch_uid="contacts.deliverability")
