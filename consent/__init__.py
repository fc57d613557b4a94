"""What each person agreed to, with the proof.

Owns purposes and their versioned wording, the append-only hash-chained ledger (records and
the personal evidence kept apart), the current consent state, double opt-in, receipts, the
consent-status rule and the eligibility rule (a queryset for audiences, an explanation per
contact). Every consent change goes through `consent_record`.
"""
