"""Synchronisation with CRMs.

Owns the outbox, written by `outbox_emit` in the same transaction as the change it
describes, so that nothing is lost on its way to a CRM.
"""
