"""The special-category screen of notes (Art. 9/10), French and English: a corpus of notes
as staff write them, flagged and innocent, on which precision and recall stay above 90%,
and each category named for the flagged ones."""

import pytest

from contacts.screening import SpecialCategory, special_categories

H, R, P, U, S, E, C = (
    SpecialCategory.HEALTH,
    SpecialCategory.RELIGION,
    SpecialCategory.POLITICS,
    SpecialCategory.UNION,
    SpecialCategory.SEX_LIFE,
    SpecialCategory.ETHNIC_ORIGIN,
    SpecialCategory.CRIMINAL,
)

# (note, the category it should be held for, or None)
CORPUS: list[tuple[str, str | None]] = [
    # flagged, French
    ("En arrêt maladie jusqu'à fin mars, rappeler en avril.", H),
    ("Cliente enceinte, ne pas proposer l'offre sport.", H),
    ("Son fils est handicapé, demande une livraison au rez-de-chaussée.", H),
    ("Suit une chimiothérapie, préfère les appels le matin.", H),
    ("Diabétique : ne pas envoyer les promos chocolat.", H),
    ("Très pratiquant, musulman, pas de rendez-vous pendant le ramadan.", R),
    ("Va à la messe le dimanche, ne pas l'appeler ce jour-là.", R),
    ("Militant de la France insoumise, parle beaucoup de politique.", P),
    ("A dit voter pour le Rassemblement national aux dernières élections.", P),
    ("Délégué syndical CGT dans son entreprise.", U),
    ("Syndiquée à la CFDT, attention aux horaires de réunion.", U),
    ("Il est homosexuel et vit avec son compagnon à Lyon.", S),
    ("Origine maghrébine, parle arabe couramment.", E),
    ("Casier judiciaire : condamné pour fraude en 2019.", C),
    ("Sort de prison le mois prochain selon sa femme.", C),
    # flagged, English
    ("On sick leave until the end of March.", H),
    ("She mentioned she is pregnant, skip the fitness campaign.", H),
    ("Has been diagnosed with depression; prefers email to calls.", H),
    ("Devout Muslim, no meetings during Ramadan please.", R),
    ("Jewish customer, asks for kosher catering at events.", R),
    ("Long-time Labour Party member, votes for them every time.", P),
    ("Union member, shop steward at the warehouse.", U),
    ("Openly gay, asked us to use his partner's name in invitations.", S),
    ("Asian background, speaks Mandarin with the sales team.", E),
    ("Has a criminal record for theft; was arrested in 2018.", C),
    # innocent, French
    ("Préfère être appelée le matin avant 10 h.", None),
    ("Cliente depuis 2019, intéressée par les vélos cargo.", None),
    ("Commande de stylos noirs et de carnets pour le salon.", None),
    ("La RN 7 était fermée, livraison reportée à jeudi.", None),
    ("A demandé un devis pour 12 vélos électriques.", None),
    ("Adresse de facturation différente de l'adresse de livraison.", None),
    ("Parti en vacances jusqu'au 15 août, relancer ensuite.", None),
    ("Rencontrée au salon Vélo City à Nantes.", None),
    ("Souhaite recevoir la newsletter en anglais.", None),
    ("Le directeur des achats change en janvier.", None),
    # innocent, English
    ("Invitation to our launch party sent on Monday.", None),
    ("Black Friday promotion: 20% off accessories.", None),
    ("Sponsor of the city bike race in June.", None),
    ("Asked to merge the two accounts into one (union of both lists).", None),
    ("Wants to strike a deal on the fleet renewal.", None),
    ("Prefers invoices by email, PDF only.", None),
    ("Met at the trade fair in Frankfurt; follow up in May.", None),
    ("Call back about the replacement battery order.", None),
    ("Interested in the new helmet range for kids.", None),
    ("Works from the Lyon office on Tuesdays.", None),
]


def test_the_corpus_has_forty_notes_or_more_in_both_languages_flagged_and_innocent() -> None:
    flagged = [note for note, category in CORPUS if category]
    innocent = [note for note, category in CORPUS if not category]
    assert len(CORPUS) >= 40 and len(flagged) >= 20 and len(innocent) >= 15
    assert {category for _note, category in CORPUS if category} == set(SpecialCategory.values)


def test_precision_and_recall_on_the_corpus_are_above_ninety_percent() -> None:
    held = {note for note, _category in CORPUS if special_categories(note)}
    sensitive = {note for note, category in CORPUS if category}
    true_positives = len(held & sensitive)
    precision = true_positives / len(held)
    recall = true_positives / len(sensitive)

    assert precision > 0.9, sorted(held - sensitive)
    assert recall > 0.9, sorted(sensitive - held)


@pytest.mark.parametrize(("note", "category"), [pair for pair in CORPUS if pair[1]])
def test_a_sensitive_note_is_flagged_for_its_category(note: str, category: str) -> None:
    assert category in [flag.category for flag in special_categories(note)]


def test_the_flag_names_the_words_that_matched_as_written_without_accents() -> None:
    [flag] = special_categories("Il est en arrêt maladie depuis lundi.")

    assert (flag.category, flag.words) == (SpecialCategory.HEALTH, ("arret maladie",))


def test_a_word_is_matched_whole_never_inside_another() -> None:
    # "cgt" inside a reference, "sida" inside a word, "gay" inside a name
    assert special_categories("Référence ABCGT-42, subsidiaire de Gaylord SARL") == []


# Notes the first lexicon let through (issue 15, point 5): conditions, disabilities,
# treatments, beliefs and a hyphenated "ex-", as staff write them.
MISSED_BEFORE: list[tuple[str, str]] = [
    ("Son fils est autiste, préfère les rendez-vous au calme.", H),
    ("Victime d'un AVC l'an dernier, parle lentement.", H),
    ("Se déplace en fauteuil roulant : salle au rez-de-chaussée.", H),
    ("Est sous antidépresseurs depuis son divorce.", H),
    ("Bipolaire selon son associé, humeur variable.", H),
    ("Il est sourd, écrire plutôt qu'appeler.", H),
    ("Uses a wheelchair, needs step-free access at the launch.", H),
    ("Had a heart attack in May, back at work in June.", H),
    ("Is on chemo this winter, call after March.", H),
    ("Recovering alcoholic, no wine in the gift box.", H),
    ("Athée convaincu, refuse les vœux de Noël.", R),
    ("Wears a hijab, prefers a female sales rep.", R),
    ("Vote écolo depuis toujours, sensible au bilan carbone.", P),
    ("Ex-détenu, en réinsertion chez un client partenaire.", C),
]
# Everyday phrases with the same words, which stay innocent.
STILL_INNOCENT = [
    "Non-alcoholic drinks for the stand, please.",
    "Fait la sourde oreille à nos relances depuis mars.",
    "Our offer fell on deaf ears at the board meeting.",
    "Veut le vélo en vert sapin.",
    "Test à l'aveugle des nouvelles selles au salon.",
]


@pytest.mark.parametrize(("note", "category"), MISSED_BEFORE)
def test_a_note_the_first_lexicon_missed_is_flagged_now(note: str, category: str) -> None:
    assert category in [flag.category for flag in special_categories(note)]


@pytest.mark.parametrize("note", STILL_INNOCENT)
def test_the_new_words_leave_everyday_phrases_alone(note: str) -> None:
    assert special_categories(note) == []
