"""The emails a person reads: subject and plain text without HTML escaping, HTML when the
message has a template for it."""

from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.template import Context, Engine, TemplateDoesNotExist
from django.template.loader import get_template


def render_text(template_name: str, context: dict[str, Any]) -> str:
    """Render a subject or a text/plain body: without HTML escaping, which has no place in
    plain text ("J'accepte", not "J&#x27;accepte"; "Dupont & fils", not "Dupont &amp; fils")."""
    template = Engine.get_default().get_template(template_name)
    return template.render(Context(context, autoescape=False))


def email_build(
    *,
    template: str,
    context: dict[str, Any],
    to: list[str],
    headers: dict[str, str] | None = None,
) -> EmailMultiAlternatives:
    """The message of `<template>_subject.txt` and `<template>_body.txt`, with
    `<template>_body.html` as its HTML part when that template exists.

    Render it inside the recipient's language (`translation.override`), then send it.
    """
    message = EmailMultiAlternatives(
        subject=render_text(f"{template}_subject.txt", context).strip(),
        body=render_text(f"{template}_body.txt", context),
        to=to,
        headers=headers,
    )
    try:
        html = get_template(f"{template}_body.html")
    except TemplateDoesNotExist:
        return message
    message.attach_alternative(html.render(context), "text/html")
    return message
