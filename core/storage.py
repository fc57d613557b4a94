"""File storages the apps share: the private one, never served as static or media files."""

from django.core.files.storage import Storage, storages


def private_storage() -> Storage:
    """Files only the DPO may read (access exports): outside MEDIA_URL, never served as is."""
    return storages["private"]
