"""`{% field_group %}` writes a form field's markup in Python: every value it writes is
escaped (labels, values, choices, help texts, errors), HTML marked safe is kept as it is, and
the attributes come in `flatatt`'s order."""

from django import forms
from django.utils.safestring import mark_safe

from preferences.templatetags.preference_fields import field_group

HOSTILE = 'O\'Brien "<b>" & co'
ESCAPED = "O&#x27;Brien &quot;&lt;b&gt;&quot; &amp; co"


class _Form(forms.Form):
    name = forms.CharField(label=HOSTILE, help_text=HOSTILE, max_length=5)
    kind = forms.ChoiceField(label="Kind", choices=[(HOSTILE, HOSTILE), ("b", "B")])
    topics = forms.MultipleChoiceField(
        label=mark_safe("<em>Topics</em>"),  # noqa: S308 - a constant
        choices=[(HOSTILE, HOSTILE)],
        widget=forms.CheckboxSelectMultiple,
    )


def test_every_value_written_is_escaped() -> None:
    form = _Form(data={"name": HOSTILE, "kind": HOSTILE, "topics": [HOSTILE]})
    assert not form.is_valid()  # the name is too long: its error is shown too

    name = field_group(form["name"])
    assert name.startswith(f'<label for="id_name">{ESCAPED}</label>')
    assert f'<div class="helptext" id="id_name_helptext">{ESCAPED}</div>' in name
    assert '<ul class="errorlist" id="id_name_error"><li>Ensure this value' in name
    assert f'value="{ESCAPED}"' in name
    assert "<b>" not in name and "O'Brien" not in name

    kind = field_group(form["kind"])
    assert f'<option value="{ESCAPED}" selected>{ESCAPED}</option>' in kind

    topics = field_group(form["topics"])
    assert topics.startswith("<fieldset><legend><em>Topics</em></legend>")
    assert f'value="{ESCAPED}"' in topics and f"> {ESCAPED}</label>" in topics


def test_attributes_are_written_in_flatatt_order_with_booleans_last() -> None:
    markup = field_group(_Form()["name"])
    assert markup.endswith(
        '<input type="text" name="name" aria-describedby="id_name_helptext" id="id_name"'
        ' maxlength="5" required>'
    )
