"""`{% field_group field %}`: a form field as Django's `as_field_group` writes it, built in
Python instead of through the per-field and per-widget templates, which cost most of the
preference page's rendering (one template per label, widget, option and attribute list).

The markup keeps what the people and their assistive technologies rely on: the label (or the
legend of a fieldset for a group of boxes), the help text and the errors, each tied to the
control by `aria-describedby`, and `aria-invalid` on a control in error. Text inputs,
selects, radio buttons and checkboxes only: the fields of the preference center.
"""

from typing import Any

from django import forms, template
from django.forms.boundfield import BoundField
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def field_group(field: BoundField) -> SafeString:
    widget = field.field.widget
    attrs = field.build_widget_attrs({}, widget)
    if field.auto_id and "id" not in widget.attrs:
        attrs.setdefault("id", field.auto_id)
    context = widget.get_context(field.html_name, field.value(), attrs)["widget"]
    parts = [_help_text(field), _errors(field)]
    if field.use_fieldset:
        described = field.aria_describedby
        control = _choices(context)
        return format_html(
            "<fieldset{}><legend>{}</legend>{}{}</fieldset>",
            flatatt({"aria-describedby": described} if described else {}),
            field.label,
            mark_safe("".join(parts)),  # noqa: S308 - built with format_html
            control,
        )
    control = _select(context) if isinstance(widget, forms.Select) else _input(context)
    label = format_html('<label for="{}">{}</label>', field.id_for_label, field.label)
    return mark_safe(label + "".join(parts) + control)  # noqa: S308 - built with format_html


def _help_text(field: BoundField) -> str:
    if not field.help_text:
        return ""
    return format_html(
        '<div class="helptext" id="{}_helptext">{}</div>', field.auto_id, field.help_text
    )


def _errors(field: BoundField) -> str:
    if not field.errors:
        return ""
    return format_html(
        '<ul class="errorlist" id="{}_error">{}</ul>',
        field.auto_id,
        format_html_join("", "<li>{}</li>", ((error,) for error in field.errors)),
    )


def _input(widget: dict[str, Any]) -> str:
    value = widget["value"]
    return format_html(
        '<input type="{}" name="{}"{}{}>',
        widget["type"],
        widget["name"],
        format_html(' value="{}"', value) if value is not None else "",
        flatatt(widget["attrs"]),
    )


def _select(widget: dict[str, Any]) -> str:
    options = format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        (
            (option["value"], " selected" if option["selected"] else "", option["label"])
            for _group, group_options, _index in widget["optgroups"]
            for option in group_options
        ),
    )
    return format_html(
        '<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]), options
    )


def _choices(widget: dict[str, Any]) -> str:
    """Radio buttons or checkboxes, each in its own label, in a block with the field's id."""
    options = format_html_join(
        "",
        '<div><label for="{}"><input type="{}" name="{}" value="{}"{}> {}</label></div>',
        (
            (
                option["attrs"]["id"],
                option["type"],
                option["name"],
                option["value"],
                flatatt(option["attrs"]),
                option["label"],
            )
            for _group, group_options, _index in widget["optgroups"]
            for option in group_options
        ),
    )
    block_id = widget["attrs"].get("id")
    return format_html("<div{}>{}</div>", flatatt({"id": block_id} if block_id else {}), options)
