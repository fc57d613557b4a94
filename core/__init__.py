"""The ground floor every other app stands on.

Owns API clients, scopes, throttles, idempotency and the JSON error shape; the staff audit
log (`audit_record`); job runs and the beat scheduler; staff roles and two-factor login;
email sending, signed links, token hashes and keyset batches; `/health/`. Its models and
services import no other app of the project (the audit log's admin and the demo seed read
the apps above).
"""
