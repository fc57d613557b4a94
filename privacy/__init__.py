"""Privacy: data-subject requests and their deadlines, erasure, exports and retention.

It sits above consent and preferences (ARCHITECTURE.md): it calls their functions, and only
views and admin actions of lower apps call its own (`contact_erase`, `contact_keep`, ...).
"""
