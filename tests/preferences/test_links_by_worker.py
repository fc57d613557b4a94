"""The confirmation links of the center go out through Celery: in-process or a real worker."""

import json
import re
from typing import Any

from django.test import Client

from contacts.models import Contact
from tests.conftest import message_text
from tests.preferences.conftest import BROWSER, post_form


def test_a_download_link_is_emailed_once_committed_and_downloads_the_data(
    transactional_db: None,
    celery_worker: Any,
    mailbox: Any,
    client: Client,
    camille: Contact,
    token: str,
) -> None:
    # given the person asked for their data from the center (the request commits)
    response = post_form(client, token, "download")
    assert response.status_code == 303

    # when the worker (or the in-process task) has sent the link
    [message] = mailbox.wait(1)

    # then it went to the address on file, and its link downloads everything held
    assert message["To"] == camille.email
    link = re.search(r"https?://\S+/p/confirm/\S+/", message_text(message)).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]
    download = client.post(f"/{path}", {"format": "json"}, **BROWSER)
    assert download.status_code == 200
    data = json.loads(download.content)
    assert data["contact"]["email"] == camille.email
