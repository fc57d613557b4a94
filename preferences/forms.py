"""Forms of the preference center; each is validated before any service writes."""

from typing import Any

from django import forms
from django.db import models
from django.utils.functional import lazy
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from contacts.models import Contact, Frequency, Language
from contacts.services import PAUSE_MONTHS


def _char(name: str, **kwargs: Any) -> forms.CharField:
    field = Contact._meta.get_field(name)
    assert isinstance(field, models.CharField)
    return forms.CharField(
        label=capfirst(field.verbose_name), max_length=field.max_length, required=False, **kwargs
    )


class PageForm(forms.Form):
    """A form of the recipient pages: labels without the trailing colon."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class IdentityForm(PageForm):
    """Rectification (GDPR Art. 16) of what we hold on the person."""

    first_name = _char("first_name", widget=forms.TextInput(attrs={"autocomplete": "given-name"}))
    last_name = _char("last_name", widget=forms.TextInput(attrs={"autocomplete": "family-name"}))
    phone = _char("phone", widget=forms.TextInput(attrs={"autocomplete": "tel"}))
    company = _char("company", widget=forms.TextInput(attrs={"autocomplete": "organization"}))
    job_title = _char(
        "job_title", widget=forms.TextInput(attrs={"autocomplete": "organization-title"})
    )
    address_line1 = _char(
        "address_line1", widget=forms.TextInput(attrs={"autocomplete": "address-line1"})
    )
    address_line2 = _char(
        "address_line2", widget=forms.TextInput(attrs={"autocomplete": "address-line2"})
    )
    postal_code = _char(
        "postal_code", widget=forms.TextInput(attrs={"autocomplete": "postal-code"})
    )
    city = _char("city", widget=forms.TextInput(attrs={"autocomplete": "address-level2"}))
    country = _char(
        "country",
        help_text=_("Two-letter code, for example FR."),
        widget=forms.TextInput(attrs={"autocomplete": "country"}),
    )
    language = forms.ChoiceField(label=_("Language of our messages"), choices=Language.choices)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["phone"].label = _("Mobile phone")
        self.fields["phone"].help_text = _("International format, for example +33 6 12 34 56 78.")


class EmailChangeForm(PageForm):
    email = forms.CharField(
        label=_("New email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )


class InterestsForm(PageForm):
    interests = forms.MultipleChoiceField(
        label=_("Topics"), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["interests"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = choices


class FrequencyForm(PageForm):
    frequency = forms.ChoiceField(
        label=_("How often"), choices=Frequency.choices, widget=forms.RadioSelect
    )


def _months(count: int) -> str:
    return ngettext("%(count)d month", "%(count)d months", count) % {"count": count}


# Translated when the page renders: `ngettext_lazy(...) % {...}` would translate at import,
# freezing the labels in whatever language was active then.
_months_lazy = lazy(_months, str)


class PauseForm(PageForm):
    months = forms.TypedChoiceField(
        label=_("Pause for"),
        coerce=int,
        choices=[(months, _months_lazy(months)) for months in PAUSE_MONTHS],
        widget=forms.RadioSelect,
    )
