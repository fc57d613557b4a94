"""The emails a person reads: subject and plain text without HTML escaping, HTML when the
message has a template for it, in the reader's language; `List-*` headers on marketing; at
the foot of each, who the controller is, its DPO, the privacy notice and the right to complain
(GDPR Art. 12-13, `templates/email/identity_footer.*`), staff messages aside.

`email_send` is the one way a message leaves: every service that emails someone calls it.
"""

from typing import Any, Protocol

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context, Engine, TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import translation


def render_text(template_name: str, context: dict[str, Any]) -> str:
    """Render a subject or a text/plain body: without HTML escaping, which has no place in
    plain text ("J'accepte", not "J&#x27;accepte"; "Dupont & fils", not "Dupont &amp; fils")."""
    template = Engine.get_default().get_template(template_name)
    return template.render(Context(context, autoescape=False))


IDENTITY_FOOTER = "email/identity_footer"


def email_build(
    *,
    template: str,
    context: dict[str, Any],
    to: list[str],
    headers: dict[str, str] | None = None,
    for_staff: bool = False,
) -> EmailMultiAlternatives:
    """The message of `<template>_subject.txt` and `<template>_body.txt`, with
    `<template>_body.html` as its HTML part when that template exists, in the active language.
    A message to a person ends with the controller's identity (`IDENTITY_FOOTER`, GDPR
    Art. 13); one `for_staff` (the DPO's reminders, seal heads) does not.

    To send one, call `email_send`, which renders it in the reader's language.
    """
    try:
        html: str | None = get_template(f"{template}_body.html").render(context)
    except TemplateDoesNotExist:
        html = None
    return message_compose(
        subject=render_text(f"{template}_subject.txt", context),
        body=render_text(f"{template}_body.txt", context),
        html=html,
        to=to,
        headers=headers,
        for_staff=for_staff,
    )


def message_compose(
    *,
    subject: str,
    body: str,
    html: str | None,
    to: list[str],
    headers: dict[str, str] | None = None,
    for_staff: bool = False,
    identity: tuple[str, str] | None = None,
) -> EmailMultiAlternatives:
    """A message from its rendered parts (`email_build` renders templates; campaigns render
    the marketer's content): the text, and the HTML when given, each ending with the
    controller's identity unless `for_staff`, in the active language. `identity`: that
    footer already rendered (`identity_footer`), for a sender of many messages."""
    if not for_staff:
        text_footer, html_footer = identity or identity_footer()
        body = body.rstrip("\n") + "\n" + text_footer
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()), body=body, to=to, headers=headers
    )
    if html is not None:
        if not for_staff:
            html = _with_footer(html, html_footer)
        message.attach_alternative(html, "text/html")
    return message


def identity_footer() -> tuple[str, str]:
    """The controller's identity at the foot of a person's message, as text and as HTML, in
    the active language."""
    return (
        render_text(f"{IDENTITY_FOOTER}.txt", {}),
        get_template(f"{IDENTITY_FOOTER}.html").render({}),
    )


def _with_footer(html: str, footer: str) -> str:
    """The HTML part with `footer` at the end of its body."""
    end = html.lower().rfind("</body>")
    if end < 0:
        return html + footer
    return html[:end] + footer + html[end:]


class Reader(Protocol):
    """Someone an email is written to: a contact knows the language to address them in."""

    def reading_language(self) -> str: ...


def email_send(
    *,
    template: str,
    context: dict[str, Any],
    to: list[str],
    reader: Reader | None = None,
    language: str = "",
    unsubscribe_url: str = "",
    for_staff: bool = False,
) -> EmailMultiAlternatives:
    """Render `template` (`email_build`) in the reader's language and send it to `to`.

    The language is the reader's (`reading_language()`), else `language`, else the site's
    (`LANGUAGE_CODE`). `unsubscribe_url` marks a marketing message: it gets the one-click
    unsubscribe headers (RFC 2369 `List-Unsubscribe`, with `LIST_UNSUBSCRIBE_MAILTO` when
    configured, and RFC 8058 `List-Unsubscribe-Post`). `for_staff` leaves out the footer a
    person's message carries (`email_build`). Answers the message sent.
    """
    if reader is not None:
        language = reader.reading_language()
    with translation.override(language or settings.LANGUAGE_CODE):
        message = email_build(
            template=template,
            context=context,
            to=to,
            headers=list_unsubscribe_headers(unsubscribe_url) if unsubscribe_url else None,
            for_staff=for_staff,
        )
        message.send()
    return message


def list_unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    """The headers by which a mailbox offers its own unsubscribe button (RFC 2369, RFC 8058):
    a POST to the https link unsubscribes in one click; the mailto address, when configured,
    is for mail clients that only send an email."""
    targets = [f"<{unsubscribe_url}>"]
    if settings.LIST_UNSUBSCRIBE_MAILTO:
        targets.append(f"<mailto:{settings.LIST_UNSUBSCRIBE_MAILTO}>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
