"""The controller's identity on every recipient page and message (GDPR Art. 12-13)."""

from django import template

from consent.selectors import controller_identity as identity

register = template.Library()


@register.simple_tag
def controller_identity(cached: bool = True) -> dict[str, str]:
    """`{% controller_identity as who %}`: the controller, its DPO, the privacy notice link and
    the right to complain (`consent.selectors.controller_identity`). Pages and messages read
    the current notice from the cache (`cached`), which saving a notice clears; a message is
    sent by the thousand, and its two parts would read it twice."""
    return identity(cached=cached)
