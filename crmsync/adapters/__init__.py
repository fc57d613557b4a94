"""Adapters: how each kind of CRM connection receives our changes (and, later, gives its own).

Each kind implements `crmsync.adapters.base.Adapter`; `adapter_for(config)` picks it, by import
path and only when needed, so that a kind whose adapter is not installed fails alone, clearly.
"""

from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from crmsync.adapters.base import Adapter, ConnectionConfig

ADAPTERS = {
    "hubspot": "crmsync.adapters.hubspot.HubSpotAdapter",
    "salesforce": "crmsync.adapters.salesforce.SalesforceAdapter",
    "webhook": "crmsync.adapters.webhook.WebhookAdapter",
}


class AdapterUnavailable(Exception):
    """No adapter can serve this connection (unknown kind, or its module is missing)."""


def adapter_for(config: ConnectionConfig) -> Adapter:
    """The adapter of the connection's kind, built on its configuration."""
    path = ADAPTERS.get(config.kind)
    if path is None:
        raise AdapterUnavailable(_("No adapter for the kind %(kind)r.") % {"kind": config.kind})
    try:
        adapter_class = import_string(path)
    except ImportError as error:
        raise AdapterUnavailable(
            _("The %(kind)s adapter (%(path)s) is not available: %(error)s")
            % {"kind": config.kind, "path": path, "error": error}
        ) from error
    try:
        adapter: Adapter = adapter_class(config)
    except Exception as error:  # a bad configuration fails this connection alone, named
        raise AdapterUnavailable(
            _("The %(kind)s adapter cannot be set up: %(error)s")
            % {"kind": config.kind, "error": f"{type(error).__name__}: {error}"}
        ) from error
    return adapter
