"""The ground floor every other app stands on.

Owns API clients, scopes, throttles, idempotency and the JSON error shape; the staff audit
log (`audit_record`); job runs and the beat scheduler; staff roles and two-factor login;
the email helper and signed links; `/health/`. It imports no other app of the project.
"""
