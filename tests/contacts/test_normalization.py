import pytest
from django.core.exceptions import ValidationError

from contacts.normalization import normalize_email, normalize_phone


def test_email_is_trimmed_lower_cased_and_its_idn_domain_turned_to_punycode():
    assert normalize_email("  Jean@Exemple-Été.FR ") == "jean@xn--exemple-t-i4ab.fr"


def test_punycode_domain_and_unicode_domain_normalise_to_the_same_email():
    assert normalize_email("jean@XN--EXEMPLE-T-I4AB.fr") == normalize_email("jean@exemple-été.fr")


def test_plain_ascii_email_only_loses_case_and_spaces():
    assert normalize_email("\tCamille.Martin+news@Example.FR\n") == "camille.martin+news@example.fr"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "jean",
        "jean@",
        "@exemple.fr",
        "jean dupont@exemple.fr",
        "jean@exemple..fr",
        "a@b@exemple.fr",
        "jean@" + "a" * 70 + ".fr",
        "jean@exemple",
    ],
)
def test_invalid_email_is_refused(raw):
    with pytest.raises(ValidationError):
        normalize_email(raw)


def test_french_national_phone_number_becomes_e164():
    assert normalize_phone("06 12 34 56 78") == "+33612345678"


def test_international_phone_number_keeps_its_own_country():
    assert normalize_phone("+32 470 12 34 56") == "+32470123456"


def test_national_phone_number_is_read_in_the_contacts_country():
    assert normalize_phone("0470 12 34 56", country="be") == "+32470123456"


def test_blank_phone_stays_blank():
    assert normalize_phone("  ") == ""


@pytest.mark.parametrize("raw", ["12", "not a number", "06 12 34", "+33 6 12 34 56 78 90 12"])
def test_invalid_phone_is_refused(raw):
    with pytest.raises(ValidationError):
        normalize_phone(raw)


LONG_IDN = "jean@" + ".".join(["éèêëàâäîïôöùûüçœæñéèêëàâäîïôöù"] * 6) + ".fr"


def test_an_idn_address_too_long_once_in_punycode_is_refused_with_the_limit():
    # 193 characters as typed, 283 once every label of its domain is in punycode
    assert len(LONG_IDN) < 254

    with pytest.raises(ValidationError) as error:
        normalize_email(LONG_IDN)

    assert "254 characters at most" in error.value.messages[0]


@pytest.mark.django_db
def test_the_api_refuses_such_an_address_on_its_field(api):
    response = api().post("/api/v1/contacts/", {"email": LONG_IDN}, format="json")

    assert response.status_code == 400
    assert "254 characters at most" in response.json()["email"][0]


@pytest.mark.parametrize(
    "raw",
    [
        '"camille.martin"@example.fr',
        '"Camille.Martin"@EXAMPLE.fr',
        '  "camille.martin"@Example.FR ',
        '"cam\\ille.martin"@example.fr',  # a quoted pair is the character itself
        "Camille.Martin@example.fr",
    ],
)
def test_every_spelling_of_one_mailbox_gives_one_key(raw):
    assert normalize_email(raw) == "camille.martin@example.fr"


@pytest.mark.parametrize(
    "raw",
    [
        '"jean dupont"@example.fr',
        '"jean@dupont"@example.fr',
        '"jean\\"dupont"@example.fr',
        '""@example.fr',
        '"jean..dupont"@example.fr',
        '"jean@example.fr',
    ],
)
def test_a_quoted_local_part_that_needs_its_quotes_is_refused_with_a_clear_message(raw):
    with pytest.raises(ValidationError) as error:
        normalize_email(raw)

    assert error.value.code == "quoted"
    assert "without quotes" in error.value.messages[0]


@pytest.mark.parametrize(
    "raw",
    [
        "cam\u0131lle.mart\u0131n@example.fr",  # dotless i: Django's check reads it as "i"
        "\u017fophie@example.fr",  # long s: casefold gives "s"
        "\u212aevin@example.fr",  # Kelvin sign: lower() gives "k"
        "\uff43amille@example.fr",  # full-width c
        "c\u0430mille@example.fr",  # Cyrillic a
        "jos\u00e9@example.fr",
    ],
)
def test_a_local_part_with_look_alike_or_accented_letters_is_refused_with_a_clear_message(raw):
    with pytest.raises(ValidationError) as error:
        normalize_email(raw)

    assert error.value.code == "non_ascii"
    assert "ASCII" in error.value.messages[0]


@pytest.mark.parametrize(
    "raw",
    [
        "camille@\uff45xample.fr",  # full-width e
        "camille@EXAMPLE.FR",
        "camille@exa\u200bmple.fr",  # zero-width space: IDNA maps it to nothing
    ],
)
def test_variants_of_the_domain_fold_as_idna_maps_them(raw):
    assert normalize_email(raw) == "camille@example.fr"


def test_a_long_s_in_the_domain_folds_to_s_as_idna_maps_it():
    assert normalize_email("camille@\u017fample.fr") == "camille@sample.fr"


def test_a_quoted_look_alike_is_refused_for_its_characters_not_its_quotes():
    with pytest.raises(ValidationError) as error:
        normalize_email('"cam\u0131lle"@example.fr')

    assert error.value.code == "non_ascii"
