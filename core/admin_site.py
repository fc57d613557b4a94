"""The admin site: every staff session is verified by a TOTP code when `STAFF_OTP_REQUIRED`.

Every admin role sees personal data (contacts, consents, requests, the audit log), so the
requirement covers every staff user. A staff user without a device logs in with the password
only and is led to `/admin/otp/enrol/`, where the first code confirms the device; from then
on the login form asks for the code as well. A lost phone: a superuser deletes the user's
device under *Authenticator apps (two-factor)*, and the user enrols again at the next login.

The admin home shows, above Django's list of sections, the DPO's or the marketer's dashboard,
chosen by the user's permissions (`core.dashboard`, whose docstring states the rule).
"""

import base64
import io
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.dashboard import dashboard_context


def staff_device(user: Any) -> TOTPDevice | None:
    """The user's confirmed TOTP device, if they have enrolled one."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def _code_field() -> forms.CharField:
    return forms.CharField(
        label=_("Code from your authenticator app"),
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


def _is_verified(user: Any) -> bool:
    """Whether this session's user passed a TOTP check (django-otp's middleware says so)."""
    return bool(user.is_verified())


def _verify(user: Any, device: TOTPDevice, code: str, request: HttpRequest | None) -> bool:
    """Check a code against the device; a wrong one counts as a failed login for django-axes."""
    if device.verify_is_allowed()[0] and device.verify_token(code.strip()):
        return True
    user_login_failed.send(
        sender=__name__,
        credentials={"username": user.get_username()},
        request=request,
    )
    return False


class StaffLoginForm(AdminAuthenticationForm):
    """The admin's login form: the password, then the TOTP code for an enrolled user."""

    otp_token = forms.CharField(
        label=_("Code from your authenticator app"),
        required=False,
        max_length=10,
        help_text=_("Leave empty if you have not set up two-factor authentication yet."),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "otp_required": _("Enter the code your authenticator app shows."),
        "otp_invalid": _("This code is wrong or has expired. Enter the current one."),
    }

    def clean(self) -> dict[str, Any]:
        cleaned_data = super().clean()
        user = self.get_user()
        if not settings.STAFF_OTP_REQUIRED or user is None:
            return cleaned_data
        device = staff_device(user)
        if device is None:
            return cleaned_data  # first login: the admin leads the user to enrolment
        code = cleaned_data.get("otp_token") or ""
        if not code:
            raise forms.ValidationError(self.error_messages["otp_required"], code="otp_required")
        if not _verify(user, device, code, self.request):
            raise forms.ValidationError(self.error_messages["otp_invalid"], code="otp_invalid")
        # django-otp's user_logged_in receiver stores the verifying device in the session.
        user.otp_device = device  # type: ignore[attr-defined]  # django-otp's own attribute
        return cleaned_data


class EnrolForm(forms.Form):
    otp_token = _code_field()


def _qr_code(data: str) -> str:
    """The otpauth URL as an SVG data URL (no script, allowed by the CSP's img-src)."""
    buffer = io.BytesIO()
    qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage).save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class ConsentDeskAdminSite(admin.AdminSite):
    """Django's admin site, with two-factor authentication, the enrolment page and the
    dashboards on its home."""

    login_form = StaffLoginForm
    login_template = "admin/otp_login.html"
    index_template = "admin/dashboard_index.html"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """Django's index, with the dashboard the user's permissions show above it."""
        return super().index(request, {**dashboard_context(request), **(extra_context or {})})

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        if not settings.STAFF_OTP_REQUIRED or _is_verified(request.user):
            return True
        # An unverified session may still log out.
        return request.path == reverse("admin:logout", current_app=self.name)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        user = request.user
        if (
            settings.STAFF_OTP_REQUIRED
            and user.is_authenticated
            and user.is_active
            and user.is_staff
            and not _is_verified(user)
            and staff_device(user) is None
        ):
            return self._redirect_to_enrol(request)
        return super().login(request, extra_context)

    def _redirect_to_enrol(self, request: HttpRequest) -> HttpResponseRedirect:
        url = reverse("admin:otp_enrol", current_app=self.name)
        target = request.GET.get(REDIRECT_FIELD_NAME) or request.POST.get(REDIRECT_FIELD_NAME)
        if target:
            url += "?" + urlencode({REDIRECT_FIELD_NAME: target})
        return HttpResponseRedirect(url)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            path("otp/enrol/", never_cache(csrf_protect(self.enrol)), name="otp_enrol"),
            *super().get_urls(),
        ]

    def enrol(self, request: HttpRequest) -> HttpResponse:
        """Set up the logged-in staff user's authenticator app: QR code, then a first code."""
        user = request.user
        login_url = reverse("admin:login", current_app=self.name)
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return HttpResponseRedirect(login_url)
        if _is_verified(user) or staff_device(user) is not None:
            # A second device is added by a superuser, never from a password-only session.
            return HttpResponseRedirect(login_url)
        device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
        if device is None:
            device = TOTPDevice.objects.create(
                user=user, name=str(_("Authenticator app")), confirmed=False
            )
        form = EnrolForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if _verify(user, device, form.cleaned_data["otp_token"], request):
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                otp_login(request, device)
                target = request.GET.get(REDIRECT_FIELD_NAME, "")
                if not url_has_allowed_host_and_scheme(
                    target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
                ):
                    target = reverse("admin:index", current_app=self.name)
                return HttpResponseRedirect(target)
            form.add_error(
                "otp_token", _("This code is wrong or has expired. Enter the current one.")
            )
        secret = base64.b32encode(device.bin_key).decode("ascii")
        context = {
            **self.each_context(request),
            "title": _("Set up two-factor authentication"),
            "form": form,
            "qr_code": _qr_code(device.config_url),
            "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            "app_path": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/otp_enrol.html", context)
