"""The people whose consents we keep.

Owns the contact and its normalised email and phone, interests, the timeline, pauses,
restriction and objection flags, deliverability, and the suppression list (HMAC digests).
The one write path is `contacts.services` (`contact_upsert`, `contact_update`,
`suppression_add`, `contact_anonymise`); reads go through `contacts.selectors`.
"""
