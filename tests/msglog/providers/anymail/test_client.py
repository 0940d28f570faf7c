"""The anymail provider with anymail's real backends: its test backend for the status
mapping, and its Postmark and Postal backends posting over HTTP to a tiny local server
that answers as those ESPs do, so errors arrive through anymail's own parsing of real
payload shapes. Nothing of ours is mocked; no database."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailRecipientStatus
from anymail.signals import pre_send
from django.core import mail

from msglog.providers.anymail.client import AnymailProvider
from msglog.rules.errors import explain_code
from msglog.rules.provider_interface import Accepted, AmbiguousError, PermanentError, TransientError
from msglog.rules.statuses import Status
from tests.fakes import email_outgoing, free_port

POSTMARK = "anymail.backends.postmark.EmailBackend"
POSTAL = "anymail.backends.postal.EmailBackend"
TEST_BACKEND = "anymail.backends.test.EmailBackend"
POSTMARK_MESSAGE_ID = "0a129aee-e1cd-480d-b08d-4f48548ff48d"


# --- A local ESP: answers as Postmark's /email and Postal's /api/v1/send/message do ------


def postmark_answer(to: str) -> tuple[int, dict | str, dict]:
    """(HTTP status, body, headers) Postmark gives for a message to `to`, by its domain.
    Bodies as documented at postmarkapp.com/developer/api/overview#error-codes."""
    domain = to.rpartition("@")[2]
    ok = {"To": to, "SubmittedAt": "2024-05-02T10:00:00.0-04:00", "MessageID": ""}
    if domain == "ok.test":
        return 200, {**ok, "MessageID": POSTMARK_MESSAGE_ID, "ErrorCode": 0, "Message": "OK"}, {}
    if domain == "delayed.test":
        delayed = "Message accepted, but delivery may be delayed."
        return 200, {**ok, "MessageID": POSTMARK_MESSAGE_ID, "ErrorCode": 0, "Message": delayed}, {}
    if domain == "inactive.test":
        return (
            422,
            {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as "
                f"inactive. Found inactive addresses: {to}. Inactive recipients are ones "
                "that have generated a hard bounce, a spam complaint, or a manual "
                "suppression. ",
            },
            {},
        )
    if domain == "illegal.test":
        message = f"Error parsing 'To': Illegal email domain '{domain}' in address '{to}'."
        return 422, {"ErrorCode": 300, "Message": message}, {}
    if domain == "badfrom.test":
        return 422, {"ErrorCode": 300, "Message": "Invalid 'From' address: 'noreply'."}, {}
    if domain == "token.test":
        message = (
            "The Server Token you provided in the X-Postmark-Server-Token request header "
            "was invalid. Please verify that you are using a valid token."
        )
        return 401, {"ErrorCode": 10, "Message": message}, {}
    if domain == "rate.test":
        return 429, {"ErrorCode": 429, "Message": "Rate limit exceeded."}, {"Retry-After": "7"}
    if domain == "maintenance.test":
        return 503, "Service Unavailable", {}
    if domain == "crash.test":
        return 500, "Internal Server Error", {}
    raise AssertionError(f"no scripted answer for {to}")


@dataclass
class FakeEsp:
    """A threaded HTTP server on 127.0.0.1; `requests` holds what anymail posted."""

    requests: list[dict] = field(default_factory=list)
    slow_seconds: float = 2.0

    def __post_init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def _handler(self):
        esp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                esp.requests.append({"path": self.path, "headers": dict(self.headers), **body})
                if self.path == "/api/v1/send/message":  # Postal
                    to = parseaddr(body["to"][0])[1]
                    answer = {
                        "status": "success",
                        "time": 0.05,
                        "flags": {},
                        "data": {
                            "message_id": "f1c2e0a6@rp.postal.example",
                            "messages": {to: {"id": 37, "token": "Uv8HN1aYvrd4"}},
                        },
                    }
                    return self._answer(200, answer, {})
                to = parseaddr(body["To"])[1]
                domain = to.rpartition("@")[2]
                if domain == "hangup.test":
                    # The whole request was read; the answer never comes.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if domain == "slow.test":
                    time.sleep(esp.slow_seconds)  # the client has given up by now
                    return None
                return self._answer(*postmark_answer(to))

            def _answer(self, status: int, body: dict | str, headers: dict) -> None:
                data = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
                self.send_response(status)
                kind = "application/json" if isinstance(body, dict) else "text/plain"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def esp(settings) -> Iterator[FakeEsp]:
    fake = FakeEsp()
    fake.thread.start()
    settings.DEFAULT_FROM_EMAIL = "Message Log <noreply@msglog.test>"
    settings.ANYMAIL_EMAIL_BACKEND = POSTMARK
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token", "POSTMARK_API_URL": fake.url}
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


# --- Postmark over HTTP: real answers through anymail's own parsing ---------------------


def test_postmark_acceptance_gives_its_message_id_and_the_request_carries_our_ids(esp):
    accepted = AnymailProvider().send(email_outgoing())

    assert isinstance(accepted, Accepted)
    assert accepted.status == Status.SENT
    assert accepted.provider_message_id == POSTMARK_MESSAGE_ID
    assert accepted.raw["status"] == "sent"
    assert accepted.raw["esp_response"]["Message"] == "OK"
    [request] = esp.requests
    assert request["path"] == "/email"
    assert request["headers"]["X-Postmark-Server-Token"] == "server-token"
    assert request["From"] == "Message Log <noreply@msglog.test>"
    assert request["To"] == "Ann Example <ann@ok.test>"
    assert request["Subject"] == "Your appointment"
    assert request["TextBody"] == "See you on Monday at 10:00."
    assert request["HtmlBody"] == "<p>See you on <b>Monday</b> at 10:00.</p>"
    assert request["Metadata"] == {"message_log_id": "m_01HXAMPLE"}
    assert request["Tag"] == "message-log"
    assert {"Name": "X-Message-Log-ID", "Value": "m_01HXAMPLE"} in request["Headers"]


def test_postmark_delayed_delivery_is_queued_which_is_sent(esp):
    accepted = AnymailProvider().send(email_outgoing("ann@delayed.test"))

    assert accepted.status == Status.SENT
    assert accepted.raw["status"] == "queued"
    assert accepted.provider_message_id == POSTMARK_MESSAGE_ID


def test_postmark_inactive_recipient_is_suppressed(esp):
    with pytest.raises(PermanentError) as caught:
        AnymailProvider().send(email_outgoing("gone@inactive.test"))

    error = caught.value
    assert error.status == Status.SUPPRESSED
    assert error.code == "blocked"
    assert "marked as inactive" in str(error)
    assert error.raw["status"] == "rejected"
    assert error.raw["esp_response"]["ErrorCode"] == 406
    assert explain_code(error.code, str(error), channel="email").title == (
        "Blocked by the email provider"
    )


def test_postmark_invalid_to_is_an_invalid_recipient(esp):
    with pytest.raises(PermanentError) as caught:
        AnymailProvider().send(email_outgoing("ann@illegal.test"))

    assert caught.value.status == Status.INVALID_RECIPIENT
    assert caught.value.code == "invalid"
    assert "Illegal email domain" in str(caught.value)


def test_postmark_422_about_something_else_fails_permanently(esp):
    with pytest.raises(PermanentError) as caught:
        AnymailProvider().send(email_outgoing("ann@badfrom.test"))

    error = caught.value
    assert error.status == Status.FAILED
    assert error.code == "HTTP 422"
    assert "Invalid 'From' address" in str(error)
    assert error.raw["http_status"] == 422
    # An HTTP status is never mistaken for an SMTP reply code.
    assert explain_code(error.code, str(error), channel="email").known is False


def test_postmark_401_fails_permanently(esp):
    with pytest.raises(PermanentError) as caught:
        AnymailProvider().send(email_outgoing("ann@token.test"))

    assert caught.value.code == "HTTP 401"
    assert caught.value.status == Status.FAILED


def test_postmark_429_is_transient_with_its_retry_after(esp):
    with pytest.raises(TransientError) as caught:
        AnymailProvider().send(email_outgoing("ann@rate.test"))

    assert caught.value.code == "HTTP 429"
    assert caught.value.retry_after == 7.0


def test_postmark_503_is_transient(esp):
    with pytest.raises(TransientError) as caught:
        AnymailProvider().send(email_outgoing("ann@maintenance.test"))

    assert caught.value.code == "HTTP 503"
    assert caught.value.retry_after is None


def test_postmark_500_is_ambiguous(esp):
    with pytest.raises(AmbiguousError) as caught:
        AnymailProvider().send(email_outgoing("ann@crash.test"))

    assert caught.value.code == "HTTP 500"
    assert caught.value.raw["body"] == "Internal Server Error"


def test_a_connection_closed_after_the_request_is_ambiguous(esp):
    with pytest.raises(AmbiguousError) as caught:
        AnymailProvider().send(email_outgoing("ann@hangup.test"))

    assert len(esp.requests) == 1  # the ESP got it: it must not be sent again blindly
    assert caught.value.raw["http_status"] is None


def test_no_answer_within_the_timeout_is_ambiguous(esp, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.3}

    with pytest.raises(AmbiguousError) as caught:
        AnymailProvider().send(email_outgoing("ann@slow.test"))

    assert "ReadTimeout" in caught.value.raw["error"]


def test_connection_refused_is_transient(esp, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": f"http://127.0.0.1:{free_port()}/"}

    with pytest.raises(TransientError) as caught:
        AnymailProvider().send(email_outgoing())

    assert "Could not reach the email service" in str(caught.value)
    assert esp.requests == []


def test_an_unknown_host_is_transient(esp, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": "http://api.no-such-host.invalid/"}

    with pytest.raises(TransientError):
        AnymailProvider().send(email_outgoing())


def test_an_esp_without_metadata_is_sent_once_without_it(esp, settings):
    # Postal takes no metadata: anymail refuses while building the request, before
    # posting anything, so the provider sends once more without it.
    settings.ANYMAIL_EMAIL_BACKEND = POSTAL
    settings.ANYMAIL = {"POSTAL_API_KEY": "postal-key", "POSTAL_API_URL": esp.url}

    accepted = AnymailProvider().send(email_outgoing())

    assert accepted.provider_message_id == "37"
    [request] = esp.requests
    assert request["path"] == "/api/v1/send/message"
    assert "metadata" not in request
    assert request["to"] == ["Ann Example <ann@ok.test>"]


def test_missing_credentials_fail_permanently(esp, settings):
    settings.ANYMAIL = {"POSTMARK_API_URL": esp.url}

    with pytest.raises(PermanentError) as caught:
        AnymailProvider().send(email_outgoing())

    assert "not configured" in str(caught.value)
    assert esp.requests == []


# --- anymail's test backend: every recipient status ------------------------------------


@pytest.fixture
def scripted(settings) -> Iterator[list]:
    """anymail's test backend; append a response to the yielded list to script the next
    send (anymail's own `anymail_test_response`, set by a real pre_send receiver)."""
    settings.ANYMAIL_EMAIL_BACKEND = TEST_BACKEND
    settings.ANYMAIL = {}
    settings.DEFAULT_FROM_EMAIL = "Message Log <noreply@msglog.test>"
    script: list = []

    def respond(sender, message, esp_name, **kwargs):
        if script:
            response = script.pop(0)
            if not isinstance(response, Exception):
                response = {"recipient_status": {"ann@ok.test": response}}
            message.anymail_test_response = response

    pre_send.connect(respond, weak=False)
    yield script
    pre_send.disconnect(respond)


def test_the_test_backend_accepts_with_its_message_id_and_gets_our_ids(scripted):
    accepted = AnymailProvider().send(email_outgoing())

    [message] = mail.outbox
    assert accepted.provider_message_id == "0"  # the test backend's id: its outbox index
    assert accepted.status == Status.SENT
    params = message.anymail_test_params
    assert params["metadata"] == {"message_log_id": "m_01HXAMPLE"}
    assert params["tags"] == ["message-log"]
    assert params["extra_headers"] == {"X-Message-Log-ID": "m_01HXAMPLE"}
    assert params["html_body"] == "<p>See you on <b>Monday</b> at 10:00.</p>"
    assert params["text_body"] == "See you on Monday at 10:00."
    assert str(params["to"][0]) == "Ann Example <ann@ok.test>"


@pytest.mark.parametrize(
    ("anymail_status", "status", "code"),
    [
        ("rejected", Status.FAILED, "other"),  # no reason in the answer
        ("invalid", Status.INVALID_RECIPIENT, "invalid"),
        ("failed", Status.FAILED, "failed"),
    ],
)
def test_refused_recipient_statuses_are_permanent(scripted, anymail_status, status, code):
    scripted.append(AnymailRecipientStatus(message_id=None, status=anymail_status))

    with pytest.raises(PermanentError) as caught:
        AnymailProvider().send(email_outgoing())

    assert caught.value.status == status
    assert caught.value.code == code
    assert caught.value.raw["status"] == anymail_status


def test_queued_is_sent(scripted):
    scripted.append(AnymailRecipientStatus(message_id="esp-42", status="queued"))

    accepted = AnymailProvider().send(email_outgoing())

    assert (accepted.provider_message_id, accepted.status) == ("esp-42", Status.SENT)


def test_unknown_with_an_id_is_sent_and_without_one_ambiguous(scripted):
    scripted.append(AnymailRecipientStatus(message_id="esp-43", status="unknown"))
    scripted.append(AnymailRecipientStatus(message_id=None, status="unknown"))

    assert AnymailProvider().send(email_outgoing()).provider_message_id == "esp-43"
    with pytest.raises(AmbiguousError):
        AnymailProvider().send(email_outgoing())


def test_an_api_error_without_an_http_status_is_ambiguous(scripted):
    scripted.append(AnymailAPIError("The ESP's SDK failed"))

    with pytest.raises(AmbiguousError):
        AnymailProvider().send(email_outgoing())


def test_no_backend_configured_fails_permanently(settings):
    settings.ANYMAIL_EMAIL_BACKEND = ""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    with pytest.raises(PermanentError) as caught:
        AnymailProvider().send(email_outgoing())

    assert "ANYMAIL_EMAIL_BACKEND" in str(caught.value)


def test_an_invalid_address_fails_before_any_request(scripted):
    with pytest.raises(PermanentError) as caught:
        AnymailProvider().send(email_outgoing("not an address"))

    assert caught.value.status == Status.INVALID_RECIPIENT
    assert mail.outbox == []


def test_lookup_cannot_ask_an_esp():
    assert AnymailProvider().lookup(POSTMARK_MESSAGE_ID, email_outgoing()) is None
