"""The recipient's pages: `/p/` (preference center), `/u/` (one-click unsubscribe) and
`/confirm/` (double opt-in and signup links).

Owns the preference tokens (stored as hashes), the confirmation links for actions a
forwarded link must not allow, the page forms and their rate limits. It owns none of the
rules: every change calls the consent, contacts and privacy services.
"""
