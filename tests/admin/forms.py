"""Build the POST body a browser would send from an admin add/change page as it was rendered."""

from typing import Any

from django import forms
from django.http import HttpResponse


def submitted_form(response: HttpResponse, **changes: Any) -> dict[str, Any]:
    """The page's form and inline management data, with `changes` applied (None removes)."""
    data: dict[str, Any] = {}
    _add(data, response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        _add(data, inline.formset.management_form)
        for form in inline.formset.forms:
            _add(data, form)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def _add(data: dict[str, Any], form: forms.BaseForm) -> None:
    for name, field in form.fields.items():
        value = form[name].value()
        key = form.add_prefix(name)
        if isinstance(field.widget, forms.CheckboxInput):
            if value:
                data[key] = "on"
        elif isinstance(field.widget, forms.MultiWidget):  # a date and a time, say
            parts = value if isinstance(value, list) else field.widget.decompress(value)
            for index, part in enumerate(parts):
                if part is not None:
                    data[f"{key}_{index}"] = str(part)
        elif isinstance(value, list | tuple):
            data[key] = [str(item) for item in value]
        elif value is not None:
            data[key] = value
