"""`{% field_group field %}`: a form field as Django's `as_field_group` writes it, built in
Python instead of through the per-field and per-widget templates, which cost most of the
preference page's rendering (one template per label, widget, option and attribute list).

The markup keeps what the people and their assistive technologies rely on: the label (or the
legend of a fieldset for a group of boxes), the help text and the errors, each tied to the
control by `aria-describedby`, and `aria-invalid` on a control in error. Text inputs,
selects, radio buttons and checkboxes only: the fields of the preference center.
"""

from html import escape
from typing import Any

from django import forms, template
from django.forms.boundfield import BoundField
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def field_group(field: BoundField) -> SafeString:
    widget = field.field.widget
    attrs = field.build_widget_attrs({}, widget)
    if field.auto_id and "id" not in widget.attrs:
        attrs.setdefault("id", field.auto_id)
    context = widget.get_context(field.html_name, field.value(), attrs)["widget"]
    parts = _help_text(field) + _errors(field)
    if field.use_fieldset:
        described = field.aria_describedby
        legend = _escaped(field.label)
        block = _attributes({"aria-describedby": described} if described else {})
        html = f"<fieldset{block}><legend>{legend}</legend>{parts}{_choices(context)}</fieldset>"
        return mark_safe(html)  # noqa: S308 - every value escaped
    control = _select(context) if isinstance(widget, forms.Select) else _input(context)
    label = f'<label for="{_escaped(field.id_for_label)}">{_escaped(field.label)}</label>'
    return mark_safe(label + parts + control)  # noqa: S308 - every value escaped


def _escaped(value: Any) -> str:
    """`conditional_escape` without its lazy-string wrapper, which cost most of this tag's
    time: HTML already marked safe as it is, anything else escaped."""
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return escape(str(value))


def _attributes(attrs: dict[str, Any]) -> str:
    """`django.forms.utils.flatatt`: `name="value"` pairs sorted, then the true booleans
    sorted; False and None left out."""
    pairs = sorted(
        (name, value)
        for name, value in attrs.items()
        if not isinstance(value, bool) and value is not None
    )
    flags = sorted(name for name, value in attrs.items() if value is True)
    return "".join(f' {name}="{_escaped(value)}"' for name, value in pairs) + "".join(
        f" {name}" for name in flags
    )


def _help_text(field: BoundField) -> str:
    if not field.help_text:
        return ""
    return (
        f'<div class="helptext" id="{_escaped(field.auto_id)}_helptext">'
        f"{_escaped(field.help_text)}</div>"
    )


def _errors(field: BoundField) -> str:
    if not field.errors:
        return ""
    items = "".join(f"<li>{_escaped(error)}</li>" for error in field.errors)
    return f'<ul class="errorlist" id="{_escaped(field.auto_id)}_error">{items}</ul>'


def _input(widget: dict[str, Any]) -> str:
    value = widget["value"]
    shown = f' value="{_escaped(value)}"' if value is not None else ""
    return (
        f'<input type="{_escaped(widget["type"])}" name="{_escaped(widget["name"])}"'
        f"{shown}{_attributes(widget['attrs'])}>"
    )


def _select(widget: dict[str, Any]) -> str:
    options = "".join(
        f'<option value="{_escaped(option["value"])}"'
        f"{' selected' if option['selected'] else ''}>{_escaped(option['label'])}</option>"
        for _group, group_options, _index in widget["optgroups"]
        for option in group_options
    )
    attributes = _attributes(widget["attrs"])
    return f'<select name="{_escaped(widget["name"])}"{attributes}>{options}</select>'


def _choices(widget: dict[str, Any]) -> str:
    """Radio buttons or checkboxes, each in its own label, in a block with the field's id."""
    options = "".join(
        f'<div><label for="{_escaped(option["attrs"]["id"])}">'
        f'<input type="{_escaped(option["type"])}"'
        f' name="{_escaped(option["name"])}" value="{_escaped(option["value"])}"'
        f"{_attributes(option['attrs'])}> {_escaped(option['label'])}</label></div>"
        for _group, group_options, _index in widget["optgroups"]
        for option in group_options
    )
    block_id = widget["attrs"].get("id")
    return f"<div{_attributes({'id': block_id} if block_id else {})}>{options}</div>"
