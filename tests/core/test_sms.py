"""SMS backends chosen by `SMS_URL` (SPEC §4): console, one JSON file per message, and Twilio
spoken over HTTP (against a local emulator, never the network); numbers in E.164 and the STOP
instruction appended in the person's language."""

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from core.sms import (
    SmsSendError,
    sms_backend,
    sms_backend_from_url,
    sms_body_with_stop,
    sms_message_build,
)


def test_the_console_backend_prints_the_message(settings, capsys):
    settings.SMS_URL = "console://"
    message = sms_message_build(to="06 12 34 56 78", body="Soldes !")

    sms_backend().send(message)

    assert "SMS to +33612345678: Soldes !" in capsys.readouterr().out


def test_the_file_backend_writes_one_json_file_per_message(settings, tmp_path):
    settings.SMS_URL = f"file://{tmp_path}/sms"
    backend = sms_backend()

    for number in ("+33612345678", "0698765432"):
        backend.send(sms_message_build(to=number, body="Hello", campaign="c1", contact="p1"))

    files = sorted((tmp_path / "sms").glob("*.json"))
    written = sorted((json.loads(path.read_text()) for path in files), key=lambda m: m["to"])
    assert written == [
        {"to": "+33612345678", "body": "Hello", "campaign": "c1", "contact": "p1"},
        {"to": "+33698765432", "body": "Hello", "campaign": "c1", "contact": "p1"},
    ]


def test_a_number_that_is_not_one_is_refused():
    with pytest.raises(ValidationError) as error:
        sms_message_build(to="12", body="Hello")
    assert "to" in error.value.message_dict


def test_an_unknown_scheme_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured):
        sms_backend_from_url("pigeon://")


def test_the_stop_instruction_is_appended_with_the_stop_number(settings):
    settings.SMS_STOP_NUMBER = "36111"
    settings.SMS_STOP_INSTRUCTION = ""

    english = sms_body_with_stop("Sale!", "en")
    french = sms_body_with_stop("Soldes !", "fr")

    assert english == "Sale!\nSTOP to 36111"
    # French as the catalogue gives it ("STOP au 36111" once translated by the lead)
    text, instruction = french.split("\n")
    assert text == "Soldes !"
    assert instruction.startswith("STOP") and instruction.endswith("36111")
    assert sms_body_with_stop(english, "en") == english  # appended once


def test_without_a_stop_number_the_person_is_told_to_reply_stop(settings):
    settings.SMS_STOP_NUMBER = ""
    settings.SMS_STOP_INSTRUCTION = ""

    assert sms_body_with_stop("Sale!", "en") == "Sale!\nReply STOP to opt out"


def test_a_configured_stop_instruction_is_used_as_is(settings):
    settings.SMS_STOP_INSTRUCTION = "STOP SMS au 36180"

    assert sms_body_with_stop("Promo", "en") == "Promo\nSTOP SMS au 36180"


class _TwilioEmulator(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 201

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        type(self).received.append(
            {"path": self.path, "auth": self.headers["Authorization"], "form": form}
        )
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        answer = {"sid": "SM42"} if type(self).status == 201 else {"message": "bad To"}
        self.wfile.write(json.dumps(answer).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def emulator() -> Iterator[tuple[str, type[_TwilioEmulator]]]:
    handler = type("Handler", (_TwilioEmulator,), {"received": [], "status": 201})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


def test_the_twilio_backend_posts_to_the_messages_api(emulator):
    host, handler = emulator
    backend = sms_backend_from_url(f"twilio://AC1:tok@{host}/?from=%2B33700000000&insecure=1")

    message_id = backend.send(sms_message_build(to="0612345678", body="Bonjour\nSTOP au 36111"))

    assert message_id == "SM42"
    (request,) = handler.received
    assert request["path"] == "/2010-04-01/Accounts/AC1/Messages.json"
    assert request["auth"] == "Basic " + base64.b64encode(b"AC1:tok").decode()
    assert request["form"] == {
        "To": ["+33612345678"],
        "From": ["+33700000000"],
        "Body": ["Bonjour\nSTOP au 36111"],
    }


def test_a_refusal_from_twilio_is_an_error(emulator):
    host, handler = emulator
    handler.status = 400
    backend = sms_backend_from_url(f"twilio://AC1:tok@{host}/?from=%2B33700000000&insecure=1")

    with pytest.raises(SmsSendError, match="400"):
        backend.send(sms_message_build(to="0612345678", body="Bonjour"))
