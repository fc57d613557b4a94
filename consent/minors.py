"""Children and the age of digital consent (GDPR Art. 8): who may be under it, and whose
consent a child's marketing needs.

Art. 8(1) sets the age at 16 and lets each member state lower it, to 13 at the lowest. The
table below is each EU/EEA state's choice in its national law, as the national acts and the
trackers summarising them give it (checked in November 2026 against the Bird & Bird "GDPR
tracker: children" and the Ghent University mapping for Better Internet for Kids, which cite
the acts named here). A country not in the table (or none given) gets the default of 16.

France: 15, loi n° 78-17 "Informatique et Libertés" art. 45 (art. 7-1 before the 2018
ordinance): under 15, the consent is given jointly by the child and the holder of parental
authority. Elsewhere the guardian's consent alone suffices ("given or authorised by the
holder of parental responsibility", Art. 8(1)); joint consent satisfies every country.

The age a birth year gives is uncertain by one year (the birthday may be later in the year):
a person counts as under age when they may be, i.e. born in or after `year - age`.
"""

from datetime import datetime

from django.db.models import Exists, OuterRef, Q

from consent.models import Actor, ConsentRecord, ConsentState, Purpose
from contacts.models import Contact

# GDPR Art. 8(1): the age when a member state did not lower it.
DEFAULT_DIGITAL_CONSENT_AGE = 16
DIGITAL_CONSENT_AGE: dict[str, int] = {
    "AT": 14,  # Datenschutzgesetz § 4(4)
    "BE": 13,  # loi du 30 juillet 2018, art. 7
    "BG": 14,  # Personal Data Protection Act, art. 25c
    "CY": 14,  # Law 125(I)/2018, art. 8
    "CZ": 15,  # Act 110/2019, § 7
    "DE": 16,  # BDSG: no derogation
    "DK": 13,  # Databeskyttelsesloven § 6(2)
    "EE": 13,  # Isikuandmete kaitse seadus § 8
    "ES": 14,  # Ley Orgánica 3/2018, art. 7
    "FI": 13,  # Tietosuojalaki 1050/2018, § 5
    "FR": 15,  # loi Informatique et Libertés, art. 45
    "GR": 15,  # Law 4624/2019, art. 21
    "HR": 16,  # Zakon o provedbi Opće uredbe, art. 19
    "HU": 16,  # Infotv.: no derogation
    "IE": 16,  # Data Protection Act 2018, s. 31
    "IT": 14,  # Codice privacy, art. 2-quinquies
    "LT": 14,  # Law on the legal protection of personal data, art. 6
    "LU": 16,  # loi du 1er août 2018: no derogation
    "LV": 13,  # Personal Data Processing Law, s. 33
    "MT": 13,  # Subsidiary Legislation 586.11, reg. 3
    "NL": 16,  # Uitvoeringswet AVG, art. 5
    "PL": 16,  # ustawa z 10 maja 2018: no derogation
    "PT": 13,  # Lei 58/2019, art. 16
    "RO": 16,  # Legea 190/2018: no derogation
    "SE": 13,  # Dataskyddslag 2018:218, 2 kap. 4 §
    "SI": 15,  # ZVOP-2 (2022), art. 8
    "SK": 16,  # Act 18/2018, § 15: no lower age
    # EEA (the GDPR applies through the EEA Agreement)
    "IS": 13,  # Lög 90/2018, 10. gr.
    "LI": 16,  # Datenschutzgesetz: no derogation
    "NO": 13,  # Personopplysningsloven § 5
}
# France's overseas departments and collectivities have ISO codes of their own, and the loi
# Informatique et Libertés applies there as in mainland France (its art. 45 included).
FRENCH_TERRITORIES = frozenset(
    {"FR", "GF", "GP", "MQ", "RE", "YT", "BL", "MF", "PM", "NC", "PF", "WF", "TF"}
)
DIGITAL_CONSENT_AGE.update({territory: 15 for territory in FRENCH_TERRITORIES})
# Where the child consents together with the guardian (France); unknown: the strictest.
JOINT_CONSENT_COUNTRIES = FRENCH_TERRITORIES | {""}
# The actors that include the holder of parental responsibility (GDPR Art. 8(1)).
GUARDIAN_ACTORS = frozenset({Actor.GUARDIAN, Actor.PERSON_AND_GUARDIAN})
JOINT_ACTORS = frozenset({Actor.PERSON_AND_GUARDIAN})


def digital_consent_age(country: str) -> int:
    """The age of digital consent in the country of residence (ISO 3166-1 alpha-2)."""
    return DIGITAL_CONSENT_AGE.get((country or "").upper(), DEFAULT_DIGITAL_CONSENT_AGE)


def guardian_actors(country: str) -> frozenset[str]:
    """Who must have given a child's consent in that country: the guardian (or both), or in
    France both together."""
    return JOINT_ACTORS if (country or "").upper() in JOINT_CONSENT_COUNTRIES else GUARDIAN_ACTORS


def possibly_under_age(contact: Contact, at: datetime) -> bool:
    """Whether the person may be under the age of digital consent at `at`: flagged a minor,
    or born in or after the year that could still make them too young."""
    if contact.is_minor:
        return True
    if contact.birth_year is None:
        return False
    return contact.birth_year >= at.year - digital_consent_age(contact.country)


def minor_without_guardian(contact: Contact, state: ConsentState | None, at: datetime) -> bool:
    """Whether a child's message for a pair lacks the guardian's consent: under age, and the
    pair's current state was not set by the guardian (with the child, in France)."""
    if not possibly_under_age(contact, at):
        return False
    record: ConsentRecord | None = state.record if state is not None else None
    return record is None or record.actor not in guardian_actors(contact.country)


def under_age_condition(at: datetime) -> Q:
    """`possibly_under_age` in SQL over contacts."""
    by_age: dict[int, list[str]] = {}
    for country, age in DIGITAL_CONSENT_AGE.items():
        by_age.setdefault(age, []).append(country)
    born = Q(pk__in=[])
    for age, countries in sorted(by_age.items()):
        born |= Q(country__in=sorted(countries), birth_year__gte=at.year - age)
    unlisted = ~Q(country__in=sorted(DIGITAL_CONSENT_AGE))
    born |= unlisted & Q(birth_year__gte=at.year - DEFAULT_DIGITAL_CONSENT_AGE)
    # the birth year's presence first: most people have none, and the country lists are then
    # never compared (a test of a missing year is unknown, not false, and would not stop them)
    return Q(is_minor=True) | (Q(birth_year__isnull=False) & born)


def guardian_consent_condition(actor_lookup: str) -> Q:
    """In SQL over contacts: the pair's state was set by the actors the contact's country
    needs (`guardian_actors`); `actor_lookup` reaches that state's actor (its record's)."""
    joint = Q(country__in=sorted(JOINT_CONSENT_COUNTRIES))
    return (joint & Q(**{f"{actor_lookup}__in": sorted(JOINT_ACTORS)})) | (
        ~joint & Q(**{f"{actor_lookup}__in": sorted(GUARDIAN_ACTORS)})
    )


def guardian_consent_exists(purpose: Purpose, channel: str) -> Q:
    """`guardian_consent_condition` as a correlated EXISTS on the pair's state (for the
    audience, where no state is joined)."""

    def set_by(actors: frozenset[str]) -> Exists:
        return Exists(
            ConsentState.objects.filter(
                contact=OuterRef("pk"),
                purpose=purpose,
                channel=channel,
                actor__in=sorted(actors),
            )
        )

    joint = Q(country__in=sorted(JOINT_CONSENT_COUNTRIES))
    return (joint & Q(set_by(JOINT_ACTORS))) | (~joint & Q(set_by(GUARDIAN_ACTORS)))
