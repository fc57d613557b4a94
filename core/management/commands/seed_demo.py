"""`manage.py seed_demo`: demo users, purposes, interests, contacts and consents, privacy
requests at every point of their deadline and a sent campaign with its results (idempotent).

Everything goes through the services (consents through consent_record with full evidence,
requests through privacy_request_file, the campaign through campaign_send and the sending
and feedback paths), never straight into the tables. What already exists is left alone, so
a second run changes nothing.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from campaigns.models import Campaign, CampaignStatus, Recipient, RecipientStatus
from campaigns.sending import campaign_advance, campaign_send, step_batch_send
from campaigns.services import SegmentCriteria, campaign_create
from consent.ledger import ledger_seal, ledger_verification_record, ledger_verify
from consent.models import (
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    LedgerVerification,
    LegalBasis,
    PrivacyNotice,
    Purpose,
    SourceKind,
)
from consent.services import (
    ConsentWrite,
    Evidence,
    consent_confirm,
    consent_record,
    privacy_notice_save,
    purpose_wording_update,
)
from contacts.deliverability import deliverability_event_apply
from contacts.models import Contact, DeliverabilityEventType, Interest
from contacts.services import contact_upsert
from core.management.commands.setup_roles import DPO, MARKETERS
from core.models import ApiClient, Scope
from preferences.services import Visit, preferences_unsubscribe_all
from privacy.breaches import breach_record
from privacy.models import (
    Breach,
    BreachRisk,
    PrivacyRequest,
    PrivacyRequestStatus,
    PrivacyRequestType,
)
from privacy.services import privacy_request_file, privacy_request_transition

ADMIN_USERNAME, ADMIN_PASSWORD = "admin", "admin-demo-2026"
MARKETER_USERNAME, MARKETER_PASSWORD = "marketer", "marketer-demo-2026"
DPO_USERNAME, DPO_PASSWORD = "dpo", "dpo-demo-2026"
DEMO_API_CLIENT = "demo-form"
POLICY_VERSION = "2026-01"
FORM_URL = "https://www.example.fr/inscription"

PURPOSES: list[dict[str, Any]] = [
    {
        "slug": "newsletter",
        "name_fr": "Lettre d'information",
        "name_en": "Newsletter",
        "description_fr": "Notre lettre mensuelle : nouveautés, conseils et agenda.",
        "description_en": "Our monthly newsletter: news, tips and upcoming dates.",
        "legal_basis": LegalBasis.CONSENT,
        "channels": ["email"],
        "double_opt_in": True,
        "wording_fr": "J'accepte de recevoir la lettre d'information mensuelle par e-mail. "
        "Je peux me désinscrire à tout moment grâce au lien présent dans chaque message.",
        "wording_en": "I agree to receive the monthly newsletter by email. I can unsubscribe "
        "at any time through the link in every message.",
    },
    {
        "slug": "offers",
        "name_fr": "Offres commerciales",
        "name_en": "Special offers",
        "description_fr": "Promotions et offres réservées à nos abonnés.",
        "description_en": "Promotions and offers for our subscribers.",
        "legal_basis": LegalBasis.CONSENT,
        "channels": ["email", "sms"],
        "double_opt_in": False,
        "wording_fr": "J'accepte de recevoir des offres commerciales par e-mail et par SMS.",
        "wording_en": "I agree to receive special offers by email and text message.",
    },
    {
        "slug": "events",
        "name_fr": "Invitations aux événements",
        "name_en": "Event invitations",
        "description_fr": "Invitations à nos salons, ateliers et webinaires.",
        "description_en": "Invitations to our trade shows, workshops and webinars.",
        "legal_basis": LegalBasis.CONSENT,
        "channels": ["email", "postal"],
        "double_opt_in": False,
        "wording_fr": "J'accepte de recevoir des invitations à vos événements par e-mail et "
        "par courrier.",
        "wording_en": "I agree to receive invitations to your events by email and post.",
    },
    {
        "slug": "partners",
        "name_fr": "Partage avec nos partenaires",
        "name_en": "Sharing with our partners",
        "description_fr": "Transmission de vos coordonnées à nos partenaires listés.",
        "description_en": "Sharing your contact details with our listed partners.",
        "legal_basis": LegalBasis.CONSENT,
        "channels": ["email"],
        "double_opt_in": False,
        "retention_days": 730,
        "wording_fr": "J'accepte que mon adresse e-mail soit transmise à vos partenaires "
        "(liste sur la page Partenaires) pour qu'ils m'adressent leurs offres.",
        "wording_en": "I agree that my email address be shared with your partners (listed on "
        "the Partners page) so that they can send me their offers.",
    },
    {
        "slug": "profiling",
        "name_fr": "Personnalisation",
        "name_en": "Personalisation",
        "description_fr": "Adapter nos messages à vos centres d'intérêt et à vos lectures.",
        "description_en": "Tailoring our messages to your interests and what you read.",
        "legal_basis": LegalBasis.LEGITIMATE_INTERESTS,
        "legitimate_interest_fr": "Vous adresser des messages qui vous concernent plutôt que "
        "les mêmes messages à tous, pour garder votre intérêt pour nos produits.",
        "legitimate_interest_en": "Sending you messages that matter to you rather than the same "
        "messages to everyone, to keep your interest in our products.",
        "channels": ["email"],
        "double_opt_in": False,
        "is_profiling": True,
        "wording_fr": "Nous adaptons nos e-mails à vos centres d'intérêt et à vos lectures "
        "(intérêt légitime). Vous pouvez vous y opposer à tout moment.",
        "wording_en": "We tailor our emails to your interests and what you read (legitimate "
        "interest). You can object at any time.",
    },
]

PRIVACY_NOTICE = {
    "text_fr": "Vélos Démo SAS traite vos données pour vous envoyer les communications que vous "
    "avez choisies. Vous pouvez accéder à vos données, les rectifier, les effacer, limiter leur "
    "traitement, vous y opposer, les recevoir dans un format portable et retirer votre "
    "consentement à tout moment depuis le lien en bas de chaque message, ou en écrivant à "
    "notre DPO. Vous pouvez introduire une réclamation auprès de la CNIL.",
    "text_en": "Vélos Démo SAS processes your data to send you the communications you chose. "
    "You can access, rectify or erase your data, restrict or object to its processing, receive "
    "it in a portable format and withdraw your consent at any time from the link at the foot "
    "of every message, or by writing to our DPO. You can complain to the CNIL.",
    "url": "https://www.example.fr/confidentialite",
}

INTERESTS = [
    ("product-news", "Nouveautés produit", "Product news"),
    ("webinars", "Webinaires", "Webinars"),
    ("gdpr-compliance", "Conformité RGPD", "GDPR compliance"),
    ("case-studies", "Études de cas", "Case studies"),
]


@dataclass(frozen=True)
class Step:
    """One consent event of a demo contact: grant, withdraw or confirm (double opt-in)."""

    purpose: str
    channel: str
    action: str
    days_ago: int = 0
    source_kind: str = SourceKind.WEB_FORM
    actor: str = ""  # blank: the person (a child's: the guardian, with the child in France)


@dataclass(frozen=True)
class DemoContact:
    email: str
    fields: dict[str, str]
    interests: list[str]
    ip: str
    user_agent: str
    steps: list[Step] = field(default_factory=list)
    # a child's guardian, (name, email or phone): their consent is recorded with theirs
    guardian: tuple[str, str] | None = None


FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)

CONTACTS = [
    DemoContact(
        email="camille.martin@example.fr",
        fields={
            "first_name": "Camille",
            "last_name": "Martin",
            "phone": "+33612345678",
            "company": "Atelier Martin",
            "city": "Paris",
            "postal_code": "75011",
            "address_line1": "12 rue Oberkampf",
            "country": "FR",
            "language": "fr",
            "lifecycle_stage": "customer",
            "relationship": "customer",
            "customer_since": "2024-03-01",
            "source": FORM_URL,
        },
        interests=["product-news", "webinars"],
        ip="203.0.113.10",
        user_agent=FIREFOX,
        steps=[
            Step("newsletter", "email", ConsentAction.GRANT),
            Step("newsletter", "email", ConsentAction.CONFIRM),
            Step("offers", "email", ConsentAction.GRANT, days_ago=30),
            Step("offers", "sms", ConsentAction.GRANT, days_ago=30),
            Step("events", "postal", ConsentAction.GRANT, days_ago=12),
        ],
    ),
    DemoContact(
        email="jordan.smith@example.com",
        fields={
            "first_name": "Jordan",
            "last_name": "Smith",
            "company": "Northwind Ltd",
            "job_title": "Head of Marketing",
            "city": "Dublin",
            "country": "IE",
            "language": "en",
            "lifecycle_stage": "opportunity",
            "b2b": "true",
            "source": FORM_URL,
        },
        interests=["gdpr-compliance", "case-studies"],
        ip="198.51.100.23",
        user_agent=CHROME,
        steps=[
            Step("newsletter", "email", ConsentAction.GRANT),
            Step("newsletter", "email", ConsentAction.CONFIRM),
            Step("partners", "email", ConsentAction.GRANT, days_ago=20),
            Step("events", "email", ConsentAction.GRANT, days_ago=20),
        ],
    ),
    DemoContact(
        # Signed up, has not clicked the confirmation link yet: a pending double opt-in.
        email="lea.dubois@example.fr",
        fields={
            "first_name": "Léa",
            "last_name": "Dubois",
            "city": "Lyon",
            "country": "FR",
            "language": "fr",
            "lifecycle_stage": "subscriber",
            "source": FORM_URL,
        },
        interests=["webinars"],
        ip="203.0.113.45",
        user_agent=SAFARI,
        steps=[Step("newsletter", "email", ConsentAction.GRANT)],
    ),
    DemoContact(
        email="thomas.bernard@example.fr",
        fields={
            "first_name": "Thomas",
            "last_name": "Bernard",
            "phone": "+32470123456",
            "company": "Bernard & Fils",
            "city": "Bruxelles",
            "country": "BE",
            "language": "fr",
            "lifecycle_stage": "sql",
            "source": FORM_URL,
        },
        interests=["product-news"],
        ip="203.0.113.77",
        user_agent=CHROME,
        steps=[
            Step("offers", "email", ConsentAction.GRANT, days_ago=60),
            Step("offers", "sms", ConsentAction.GRANT, days_ago=60),
            Step(
                "offers",
                "sms",
                ConsentAction.WITHDRAW,
                days_ago=5,
                source_kind=SourceKind.PREFERENCE_CENTER,
            ),
        ],
    ),
    DemoContact(
        email="emma.jones@example.org",
        fields={
            "first_name": "Emma",
            "last_name": "Jones",
            "company": "Blue Harbour",
            "job_title": "CRM Manager",
            "city": "Cork",
            "country": "IE",
            "language": "en",
            "lifecycle_stage": "mql",
            "source": FORM_URL,
        },
        interests=["gdpr-compliance"],
        ip="198.51.100.61",
        user_agent=FIREFOX,
        steps=[
            Step("events", "email", ConsentAction.GRANT, days_ago=9),
            # An objection to profiling (Art. 21), recorded as a withdrawal.
            Step(
                "profiling",
                "email",
                ConsentAction.WITHDRAW,
                days_ago=2,
                source_kind=SourceKind.PREFERENCE_CENTER,
            ),
        ],
    ),
    DemoContact(
        email="hugo.petit@example.fr",
        fields={
            "first_name": "Hugo",
            "last_name": "Petit",
            "phone": "+33698765432",
            "city": "Nantes",
            "postal_code": "44000",
            "address_line1": "3 quai de la Fosse",
            "country": "FR",
            "language": "fr",
            "lifecycle_stage": "lead",
            "source": FORM_URL,
        },
        interests=["case-studies", "product-news"],
        ip="203.0.113.92",
        user_agent=SAFARI,
        steps=[
            Step("newsletter", "email", ConsentAction.GRANT),
            Step("newsletter", "email", ConsentAction.CONFIRM),
            Step("events", "postal", ConsentAction.GRANT, days_ago=3),
        ],
    ),
    DemoContact(
        # A child in France (13 in 2026): her consent counts only given with her parent's (art. 45
        # loi Informatique et Libertés), recorded as such in the ledger.
        email="ines.moreau@example.fr",
        fields={
            "first_name": "Inès",
            "last_name": "Moreau",
            "city": "Rennes",
            "country": "FR",
            "language": "fr",
            "lifecycle_stage": "subscriber",
            "source": FORM_URL,
            "birth_year": "2013",
        },
        interests=["webinars"],
        ip="203.0.113.121",
        user_agent=SAFARI,
        steps=[
            Step("events", "email", ConsentAction.GRANT, days_ago=2, actor="person_and_guardian"),
        ],
        guardian=("Nadia Moreau", "nadia.moreau@example.fr"),
    ),
]


@dataclass(frozen=True)
class DemoRequest:
    """A data-subject request of a demo contact, received `days_ago` (due a month later)."""

    reference: str  # its source reference: how a second run knows it is there
    email: str
    type: str
    days_ago: int
    details: str
    completed_note: str = ""  # the DPO completed it, with this note


# One late, one due this week, one due later, one completed (the DPO's register).
REQUESTS = [
    DemoRequest(
        "seed-demo:late",
        "thomas.bernard@example.fr",
        PrivacyRequestType.RECTIFICATION,
        days_ago=40,
        details="Mon numéro de téléphone a changé : +32 470 99 88 77.",
    ),
    DemoRequest(
        "seed-demo:this-week",
        "emma.jones@example.org",
        PrivacyRequestType.ACCESS,
        days_ago=27,
        details="Please send me a copy of all the data you hold about me.",
    ),
    DemoRequest(
        "seed-demo:later",
        "lea.dubois@example.fr",
        PrivacyRequestType.PORTABILITY,
        days_ago=3,
        details="Je souhaite récupérer mes données dans un format réutilisable.",
    ),
    DemoRequest(
        "seed-demo:completed",
        "camille.martin@example.fr",
        PrivacyRequestType.RECTIFICATION,
        days_ago=20,
        details="Notre adresse est désormais 14 rue Oberkampf.",
        completed_note="Adresse corrigée dans la fiche et dans le CRM.",
    ),
]

DEMO_CAMPAIGN = "Lettre d'information — novembre"
DEMO_BREACH = "Vol d'un ordinateur portable (démo)"
CAMPAIGN_STEP = {
    "channel": "email",
    "subject_fr": "Les nouveautés de novembre",
    "subject_en": "What's new in November",
    "body_text_fr": "Bonjour {first_name},\n\nVoici nos nouveautés du mois.",
    "body_text_en": "Hello {first_name},\n\nHere is what is new this month.",
}
# What came back from the sent campaign: delivered, unsubscribed (by the message's link),
# and a hard bounce.
CAMPAIGN_DELIVERED = ["camille.martin@example.fr", "jordan.smith@example.com"]
CAMPAIGN_UNSUBSCRIBED = "jordan.smith@example.com"
CAMPAIGN_BOUNCED = "hugo.petit@example.fr"


class Command(BaseCommand):
    help = "Load the demo data: users, purposes, interests, contacts with consents (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            self.stderr.write(
                _(
                    "Warning: DEBUG is off. The demo users have published passwords: never seed "
                    "a production database."
                )
            )
        call_command("setup_roles", stdout=self.stdout)
        self._seed_users()
        self._seed_privacy_notice()
        purposes = self._seed_purposes()
        self._seed_interests()
        self._seed_contacts(purposes)
        self._seed_privacy_requests()
        self._seed_campaign(purposes["newsletter"])
        self._seed_breach()
        self._seal_and_verify_ledger()
        self._seed_api_client()
        self._print_credentials()

    def _seed_users(self) -> None:
        users = get_user_model()
        if not users.objects.filter(username=ADMIN_USERNAME).exists():
            users.objects.create_superuser(
                ADMIN_USERNAME, email="admin@example.org", password=ADMIN_PASSWORD
            )
        marketer = users.objects.filter(username=MARKETER_USERNAME).first()
        if marketer is None:
            marketer = users.objects.create_user(
                MARKETER_USERNAME,
                email="marketer@example.org",
                password=MARKETER_PASSWORD,
                is_staff=True,
                first_name="Marie",
                last_name="Keter",
            )
        marketer.groups.add(Group.objects.get(name=MARKETERS))
        dpo = users.objects.filter(username=DPO_USERNAME).first()
        if dpo is None:
            dpo = users.objects.create_user(
                DPO_USERNAME,
                email="dpo@example.org",
                password=DPO_PASSWORD,
                is_staff=True,
                first_name="Denise",
                last_name="Protection",
            )
        dpo.groups.add(Group.objects.get(name=DPO))

    def _seed_privacy_notice(self) -> None:
        """The privacy notice version the demo consents name (POLICY_VERSION)."""
        if not PrivacyNotice.objects.filter(version=POLICY_VERSION).exists():
            privacy_notice_save(
                notice=PrivacyNotice(
                    version=POLICY_VERSION,
                    published_at=timezone.now() - timedelta(days=30),
                    **PRIVACY_NOTICE,
                ),
                by="seed_demo",
            )

    def _seed_purposes(self) -> dict[str, Purpose]:
        purposes = {}
        created_count = 0
        for spec in PURPOSES:
            spec = dict(spec)
            wording_fr, wording_en = spec.pop("wording_fr"), spec.pop("wording_en")
            purpose, created = Purpose.objects.get_or_create(slug=spec.pop("slug"), defaults=spec)
            created_count += created
            # A wording edited since (a new version) is the DPO's: never overwritten here.
            if purpose.current_version is None:
                purpose_wording_update(
                    purpose=purpose, wording_fr=wording_fr, wording_en=wording_en, by="seed_demo"
                )
            purposes[purpose.slug] = purpose
        self.stdout.write(
            _("Purposes: %(created)d created, %(total)d in the demo.")
            % {"created": created_count, "total": len(PURPOSES)}
        )
        return purposes

    def _seed_interests(self) -> None:
        created_count = 0
        for slug, name_fr, name_en in INTERESTS:
            _interest, created = Interest.objects.get_or_create(
                slug=slug, defaults={"name_fr": name_fr, "name_en": name_en}
            )
            created_count += created
        self.stdout.write(_("Interests: %(created)d created.") % {"created": created_count})

    def _seed_contacts(self, purposes: dict[str, Purpose]) -> None:
        created_count = 0
        for demo in CONTACTS:
            if Contact.objects.filter(email=demo.email).exists():
                continue  # seeded before: its consents are already in the ledger
            with transaction.atomic(), translation.override(demo.fields["language"]):
                contact, _created = contact_upsert(
                    email=demo.email, fields=demo.fields, interests=demo.interests
                )
                for step in demo.steps:
                    self._apply_step(contact, purposes[step.purpose], step, demo)
            created_count += 1
        self.stdout.write(
            _("Contacts: %(created)d created, %(total)d in the demo.")
            % {"created": created_count, "total": len(CONTACTS)}
        )

    def _apply_step(
        self, contact: Contact, purpose: Purpose, step: Step, demo: DemoContact
    ) -> ConsentRecord | None:
        if step.action == ConsentAction.CONFIRM:
            pending = ConsentState.objects.get(
                contact=contact,
                purpose=purpose,
                channel=step.channel,
                status=ConsentStatus.PENDING,
            )
            consent_confirm(
                contact=contact,
                record_uuids=[str(pending.record.uuid)],
                ip=demo.ip,
                user_agent=demo.user_agent,
            )
            return None
        version = purpose.current_version
        assert version is not None  # every demo purpose is created with its wording
        wording = version.wording_en if contact.language == "en" else version.wording_fr
        is_grant = step.action == ConsentAction.GRANT
        return consent_record(
            write=ConsentWrite(
                contact=contact,
                purpose=purpose,
                channel=step.channel,
                action=step.action,
                source_kind=step.source_kind,
                source_reference=FORM_URL if step.source_kind == SourceKind.WEB_FORM else "",
                evidence=Evidence(
                    wording=wording if is_grant else "",
                    unticked_by_default=True if is_grant else None,
                    policy_version=POLICY_VERSION,
                    ip=demo.ip,
                    user_agent=demo.user_agent,
                    guardian_name=demo.guardian[0] if demo.guardian and step.actor else "",
                    guardian_contact=demo.guardian[1] if demo.guardian and step.actor else "",
                ),
                given_at=timezone.now() - timedelta(days=step.days_ago),
                actor=step.actor,
            )
        )

    def _seed_privacy_requests(self) -> None:
        """Requests at every point of their deadline, filed as the DPO files them."""
        created_count = 0
        for demo in REQUESTS:
            if PrivacyRequest.objects.filter(source_reference=demo.reference).exists():
                continue
            with transaction.atomic():
                request = privacy_request_file(
                    contact=Contact.objects.get(email=demo.email),
                    type=demo.type,
                    details=demo.details,
                    source_kind=SourceKind.ADMIN,
                    source_reference=demo.reference,
                    verified=bool(demo.completed_note),
                    by=DPO_USERNAME,
                    received_at=timezone.now() - timedelta(days=demo.days_ago),
                )
                if demo.completed_note:
                    privacy_request_transition(
                        request=request,
                        status=PrivacyRequestStatus.COMPLETED,
                        by=DPO_USERNAME,
                        note=demo.completed_note,
                    )
            created_count += 1
        self.stdout.write(
            _("Privacy requests: %(created)d created, %(total)d in the demo.")
            % {"created": created_count, "total": len(REQUESTS)}
        )

    def _seal_and_verify_ledger(self) -> None:
        """What beat does every minute and every night, done once now: the demo's records
        sealed and the ledger checked, so the DPO's dashboard shows both."""
        ledger_seal()
        if not LedgerVerification.objects.exists():
            ledger_verification_record(report=ledger_verify())

    def _seed_breach(self) -> None:
        """A breach found 30 hours ago, the authority decision still to take: the DPO's
        dashboard and the breach register show its deadline running."""
        if Breach.objects.filter(reference=DEMO_BREACH).exists():
            return
        breach_record(
            by=DPO_USERNAME,
            reference=DEMO_BREACH,
            aware_at=timezone.now() - timedelta(hours=30),
            nature=(
                "Un ordinateur portable d'un commercial, non chiffré, a été volé dans un train; "
                "il contenait un export de 340 contacts prospects."
            ),
            persons_categories="Prospects",
            persons_count=340,
            records_categories="Nom, adresse e-mail, téléphone professionnel, entreprise",
            records_count=340,
            consequences="Démarchage ou hameçonnage ciblé possibles.",
            measures=(
                "Mot de passe du compte CRM changé, session révoquée; plainte déposée; "
                "chiffrement des postes nomades programmé."
            ),
            risk=BreachRisk.RISK,
            risk_reasoning=(
                "Données de contact professionnelles sans données sensibles ni financières: "
                "risque réel mais pas élevé; notification à la CNIL, pas aux personnes."
            ),
        )
        self.stdout.write(_("Breach register: a demo breach recorded."))

    def _seed_campaign(self, newsletter: Purpose) -> None:
        """A newsletter sent to everyone who confirmed it, then its deliveries, an unsubscribe
        through the message's link and a hard bounce, as the providers report them."""
        if Campaign.objects.filter(name=DEMO_CAMPAIGN).exists():
            return
        marketer = get_user_model().objects.get(username=MARKETER_USERNAME)
        with transaction.atomic():
            campaign = campaign_create(
                name=DEMO_CAMPAIGN,
                purpose=newsletter,
                steps=[CAMPAIGN_STEP],
                criteria=SegmentCriteria(),
                created_by=marketer,
            )
            campaign_send(campaign=campaign)
        # Where tasks run in-process (the embedded default) they sent it already; with a
        # broker, send it here all the same (sending twice sends nothing more).
        self._send_now(campaign)
        self._report_results(campaign)
        sent = campaign.recipients.filter(sent_at__isnull=False).count()
        self.stdout.write(
            _("Campaign “%(name)s” sent to %(count)d contacts, with its results.")
            % {"name": DEMO_CAMPAIGN, "count": sent}
        )

    def _send_now(self, campaign: Campaign) -> None:
        """Send the demo newsletter through the real sending path, into a mailbox in memory:
        its recipients are the demo's example addresses, and nothing of a demo ever leaves
        through the mail server `EMAIL_URL` names (nor waits for one to answer)."""
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            self._send_steps(campaign)

    def _send_steps(self, campaign: Campaign) -> None:
        for _round in range(len(CONTACTS) + 2):  # a step begins, its batches, then it closes
            campaign_advance(campaign_id=campaign.pk)
            campaign.refresh_from_db()
            if campaign.status != CampaignStatus.SENDING:
                return
            for step in campaign.steps.filter(finished_at__isnull=True):
                while step_batch_send(step_id=step.pk, batch="seed-demo").more:
                    pass

    def _report_results(self, campaign: Campaign) -> None:
        public_id = str(campaign.public_id)
        for email in CAMPAIGN_DELIVERED:
            deliverability_event_apply(
                type=DeliverabilityEventType.DELIVERED,
                email=email,
                campaign=public_id,
                event_id=f"seed-demo-delivered-{email}",
            )
        deliverability_event_apply(
            type=DeliverabilityEventType.HARD_BOUNCE,
            email=CAMPAIGN_BOUNCED,
            campaign=public_id,
            reason="550 5.1.1 mailbox unknown",
            event_id=f"seed-demo-bounce-{CAMPAIGN_BOUNCED}",
        )
        row = Recipient.objects.filter(
            campaign=campaign,
            contact__email=CAMPAIGN_UNSUBSCRIBED,
            status=RecipientStatus.SENT,
        ).first()
        if row is not None and row.preference_token is not None:
            demo = next(demo for demo in CONTACTS if demo.email == CAMPAIGN_UNSUBSCRIBED)
            preferences_unsubscribe_all(
                contact=row.contact,
                visit=Visit(
                    ip=demo.ip, user_agent=demo.user_agent, link=row.preference_token.digest
                ),
            )

    def _seed_api_client(self) -> None:
        if ApiClient.objects.filter(name=DEMO_API_CLIENT).exists():
            self.stdout.write(
                _("API client “%(name)s” already exists; its key was shown when it was created.")
                % {"name": DEMO_API_CLIENT}
            )
            return
        client = ApiClient(
            name=DEMO_API_CLIENT, scopes=[Scope.CONTACTS_WRITE, Scope.CONSENTS_WRITE]
        )
        key = client.set_new_key()
        client.save()
        self.stdout.write(
            _("API client “%(name)s” created; its key, shown only this once: %(key)s")
            % {"name": DEMO_API_CLIENT, "key": key}
        )

    def _print_credentials(self) -> None:
        self.stdout.write(
            _("Admin: %(username)s / %(password)s")
            % {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        )
        self.stdout.write(
            _("Marketer: %(username)s / %(password)s")
            % {"username": MARKETER_USERNAME, "password": MARKETER_PASSWORD}
        )
        self.stdout.write(
            _("DPO: %(username)s / %(password)s")
            % {"username": DPO_USERNAME, "password": DPO_PASSWORD}
        )
        if settings.STAFF_OTP_REQUIRED:
            self.stdout.write(
                _(
                    "Two-factor authentication is on: at the first login, each user sets up an "
                    "authenticator app (QR code) before the admin opens."
                )
            )
        self.stdout.write(
            _("A recipient's preference center: manage.py preference_link %(email)s")
            % {"email": CONTACTS[0].email}
        )
