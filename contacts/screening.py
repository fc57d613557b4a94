"""Screening free text about a contact for special categories of personal data (GDPR Art. 9:
health, religion, political opinions, trade union membership, sex life or sexual
orientation, racial or ethnic origin; Art. 10: criminal convictions and offences), in French
and English, so that a note that looks like one is held for review rather than stored
silently (SPEC §3 "security, registers and the DPO's view").

The screen is a list of words and phrases per category, matched on whole words in the text
lowered and stripped of accents. It is meant to catch what staff write in a CRM note ("en
arrêt maladie", "member of the CGT", "sort de prison"), not to judge: a match holds the
note with the category and the words that matched, and a person decides. Words that are
mostly innocent in a marketing note ("party", "union", "race", "noir", "strike", "RN") are
only matched inside the phrases that make them sensitive.
"""

import re
import unicodedata
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _


class SpecialCategory(models.TextChoices):
    HEALTH = "health", _("health")
    RELIGION = "religion", _("religious beliefs")
    POLITICS = "politics", _("political opinions")
    UNION = "union", _("trade union membership")
    SEX_LIFE = "sex_life", _("sex life or sexual orientation")
    ETHNIC_ORIGIN = "ethnic_origin", _("racial or ethnic origin")
    CRIMINAL = "criminal", _("criminal convictions and offences")


# Per category, the words and phrases (accents stripped, lower case; `*` ends a word stem).
TERMS: dict[str, tuple[str, ...]] = {
    SpecialCategory.HEALTH: (
        # French
        "maladie*",
        "malade*",
        "cancer*",
        "diabet*",
        "enceinte",
        "grossesse",
        "handicap*",
        "depression",
        "depressi*",
        "hospitalis*",
        "hopital",
        "chimiotherapie",
        "vih",
        "seropositi*",
        "sida",
        "chirurgi*",
        "arret maladie",
        "psychiatr*",
        "psycholog*",
        "medicament*",
        "asthm*",
        "epilep*",
        "alzheimer",
        "burn-out",
        "burn out",
        "sclerose",
        "dialyse",
        "therapie",
        "invalidite",
        "convalescen*",
        "autis*",
        "avc",
        "infarctus",
        "fauteuil roulant",
        "alcoolique*",
        "alcoolisme",
        "anorexi*",
        "boulimi*",
        "antidepresseur*",
        "bipolaire*",
        "schizophren*",
        "chimio",
        "dyslexi*",
        "tdah",
        "est sourd",
        "est sourde",
        "malentendant*",
        "malvoyant*",
        "non-voyant*",
        "toxicomane*",
        "toxicomanie",
        "migraine*",
        # English
        "illness*",
        "sick leave",
        "diabetes",
        "diabetic",
        "pregnan*",
        "disabilit*",
        "disabled",
        "depressed",
        "hospital*",
        "chemotherapy",
        "hiv",
        "aids",
        "surgery",
        "psychiatri*",
        "therapist",
        "medication*",
        "asthma",
        "epilepsy",
        "burnout",
        "sclerosis",
        "medical condition",
        "mental health",
        "autism",
        "autistic",
        "heart attack",
        "wheelchair*",
        "alcoholism",
        "recovering alcoholic",
        "anorexi*",
        "bulimi*",
        "antidepressant*",
        "bipolar",
        "schizophreni*",
        "chemo",
        "dyslexi*",
        "adhd",
        "is deaf",
        "hard of hearing",
        "visually impaired",
        "drug addict*",
        "addicted to drugs",
        "migraine*",
    ),
    SpecialCategory.RELIGION: (
        "musulman*",
        "chretien*",
        "catholique*",
        "protestant*",
        "juif",
        "juive*",
        "juifs",
        "bouddhist*",
        "hindou*",
        "mosquee",
        "synagogue",
        "ramadan",
        "halal",
        "casher",
        "kasher",
        "pratiquant*",
        "religion*",
        "religieu*",
        "a la messe",
        "muslim*",
        "christian*",
        "catholic*",
        "jewish",
        "buddhist*",
        "hindu*",
        "mosque",
        "kosher",
        "religious",
        "churchgoer",
        "goes to church",
        "attends church",
        "athee*",
        "atheist*",
        "jew",
        "jews",
        "hijab",
        "porte le voile",
        "kippa",
        "kipa",
    ),
    SpecialCategory.POLITICS: (
        "parti politique",
        "militant*",
        "vote pour",
        "vote a gauche",
        "vote a droite",
        "vote le",
        "electeur du",
        "electrice du",
        "electeur de",
        "electrice de",
        "de gauche",
        "de droite",
        "extreme gauche",
        "extreme droite",
        "front national",
        "rassemblement national",
        "france insoumise",
        "insoumis*",
        "communiste*",
        "socialiste*",
        "opinions politiques",
        "engage politiquement",
        "political party",
        "political views",
        "votes for",
        "voted for",
        "democrat*",
        "republican*",
        "labour party",
        "conservative party",
        "left-wing",
        "right-wing",
        "far left",
        "far right",
        "political activist",
        "vote ecolo",
        "parti ecologiste",
        "europe ecologie",
        "green party",
    ),
    SpecialCategory.UNION: (
        "syndicat*",
        "syndique*",
        "syndical*",
        "cgt",
        "cfdt",
        "force ouvriere",
        "cfe-cgc",
        "sud-rail",
        "delegue du personnel",
        "trade union*",
        "union member*",
        "unionized",
        "unionised",
        "labor union*",
        "labour union*",
        "shop steward",
        "union rep",
        "union representative",
    ),
    SpecialCategory.SEX_LIFE: (
        "homosexu*",
        "gay",
        "gays",
        "lesbienne*",
        "bisexu*",
        "transgenre*",
        "orientation sexuelle",
        "vie sexuelle",
        "lgbt*",
        "queer",
        "son compagnon homme",
        "sa compagne femme",
        "lesbian*",
        "transgender",
        "sexual orientation",
        "sex life",
        "sexual life",
        "coming out",
    ),
    SpecialCategory.ETHNIC_ORIGIN: (
        "origine ethnique",
        "ethnie*",
        "ethnique*",
        "maghrebin*",
        "arabe*",
        "asiatique*",
        "africain*",
        "noir de peau",
        "couleur de peau",
        "metis*",
        "metisse*",
        "gitan*",
        "origine africaine",
        "origine maghrebine",
        "origine asiatique",
        "racial*",
        "ethnic*",
        "ethnicity",
        "hispanic",
        "latino",
        "arab",
        "arabs",
        "asian",
        "roma",
        "skin colour",
        "skin color",
        "black man",
        "black woman",
        "of african descent",
    ),
    SpecialCategory.CRIMINAL: (
        "casier judiciaire",
        "condamne*",
        "condamnation*",
        "prison",
        "detenu*",
        "garde a vue",
        "incarcer*",
        "antecedents judiciaires",
        "delit*",
        "infraction penale",
        "mis en examen",
        "bracelet electronique",
        "criminal record",
        "convicted",
        "conviction*",
        "jail",
        "arrested",
        "felon*",
        "inmate*",
        "criminal offence",
        "criminal offense",
        "on probation",
        "parole",
        # the screen skips words inside a hyphenated one ("non-alcoholic"): these are whole
        "ex-detenu*",
        "ex-convict*",
    ),
}


@dataclass(frozen=True)
class Flag:
    """A special category a text looks like, and the words in it that matched."""

    category: str
    words: tuple[str, ...]


def _plain(text: str) -> str:
    """Lower case, accents stripped, apostrophes as spaces: how the terms are written."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[’'`]", " ", stripped)


WORD_REST = r"[\w-]*"


def _pattern(term: str) -> str:
    stem = term.endswith("*")
    words = [re.escape(word) for word in term.rstrip("*").split()]
    body = r"\s+".join(words) + (WORD_REST if stem else "")
    return rf"(?<![\w-]){body}(?![\w-])"


PATTERNS: dict[str, re.Pattern[str]] = {
    category: re.compile("|".join(_pattern(term) for term in terms))
    for category, terms in TERMS.items()
}


def special_categories(text: str) -> list[Flag]:
    """The special categories the text looks like, in the order of `SpecialCategory`, each
    with the words that matched (as written in the text, lower case); [] when none."""
    plain = _plain(text)
    flags = []
    for category in SpecialCategory.values:
        found = [match.group(0) for match in PATTERNS[category].finditer(plain)]
        if found:
            flags.append(Flag(category, tuple(dict.fromkeys(found))))
    return flags
