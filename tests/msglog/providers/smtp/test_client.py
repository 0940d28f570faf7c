"""The SMTP provider against a real SMTP server (aiosmtpd on 127.0.0.1), scripted by the
recipient's domain (tests/fakes/smtp_server.py). Nothing of ours is mocked; no database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msglog.providers.smtp.client import SmtpProvider
from msglog.rules.errors import explain_code
from msglog.rules.provider_interface import Accepted, AmbiguousError, PermanentError, TransientError
from msglog.rules.statuses import Status
from tests.fakes import email_outgoing, free_port
from tests.fakes.smtp_server import FakeSmtpServer


@pytest.fixture
def smtp_server(settings) -> Iterator[FakeSmtpServer]:
    with FakeSmtpServer(stall_seconds=3) as server:
        settings.EMAIL_HOST = server.host
        settings.EMAIL_PORT = server.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        settings.DEFAULT_FROM_EMAIL = "Message Log <noreply@msglog.test>"
        yield server


def test_a_250_is_accepted_under_our_own_message_id(smtp_server):
    accepted = SmtpProvider().send(email_outgoing())

    assert isinstance(accepted, Accepted)
    assert accepted.status == Status.SENT
    assert accepted.raw["smtp_code"] == 250
    assert accepted.raw["smtp_reply"] == "250 2.0.0 OK: queued as fake"
    [received] = smtp_server.received
    assert received.rcpt_tos == ["ann@ok.test"]
    assert received.mail_from == "noreply@msglog.test"
    message = received.message
    # The id we keep is the Message-ID the server got, so bounces and replies quoting
    # it can be matched; it is ours, in the sender's domain.
    assert accepted.provider_message_id == message["Message-ID"]
    assert accepted.provider_message_id.startswith("<")
    assert accepted.provider_message_id.endswith("@msglog.test>")
    assert len(accepted.provider_message_id) <= 100
    assert message["X-Message-Log-ID"] == "m_01HXAMPLE"
    assert message["From"] == "Message Log <noreply@msglog.test>"
    assert message["To"] == "Ann Example <ann@ok.test>"
    assert message["Subject"] == "Your appointment"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text.get_content().strip() == "See you on Monday at 10:00."
    assert html.get_content().strip() == "<p>See you on <b>Monday</b> at 10:00.</p>"
    assert smtp_server.sessions == 1


def test_the_company_sender_is_the_from_and_names_the_message_id_domain(smtp_server):
    accepted = SmtpProvider().send(
        email_outgoing(sender="Acme Clinics <hello@acme.test>", to_name="Zoë Ünal")
    )

    message = smtp_server.messages[0]
    assert message["From"] == "Acme Clinics <hello@acme.test>"
    assert str(message["To"]) == "Zoë Ünal <ann@ok.test>"  # RFC 2047 on the wire, decoded
    assert accepted.provider_message_id.endswith("@acme.test>")
    assert smtp_server.received[0].mail_from == "hello@acme.test"


def test_each_send_gets_a_new_message_id(smtp_server):
    first = SmtpProvider().send(email_outgoing())
    second = SmtpProvider().send(email_outgoing())

    assert first.provider_message_id != second.provider_message_id
    assert [m["Message-ID"] for m in smtp_server.messages] == [
        first.provider_message_id,
        second.provider_message_id,
    ]


def test_a_text_only_message_is_sent_as_plain_text(smtp_server):
    SmtpProvider().send(email_outgoing(html=""))

    message = smtp_server.messages[0]
    assert message.get_content_type() == "text/plain"


def test_550_user_unknown_at_rcpt_is_a_permanent_bounce_keeping_the_enhanced_code(smtp_server):
    with pytest.raises(PermanentError) as caught:
        SmtpProvider().send(email_outgoing("nobody@bounce.test"))

    error = caught.value
    assert error.status == Status.BOUNCED
    assert error.code == "550"
    assert str(error) == "550 5.1.1 <nobody@bounce.test>: Recipient address rejected: User unknown"
    assert error.raw["smtp_code"] == 550
    assert error.raw["smtp_enhanced"] == "5.1.1"
    assert error.raw["stage"] == "rcpt"
    assert error.raw["message_id"].startswith("<")
    assert smtp_server.received == []
    # The code and the message are what msglog.rules.errors reads: the enhanced code wins.
    explanation = explain_code(error.code, str(error), channel="email", provider="smtp")
    assert explanation.title == "Mailbox does not exist"
    assert explanation.code == "550 5.1.1"


def test_a_relay_refusing_to_relay_is_a_failure_not_a_bounce(smtp_server):
    with pytest.raises(PermanentError) as caught:
        SmtpProvider().send(email_outgoing("someone@relay.test"))

    assert caught.value.status == Status.FAILED
    assert caught.value.code == "550"
    assert caught.value.raw["smtp_enhanced"] == "5.7.1"


def test_a_refused_sender_is_a_failure_explained_by_the_servers_words(smtp_server):
    with pytest.raises(PermanentError) as caught:
        SmtpProvider().send(email_outgoing(sender="Acme <hello@refused.test>"))

    error = caught.value
    assert error.status == Status.FAILED
    # No code: every SMTP explanation speaks of the recipient's address, this is ours.
    assert error.code == ""
    assert str(error) == (
        "The mail server refused our sender address: "
        "553 5.7.1 <hello@refused.test>: Sender address rejected: not owned by user"
    )
    assert (error.raw["smtp_code"], error.raw["stage"]) == (553, "mail")


def test_554_after_data_is_a_permanent_failure(smtp_server):
    with pytest.raises(PermanentError) as caught:
        SmtpProvider().send(email_outgoing("someone@spam.test"))

    assert caught.value.status == Status.FAILED
    assert caught.value.code == "554"
    assert str(caught.value) == "554 5.7.1 Message rejected as spam"
    assert caught.value.raw["stage"] == "answered"


def test_451_is_transient(smtp_server):
    with pytest.raises(TransientError) as caught:
        SmtpProvider().send(email_outgoing("busy@defer.test"))

    error = caught.value
    assert error.code == "451"
    assert str(error) == "451 4.3.0 Try again later"
    assert error.raw["smtp_enhanced"] == "4.3.0"
    assert explain_code(error.code, str(error), channel="email").temporary
    assert smtp_server.received == []


def test_connection_refused_is_transient(settings):
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()

    with pytest.raises(TransientError) as caught:
        SmtpProvider().send(email_outgoing())

    assert "Connection refused" in str(caught.value)
    assert caught.value.raw["stage"] == "connect"


def test_an_unknown_host_is_transient(settings):
    # .invalid never resolves (RFC 6761), so this fails fast without a network.
    settings.EMAIL_HOST, settings.EMAIL_PORT = "mail.no-such-host.invalid", 25

    with pytest.raises(TransientError) as caught:
        SmtpProvider().send(email_outgoing())

    assert "gaierror" in caught.value.raw["error"]


def test_a_connection_dropped_after_the_message_was_written_is_ambiguous(smtp_server):
    with pytest.raises(AmbiguousError) as caught:
        SmtpProvider().send(email_outgoing("someone@cut.test"))

    # The server did take it: exactly why this must never be sent again blindly.
    [message] = smtp_server.messages
    assert caught.value.raw["message_id"] == message["Message-ID"]
    assert caught.value.raw["stage"] == "body_sent"


def test_no_answer_after_the_message_within_the_timeout_is_ambiguous(smtp_server, settings):
    settings.EMAIL_TIMEOUT = 0.5

    with pytest.raises(AmbiguousError) as caught:
        SmtpProvider().send(email_outgoing("someone@stall.test"))

    assert "timed out" in str(caught.value)
    assert len(smtp_server.received) == 1


def test_an_invalid_address_fails_without_connecting(smtp_server):
    with pytest.raises(PermanentError) as caught:
        SmtpProvider().send(email_outgoing("not an address"))

    assert caught.value.status == Status.INVALID_RECIPIENT
    assert smtp_server.sessions == 0


def test_a_header_injection_fails_without_connecting(smtp_server):
    with pytest.raises(PermanentError) as caught:
        SmtpProvider().send(email_outgoing(subject="Hello\nBcc: victim@ok.test"))

    assert caught.value.status == Status.FAILED
    assert smtp_server.sessions == 0


def test_lookup_cannot_ask_an_smtp_server():
    assert SmtpProvider().lookup("<1.2.3@msglog.test>", email_outgoing()) is None
