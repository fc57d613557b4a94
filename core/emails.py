"""Rendering of the parts of an email a person reads as plain text."""

from typing import Any

from django.template import Context, Engine


def render_text(template_name: str, context: dict[str, Any]) -> str:
    """Render a subject or a text/plain body: without HTML escaping, which has no place in
    plain text ("J'accepte", not "J&#x27;accepte"; "Dupont & fils", not "Dupont &amp; fils")."""
    template = Engine.get_default().get_template(template_name)
    return template.render(Context(context, autoescape=False))
