"""Adapters: how each kind of CRM connection receives our changes (and, later, gives its own).

Each kind implements `crmsync.adapters.base.Adapter`; `adapter_for(config)` picks it."""
