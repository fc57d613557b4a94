"""Merging two contacts found to be one person (SPEC §3 "Dedupe and merge").

The merge reaches into every app that keeps something of the person, as the erasure does, so
it sits here, on top of them: contacts (the profile, CRM ids, interests, timeline), consent
(both ledgers, the state by time), preference links and privacy requests.
"""

from django.db import transaction

from consent.merge import consents_merge
from contacts.models import Contact
from contacts.services import contact_merge_into, contacts_lock_for_merge
from preferences.models import PreferenceToken
from privacy.models import PrivacyRequest


def contact_merge(*, survivor: Contact, merged: Contact, actor: str) -> Contact:
    """Merge `merged` into `survivor`, all or nothing; answer the survivor.

    Both consent histories stay on their own chains and the survivor's history reads both;
    the state is recomputed by time, each change carried appearing on the survivor's chain
    (source `merge`, naming the origin record); the timeline, interests, preference links (so
    that an unsubscribe link already sent keeps working) and privacy requests move to the
    survivor, which keeps its own fields and CRM ids and takes the merged contact's where it
    has none; the merged contact is marked `merged` (never eligible, found as the survivor),
    and one `contact.merged` outbox event tells the CRMs. Refuses a contact into itself, an
    erased contact and one already merged.
    """
    with transaction.atomic():
        survivor, merged = contacts_lock_for_merge(survivor=survivor, merged=merged)
        # a merge is no activity of the person: retention still counts from their last one
        activity = [d for d in (survivor.last_activity_at, merged.last_activity_at) if d]
        consents = consents_merge(survivor=survivor, merged=merged)
        survivor.last_activity_at = max(activity, default=None)
        requests = PrivacyRequest.objects.filter(contact=merged).update(contact=survivor)
        links = PreferenceToken.objects.filter(contact=merged).update(contact=survivor)
        contact_merge_into(
            survivor=survivor,
            merged=merged,
            actor=actor,
            details={
                "records_carried": [str(record.uuid) for record in consents.records],
                "not_carried": consents.skipped,
                "merged_chain_head": consents.merged_head,
                "privacy_requests_moved": requests,
                "preference_links_moved": links,
            },
        )
    return survivor
