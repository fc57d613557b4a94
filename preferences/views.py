"""The recipient's pages: the preference center, one-click unsubscribe, confirmation links.

No login: the random token in the link is the key. Every page is rate-limited, private
(no caching, no referrer leaving the site) and works without JavaScript.
"""

import re
from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from csp.decorators import csp
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.repermission import (
    repermission_confirm,
    repermission_open,
    repermission_token_read,
    repermission_wording,
)
from consent.models import SourceKind
from consent.selectors import contact_consent_receipts, pending_states_for_confirmation
from consent.services import confirmation_token_read, consent_confirm
from consent.services.signups import (
    signup_confirm,
    signup_items,
    signup_link_used,
    signup_token_read,
)
from contacts.models import Contact, Interest, Language
from contacts.services import contact_pause, contact_resume, contact_touch, contact_update
from core.http import client_ip
from core.tokens import token_hash
from preferences import forms
from preferences.ratelimit import is_one_click, rate_limited
from preferences.selectors import contact_for_token, preference_page
from preferences.services import (
    LinkAction,
    Visit,
    action_link_read,
    action_link_request,
    email_change_approve,
    email_change_confirm,
    personal_data_downloaded,
    preferences_consents_save,
    preferences_profiling_objection_set,
    preferences_resubscribe,
    preferences_unsubscribe_all,
)
from privacy.exports import personal_data_csv_zip, personal_data_json
from privacy.services import contact_keep, erasure_request_confirm

# No script at all, styles and images from the site only, forms posting to the site only.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'none'"],
    "script-src": ["'none'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
}


def private_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponseBase]:
    """Headers of a page reached through a secret link: never cached, indexed or leaked."""

    @wraps(view)
    @csp(CONTENT_SECURITY_POLICY)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "same-origin"
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapper


# The pages opened by a preference link, whose token names the link (`Visit.link`).
PREFERENCE_LINK_VIEWS = frozenset({"preferences:center", "preferences:unsubscribe"})


def _visit(request: HttpRequest) -> Visit:
    """Who is at the page and, on a preference link's page, the link's digest (what the
    person does there is attributed to the campaign message that carried it)."""
    match = request.resolver_match
    token = ""
    if match is not None and match.view_name in PREFERENCE_LINK_VIEWS:
        token = str(match.kwargs.get("token", ""))
    return Visit(
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        link=token_hash(token) if token else "",
    )


def _language(request: HttpRequest, contact: Contact) -> str:
    """The page language: the one the person switched to, else the contact's (or, unknown,
    the browser's)."""
    chosen = request.POST.get("lang") or request.GET.get("lang")
    return chosen if chosen in Language.values else contact.reading_language(request)


def _page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    language: str,
    status: int = 200,
) -> HttpResponse:
    """A recipient page rendered in `language`, which its Content-Language header names."""
    with translation.override(language):
        response = render(request, template, context, status=status)
    response["Content-Language"] = language
    return response


def _token_holder(
    view: Callable[[HttpRequest, str, Contact, str], HttpResponse],
) -> Callable[[HttpRequest, str], HttpResponse]:
    """A page of the preference token's holder: the view gets the contact and the page
    language, and runs in that language; an unknown token gets the page that reveals nothing."""

    @wraps(view)
    def wrapper(request: HttpRequest, token: str) -> HttpResponse:
        contact = contact_for_token(token)
        if contact is None:
            return not_found(request)
        language = _language(request, contact)
        with translation.override(language):
            return view(request, token, contact, language)

    return wrapper


def not_found(request: HttpRequest) -> HttpResponse:
    """The same page for an unknown, malformed, renewed or expired link: it reveals nothing."""
    return render(request, "preferences/invalid.html", status=404)


@private_page
@rate_limited
@require_http_methods(["GET", "POST"])
@_token_holder
def center(request: HttpRequest, token: str, contact: Contact, language: str) -> HttpResponse:
    """The preference center: GET shows everything; each form POSTs, then redirects (303)."""
    bound: dict[str, Any] = {}
    if request.method == "POST":
        name = request.POST.get("form", "")
        handler = HANDLERS.get(name)
        if handler is not None:
            bound = handler(request, contact)
            if not bound:
                if name not in NOT_A_CONTACT:
                    contact_touch(contact=contact)  # an answer from the person: retention restarts
                query = urlencode({"done": name, "lang": language})
                return HttpResponseRedirect(f"{request.path}?{query}", status=303)
        else:
            bound = {"unknown_form": True}
        contact.refresh_from_db()  # a service may have changed it
    return _page(
        request,
        "preferences/center.html",
        _page_context(request, contact, language, bound),
        language=language,
        status=400 if bound else 200,
    )


def _page_context(
    request: HttpRequest, contact: Contact, language: str, bound: dict[str, Any]
) -> dict[str, Any]:
    page = preference_page(contact)
    _show_submitted_choices(page, bound)
    interest_choices = [(interest.slug, interest.name) for interest in page.interests]
    return {
        "page": page,
        "contact": contact,
        "language": language,
        "done": request.GET.get("done") if request.method == "GET" else None,
        "unknown_form": bound.get("unknown_form", False),
        "identity_form": bound.get("identity")
        or forms.IdentityForm(
            initial={
                **{name: getattr(contact, name) for name in forms.IdentityForm.base_fields},
                # unknown: the one the person reads the page in, rather than the first listed
                "language": contact.language or language,
            }
        ),
        "email_form": bound.get("email") or forms.EmailChangeForm(),
        "interests_form": bound.get("interests")
        or forms.InterestsForm(
            choices=interest_choices, initial={"interests": sorted(page.chosen_interests)}
        ),
        "frequency_form": bound.get("frequency")
        or forms.FrequencyForm(initial={"frequency": contact.frequency}),
        "pause_form": bound.get("pause") or forms.PauseForm(),
    }


def _show_submitted_choices(page: Any, bound: dict[str, Any]) -> None:
    """After a refused consent form, show the person's ticks and the errors, not the database."""
    if "consent_errors" not in bound:
        return
    wanted = bound["wanted"]
    for row in page.purposes:
        row.errors = bound["consent_errors"].get(row.purpose.slug, [])
        for channel in row.channels:
            channel.is_on = (row.purpose.slug, channel.code) in wanted


# Each handler validates, calls one service and answers {} on success, or what to re-render.


def _save_consents(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    wanted = {
        cast(tuple[str, str], tuple(value.split(":", 1)))
        for value in request.POST.getlist("consent")
        if ":" in value
    }
    shown: dict[str, int] = {}
    seen: dict[tuple[str, str], str] = {}
    for key in request.POST:
        value = request.POST[key]  # the last value, as items() gives
        if key.startswith("version-"):
            # a malformed number ("²", huge) is a version not shown: a grant is then refused
            if VERSION_NUMBER.fullmatch(value):
                shown[key.removeprefix("version-")] = int(value)
        elif key.startswith("seen:") and key.count(":") == 2:
            _prefix, slug, channel = key.split(":")
            seen[(slug, channel)] = value
    try:
        preferences_consents_save(
            contact=contact,
            wanted=wanted,
            shown_versions=shown,
            seen=seen,
            visit=_visit(request),
        )
    except ValidationError as error:
        return {"consent_errors": error.message_dict, "wanted": wanted}
    return {}


VERSION_NUMBER = re.compile(r"[0-9]{1,9}")


def _with_form(form: Any, key: str, write: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Validate `form`, then write; a service error goes next to its field, nothing saved."""
    if form.is_valid():
        try:
            write(form.cleaned_data)
            return {}
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                target = field if field in form.fields else None
                for message in messages:
                    form.add_error(target, message)
    return {key: form}


def _save_identity(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    return _with_form(
        forms.IdentityForm(request.POST),
        "identity",
        lambda data: contact_update(contact=contact, fields=data),
    )


def _request_email_change(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    return _with_form(
        forms.EmailChangeForm(request.POST),
        "email",
        lambda data: action_link_request(
            contact=contact, action=LinkAction.EMAIL_CHANGE, new_email=data["email"]
        ),
    )


def _save_interests(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    choices = [(interest.slug, interest.name) for interest in Interest.objects.order_by("slug")]
    return _with_form(
        forms.InterestsForm(request.POST, choices=choices),
        "interests",
        lambda data: contact_update(contact=contact, interests=data["interests"]),
    )


def _save_frequency(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    return _with_form(
        forms.FrequencyForm(request.POST),
        "frequency",
        lambda data: contact_update(contact=contact, fields={"frequency": data["frequency"]}),
    )


def _pause(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    return _with_form(
        forms.PauseForm(request.POST),
        "pause",
        lambda data: contact_pause(
            contact=contact, months=data["months"], source=SourceKind.PREFERENCE_CENTER
        ),
    )


def _resume(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    contact_resume(contact=contact, source=SourceKind.PREFERENCE_CENTER)
    return {}


def _unsubscribe(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    preferences_unsubscribe_all(contact=contact, visit=_visit(request))
    return {}


def _resubscribe(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    preferences_resubscribe(contact=contact, visit=_visit(request))
    return {}


def _object_to_profiling(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    preferences_profiling_objection_set(
        contact=contact, objected=request.POST.get("objected") == "1", visit=_visit(request)
    )
    return {}


def _keep(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    contact_keep(contact=contact)
    return {}


def _request_download(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    action_link_request(contact=contact, action=LinkAction.DOWNLOAD)
    return {}


def _request_erasure(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    action_link_request(contact=contact, action=LinkAction.ERASURE)
    return {}


# Forms whose sending is not the person's "last contact" for retention (CNIL, issue 12): a
# refusal (unsubscribe, objection, erasure) must not keep the profile longer; the consents
# form counts through the consent write path, which touches the contact on a grant only.
NOT_A_CONTACT = frozenset({"consents", "unsubscribe", "objection", "erasure"})

HANDLERS: dict[str, Callable[[HttpRequest, Contact], dict[str, Any]]] = {
    "consents": _save_consents,
    "identity": _save_identity,
    "email": _request_email_change,
    "interests": _save_interests,
    "frequency": _save_frequency,
    "pause": _pause,
    "resume": _resume,
    "unsubscribe": _unsubscribe,
    "resubscribe": _resubscribe,
    "objection": _object_to_profiling,
    "keep": _keep,
    "download": _request_download,
    "erasure": _request_erasure,
}


@private_page
@rate_limited
@require_http_methods(["GET"])
@_token_holder
def receipts(request: HttpRequest, token: str, contact: Contact, language: str) -> HttpResponse:
    """Every consent record of the person as a receipt (ISO/IEC TS 27560), one JSON file: the
    proof of what they agreed to and ended (GDPR Art. 7(1), 15). Served at once: the page
    already shows these choices, and a receipt holds no contact details."""
    response = JsonResponse(
        {"receipts": contact_consent_receipts(contact)}, json_dumps_params={"indent": 2}
    )
    response["Content-Disposition"] = (
        f'attachment; filename="consent-receipts-{contact.public_id}.json"'
    )
    return response


@csrf_exempt  # RFC 8058: mailbox providers POST without cookies or CSRF token
@private_page
@rate_limited(ip_exempt=is_one_click)
@require_http_methods(["GET", "POST"])
@_token_holder
def unsubscribe(request: HttpRequest, token: str, contact: Contact, language: str) -> HttpResponse:
    """GET: one button. POST: unsubscribe from all marketing now, answered 200 (no redirect)."""
    done = request.method == "POST"
    if done:
        preferences_unsubscribe_all(
            contact=contact,
            visit=_visit(request),
            source_kind=SourceKind.ONE_CLICK_UNSUBSCRIBE,
        )
    return _page(
        request,
        "preferences/unsubscribe.html",
        {"contact": contact, "token": token, "done": done, "language": language},
        language=language,
    )


@private_page
@rate_limited
@require_http_methods(["GET", "POST"])
def action(request: HttpRequest, token: str) -> HttpResponse:
    """A link sent to the address on file: GET shows one button, POST carries the action out."""
    try:
        contact, name, new_email = action_link_read(token)
    except signing.BadSignature:
        return not_found(request)
    language = _language(request, contact)
    with translation.override(language):
        context: dict[str, Any] = {"action": name, "new_email": new_email, "language": language}
        if request.method == "POST":
            if name == LinkAction.DOWNLOAD:
                return _download(request, contact)
            context.update(_carry_out(contact, name, new_email))
    return _page(request, "preferences/action.html", context, language=language)


def _carry_out(contact: Contact, name: str, new_email: str) -> dict[str, Any]:
    if name == LinkAction.ERASURE:
        return {"done": True, "request": erasure_request_confirm(contact=contact)}
    try:
        if name == LinkAction.EMAIL_CHANGE:
            email_change_approve(contact=contact, new_email=new_email)
            return {"done": True}
        token = email_change_confirm(contact=contact, new_email=new_email)
    except ValidationError as error:
        return {"errors": [m for ms in error.message_dict.values() for m in ms]}
    return {"done": True, "center": reverse("preferences:center", args=[token]) if token else ""}


def _download(request: HttpRequest, contact: Contact) -> HttpResponse:
    file_format = "csv" if request.POST.get("format") == "csv" else "json"
    if file_format == "csv":
        content, content_type, name = personal_data_csv_zip(contact), "application/zip", "zip"
    else:
        content, content_type, name = personal_data_json(contact), "application/json", "json"
    personal_data_downloaded(contact=contact, format=file_format)
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="my-data-{contact.public_id}.{name}"'
    return response


# The double opt-in and signup links: private headers, rate limits, and their signed token
# masked in the logs (preferences.logging), like every recipient page.
@private_page
@rate_limited
@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what is to be confirmed; POST confirms it (link scanners only GET)."""
    try:
        contact, record_uuids = confirmation_token_read(token)
    except signing.BadSignature:
        return render(request, "preferences/confirm.html", {"invalid": True}, status=404)
    language = contact.reading_language(request)
    context: dict[str, Any] = {"confirmed": None}
    if request.method == "POST":
        visit = _visit(request)
        with translation.override(language):
            context["confirmed"] = consent_confirm(
                contact=contact,
                record_uuids=record_uuids,
                ip=visit.ip,
                user_agent=visit.user_agent,
            )
    else:
        context["pending"] = pending_states_for_confirmation(
            contact=contact, record_uuids=record_uuids
        )
        if not context["pending"]:
            context["confirmed"] = []
    return _page(request, "preferences/confirm.html", context, language=language)


@private_page
@rate_limited
@require_http_methods(["GET", "POST"])
def confirm_signup(request: HttpRequest, token: str) -> HttpResponse:
    """The link emailed to a suppressed address with no contact: GET shows the grants it asks
    for; POST records them, lifts the suppression and brings the person back."""
    try:
        signup = signup_token_read(token)
    except signing.BadSignature:
        return render(request, "preferences/confirm_signup.html", {"invalid": True}, status=404)
    language = signup.language or settings.LANGUAGE_CODE
    context: dict[str, Any] = {"confirmed": None}
    if request.method == "POST":
        visit = _visit(request)
        with translation.override(language):
            context["confirmed"] = signup_confirm(
                request=signup, ip=visit.ip, user_agent=visit.user_agent
            )
    else:
        context["items"] = [] if signup_link_used(signup) else signup_items(signup)
        if not context["items"]:
            context["confirmed"] = []
    return _page(request, "preferences/confirm_signup.html", context, language=language)


@private_page
@rate_limited
@require_http_methods(["GET", "POST"])
def confirm_repermission(request: HttpRequest, token: str) -> HttpResponse:
    """The confirm link of a re-permission request: GET shows the purpose's wording and the
    deadline; POST records the person's fresh consent (link scanners only GET)."""
    try:
        row = repermission_token_read(token)
    except signing.BadSignature:
        return render(
            request, "preferences/confirm_repermission.html", {"invalid": True}, status=404
        )
    language = _language(request, row.contact)
    context: dict[str, Any] = {
        "purpose": row.campaign.purpose,
        "deadline": row.campaign.deadline,
        "closed": not repermission_open(row.campaign),
        "confirmed": None,
    }
    with translation.override(language):
        context["wording"] = repermission_wording(row, language)
        if request.method == "POST" and not context["closed"]:
            visit = _visit(request)
            record = repermission_confirm(
                row=row, language=language, ip=visit.ip, user_agent=visit.user_agent
            )
            context["confirmed"] = record is not None
            context["already"] = record is None
    return _page(request, "preferences/confirm_repermission.html", context, language=language)
