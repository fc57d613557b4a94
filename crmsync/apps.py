from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmsyncConfig(AppConfig):
    name = "crmsync"
    verbose_name = _("CRM sync")
