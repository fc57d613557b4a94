"""Scope checks: each view names the scope every method needs; a missing scope is 403."""

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.models import ApiClient


class HasScope(BasePermission):
    """Grant access when the client holds every scope `view.required_scopes[method]` names."""

    message: str | Promise = _("This API client lacks the scope this operation needs.")

    def has_permission(self, request: Request, view: Any) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return False
        # DRF answers HEAD with the GET handler, so it needs what GET needs.
        method = "GET" if request.method == "HEAD" else request.method or ""
        if not hasattr(view, method.lower()):
            return True  # no handler: let DRF answer 405, not a misleading 403
        required = getattr(view, "required_scopes", {})
        scopes = required.get(method, required.get("*"))
        if scopes is None:
            return False  # a method nobody declared is closed
        missing = [scope for scope in scopes if not client.has_scope(scope)]
        if missing:
            self.message = _("Missing scope: %s") % ", ".join(missing)
            return False
        return True
