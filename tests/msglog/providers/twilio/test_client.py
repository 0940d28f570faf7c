"""The Twilio provider, through the real `twilio` SDK, against a fake of Twilio's API.

Nothing of ours is mocked and the SDK is not patched: the provider's own HTTP client
sends the SDK's requests to the fake (TWILIO_API_BASE_URL), which answers like Twilio,
misbehaves as each test scripts it, and counts every create request, so "handed over
at most once" is checked by counting what the fake received.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
import requests
import urllib3.exceptions
from twilio.rest.api.v2010.account.message import MessageInstance

from msglog.providers.twilio.client import (
    STATUS_MAP,
    RoutedHttpClient,
    TwilioNotConfigured,
    TwilioProvider,
    map_status,
)
from msglog.rules.provider_interface import (
    Accepted,
    AmbiguousError,
    NotFound,
    Outgoing,
    PermanentError,
    ProviderError,
    TransientError,
)
from msglog.rules.statuses import Status
from tests.fakes import fake_twilio  # noqa: F401  (the fixture)
from tests.fakes.twilio_api import (
    CLOSE,
    CUT_BODY,
    HANG,
    RESET,
    FakeTwilio,
    Fault,
    twilio_error,
)

FROM = "+15005550006"
TO = "+14155550100"
CALLBACK = "https://log.example.com/webhooks/twilio/status/"
SID_PATTERN = r"^SM[0-9a-f]{32}$"


def make_outgoing(to: str = TO, text: str = "Your code is 1234", **fields) -> Outgoing:
    values = {
        "public_id": "msg_01",
        "company_id": 1,
        "channel": "sms",
        "to": to,
        "to_name": "Pat Patient",
        "sender": "",
        "subject": "",
        "text": text,
        "html": "",
        "status_callback_url": CALLBACK,
        "metadata": {"attempt": 1, "created_at": datetime.now(UTC).isoformat()},
    }
    return Outgoing(**{**values, **fields})


@pytest.fixture
def twilio_settings(settings, fake_twilio):  # noqa: F811
    settings.TWILIO_ACCOUNT_SID = fake_twilio.account_sid
    settings.TWILIO_AUTH_TOKEN = fake_twilio.auth_token
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_FROM_NUMBER = FROM
    settings.TWILIO_API_BASE_URL = fake_twilio.base_url
    settings.TWILIO_HTTP_TIMEOUT = (2.0, 1.0)  # a hanging fake ends the test in a second
    return settings


@pytest.fixture
def provider(twilio_settings) -> TwilioProvider:
    return TwilioProvider()


@pytest.fixture
def fake(fake_twilio) -> FakeTwilio:  # noqa: F811
    return fake_twilio


def assert_no_secret(fake: FakeTwilio, error: BaseException | None = None, *payloads) -> None:
    """Neither the auth token nor the account SID shows in what the provider returned."""
    texts = [json.dumps(p, default=str) for p in payloads]
    if error is not None:
        texts += [str(error), repr(error), repr(error.args)]
        if isinstance(error, ProviderError):
            texts.append(json.dumps(error.raw, default=str))
        assert error.__context__ is None and error.__cause__ is None
    for text in texts:
        assert fake.auth_token not in text
        assert fake.account_sid not in text


# --- the status table ------------------------------------------------------------------


def test_every_twilio_status_has_a_place_in_the_table():
    twilio_statuses = {
        value for name, value in vars(MessageInstance.Status).items() if not name.startswith("_")
    }
    assert twilio_statuses == set(STATUS_MAP)
    assert set(STATUS_MAP.values()) <= {s.value for s in Status} | {""}


@pytest.mark.parametrize(
    ("twilio_status", "ours"),
    [
        ("queued", "sent"),
        ("accepted", "sent"),
        ("scheduled", "sent"),
        ("sending", "sent"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("partially_delivered", "delivered"),
        ("undelivered", "undelivered"),
        ("failed", "failed"),
        ("read", "opened"),
        ("canceled", "canceled"),
        ("received", ""),
        ("receiving", ""),
        ("Delivered", "delivered"),
        ("something_new", ""),
        ("", ""),
    ],
)
def test_map_status(twilio_status, ours):
    assert map_status(twilio_status) == ours


# --- send ------------------------------------------------------------------------------


def test_send_creates_the_message_once_and_returns_its_sid(provider, fake):
    accepted = provider.send(make_outgoing())

    assert isinstance(accepted, Accepted)
    assert accepted.provider_message_id.startswith("SM")
    assert len(accepted.provider_message_id) == 34
    assert accepted.status == Status.SENT  # Twilio's "queued": Twilio has it
    assert fake.calls == [
        {"To": TO, "Body": "Your code is 1234", "From": FROM, "StatusCallback": CALLBACK}
    ]
    assert list(fake.messages) == [accepted.provider_message_id]
    assert accepted.raw["sid"] == accepted.provider_message_id
    assert accepted.raw["status"] == "queued"
    assert accepted.raw["to"] == TO
    assert accepted.raw["num_segments"] == "1"
    assert "account_sid" not in accepted.raw and "uri" not in accepted.raw
    assert_no_secret(fake, None, accepted.raw)


def test_the_companys_sender_is_the_from_number(provider, fake):
    provider.send(make_outgoing(sender="+447700900123"))
    assert fake.calls[0]["From"] == "+447700900123"


def test_without_a_company_sender_the_messaging_service_sends(twilio_settings, fake):
    twilio_settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "1" * 32
    accepted = TwilioProvider().send(make_outgoing(status_callback_url=""))

    assert fake.calls == [
        {"To": TO, "Body": "Your code is 1234", "MessagingServiceSid": "MG" + "1" * 32}
    ]
    assert accepted.raw["status"] == "accepted"
    assert accepted.status == Status.SENT


def test_a_company_with_its_own_messaging_service_sends_through_it(provider, fake):
    provider.send(make_outgoing(sender="MG" + "a" * 32, status_callback_url=""))

    assert fake.calls == [
        {"To": TO, "Body": "Your code is 1234", "MessagingServiceSid": "MG" + "a" * 32}
    ]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (21211, Status.INVALID_RECIPIENT),  # invalid To
        (21614, Status.INVALID_RECIPIENT),  # not a mobile number
        (21610, Status.SUPPRESSED),  # the recipient replied STOP
        (21408, Status.FAILED),  # region not enabled: our configuration, not the address
        (21617, Status.FAILED),  # body too long
    ],
)
def test_a_refusal_is_permanent_with_its_status(provider, fake, code, status):
    fake.script[TO] = twilio_error(400, code, f"Twilio says no ({code}).")

    with pytest.raises(PermanentError) as caught:
        provider.send(make_outgoing())

    error = caught.value
    assert error.status == status
    assert error.code == str(code)
    assert f"Twilio says no ({code})." in str(error)
    assert error.raw["code"] == code and error.raw["http_status"] == 400
    assert error.raw.get("opt_out", False) is (code == 21610)
    assert len(fake.calls) == 1
    assert fake.messages == {}
    assert_no_secret(fake, error)


@pytest.mark.parametrize(
    ("fault", "code", "retry_after"),
    [
        (twilio_error(429, 20429, "Too Many Requests", retry_after="7"), "20429", 7.0),
        (twilio_error(400, 20429, "Too Many Requests"), "20429", None),
        (twilio_error(503, 20503, "Service Unavailable", retry_after="2"), "20503", 2.0),
        (Fault(status=503, body="<html>busy</html>"), "503", None),
    ],
)
def test_busy_answers_are_transient(provider, fake, fault, code, retry_after):
    fake.script[TO] = fault

    with pytest.raises(TransientError) as caught:
        provider.send(make_outgoing())

    assert caught.value.code == code
    assert caught.value.retry_after == retry_after
    assert len(fake.calls) == 1  # the SDK did not retry on its own
    assert_no_secret(fake, caught.value)


def test_retry_after_as_an_http_date(provider, fake):
    later = datetime.now(UTC) + timedelta(seconds=30)
    fake.script[TO] = twilio_error(
        429, 20429, retry_after=later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    )
    with pytest.raises(TransientError) as caught:
        provider.send(make_outgoing())
    assert 20 <= caught.value.retry_after <= 31


@pytest.mark.parametrize(
    "fault",
    [
        twilio_error(500, 20500, "Internal Server Error"),
        Fault(status=502, body="<html>Bad gateway</html>"),
        twilio_error(504, 20504, "Gateway Timeout"),
    ],
)
def test_other_server_errors_are_ambiguous(provider, fake, fault):
    fake.script[TO] = fault
    with pytest.raises(AmbiguousError) as caught:
        provider.send(make_outgoing())
    assert str(fault.status) in str(caught.value)
    assert len(fake.calls) == 1
    assert_no_secret(fake, caught.value)


@pytest.mark.parametrize("drop", [CLOSE, RESET, HANG, CUT_BODY])
def test_a_connection_lost_after_the_request_is_ambiguous(provider, fake, drop):
    fake.script[TO] = Fault(drop=drop, record=True)

    with pytest.raises(AmbiguousError) as caught:
        provider.send(make_outgoing())

    assert caught.value.code == "network"
    assert len(fake.calls) == 1
    assert len(fake.messages) == 1  # Twilio has it: sending again would send it twice
    assert_no_secret(fake, caught.value)


def test_a_lost_answer_is_reconciled_by_searching_without_a_second_send(provider, fake):
    outgoing = make_outgoing()
    fake.script[TO] = Fault(drop=CLOSE, record=True, times=1)
    with pytest.raises(AmbiguousError):
        provider.send(outgoing)
    [(sid, stored)] = fake.messages.items()

    report = provider.lookup("", outgoing)

    assert report is not None
    assert report.provider_message_id == sid
    assert report.status == Status.SENT  # still queued at Twilio, which has it
    assert report.event == "queued"
    assert report.occurred_at == parsedate_to_datetime(stored["date_updated"])
    assert report.raw["sid"] == sid and report.raw["polled"] is True
    assert len(fake.calls) == 1  # looked up, never sent again
    assert [method for method, _ in fake.requests] == ["POST", "GET"]
    assert_no_secret(fake, None, report.raw)

    # Later news arrives through the SID found.
    fake.set_status(sid, "delivered")
    assert provider.lookup(report.provider_message_id, outgoing).status == Status.DELIVERED


def test_a_refused_connection_is_transient_and_sends_nothing(twilio_settings, fake):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    twilio_settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{port}"

    with pytest.raises(TransientError) as caught:
        TwilioProvider().send(make_outgoing())

    assert caught.value.code == "network"
    assert caught.value.raw == {"error": "ConnectionError"}
    assert fake.calls == []
    assert_no_secret(fake, caught.value)


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full, so a new connection is never established."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # it connects in the background
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_a_connect_timeout_is_transient(twilio_settings, unanswered_port):
    twilio_settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{unanswered_port}"
    twilio_settings.TWILIO_HTTP_TIMEOUT = (0.3, 1.0)

    with pytest.raises(TransientError) as caught:
        TwilioProvider().send(make_outgoing())

    assert caught.value.raw == {"error": "ConnectTimeout"}


def test_a_2xx_answer_without_a_sid_is_ambiguous(provider, fake):
    fake.script[TO] = Fault(status=201, body="", record=True)
    with pytest.raises(AmbiguousError) as caught:
        provider.send(make_outgoing())
    assert caught.value.code == "no_sid"


def test_wrong_credentials_are_permanent_and_never_shown(twilio_settings, fake):
    twilio_settings.TWILIO_AUTH_TOKEN = "wrong-token-" + "9" * 20
    wrong = TwilioProvider()

    with pytest.raises(PermanentError) as caught:
        wrong.send(make_outgoing())

    error = caught.value
    assert error.status == Status.FAILED
    assert error.code == "20003"
    assert error.raw["http_status"] == 401
    assert "Authentication Error" in str(error)
    for secret in ("wrong-token-" + "9" * 20, fake.account_sid):
        for text in (str(error), repr(error), json.dumps(error.raw), repr(wrong)):
            assert secret not in text
    assert error.__context__ is None
    assert fake.messages == {}
    # Lookups with wrong credentials cannot tell anything.
    assert wrong.lookup("SM" + "0" * 32, make_outgoing()) is None
    assert wrong.lookup("", make_outgoing()) is None


def test_an_error_naming_the_account_sid_is_shown_without_it(provider, fake):
    path = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    fake.script[TO] = twilio_error(404, 20404, f"The requested resource {path} was not found")

    with pytest.raises(PermanentError) as caught:
        provider.send(make_outgoing())

    assert caught.value.code == "20404"
    assert "/Accounts/AC[redacted]/Messages.json" in str(caught.value)
    assert_no_secret(fake, caught.value)


def test_missing_configuration_fails_without_a_call(twilio_settings, fake):
    twilio_settings.TWILIO_AUTH_TOKEN = ""
    with pytest.raises(TwilioNotConfigured) as caught:
        TwilioProvider().send(make_outgoing())
    assert caught.value.status == Status.FAILED
    assert caught.value.code == "not_configured"
    assert TwilioProvider().lookup("", make_outgoing()) is None

    twilio_settings.TWILIO_AUTH_TOKEN = fake.auth_token
    twilio_settings.TWILIO_FROM_NUMBER = ""
    with pytest.raises(TwilioNotConfigured):
        TwilioProvider().send(make_outgoing())
    assert fake.calls == []


# --- lookup by SID ---------------------------------------------------------------------


def test_lookup_of_a_delivered_message(provider, fake):
    sid = provider.send(make_outgoing()).provider_message_id
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    fake.set_status(sid, "delivered", at=at)

    report = provider.lookup(sid, make_outgoing())

    assert report.provider_message_id == sid
    assert report.status == Status.DELIVERED
    assert report.event == "delivered"
    assert report.occurred_at == at
    assert (report.error_code, report.error_message, report.provider_event_id) == ("", "", "")
    assert report.raw["status"] == "delivered"
    assert_no_secret(fake, None, report.raw)


def test_lookup_of_an_undelivered_message_keeps_its_error(provider, fake):
    sid = provider.send(make_outgoing()).provider_message_id
    fake.set_status(sid, "undelivered", error_code=30003, error_message="Unreachable handset")

    report = provider.lookup(sid, make_outgoing())

    assert report.status == Status.UNDELIVERED
    assert report.error_code == "30003"
    assert report.error_message == "Unreachable handset"
    assert report.raw["error_code"] == 30003


def test_lookup_of_an_unknown_sid_is_not_found(provider, fake):
    with pytest.raises(NotFound):
        provider.lookup("SM" + "f" * 32, make_outgoing())


@pytest.mark.parametrize("fault", [twilio_error(500, 20500), Fault(drop=CLOSE)])
def test_lookup_that_fails_cannot_tell(provider, fake, fault):
    sid = provider.send(make_outgoing()).provider_message_id
    fake.fetch_fault = fault
    assert provider.lookup(sid, make_outgoing()) is None


# --- lookup without a SID (the answer to create was lost) -------------------------------


def test_search_finds_nothing_at_all_so_it_was_never_received(provider, fake):
    with pytest.raises(NotFound):
        provider.lookup("", make_outgoing())
    assert fake.calls == []


def test_search_ignores_older_messages_and_other_recipients(provider, fake):
    long_ago = datetime.now(UTC) - timedelta(days=3)
    fake.add_message(TO, "Your code is 1234", from_=FROM, date_created=long_ago)
    fake.add_message("+14155550199", "Your code is 1234", from_=FROM)
    with pytest.raises(NotFound):
        provider.lookup("", make_outgoing())


def test_search_finds_a_message_that_is_still_queued(provider, fake):
    # Queued at Twilio: no date_sent yet, so a DateSent filter would not list it.
    stored = fake.add_message(TO, "Your code is 1234", from_=FROM)
    assert stored["date_sent"] is None
    report = provider.lookup("", make_outgoing())
    assert report.provider_message_id == stored["sid"]
    assert report.status == Status.SENT


def test_search_with_a_messaging_service_matches_on_the_service(twilio_settings, fake):
    twilio_settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "2" * 32
    provider = TwilioProvider()
    fake.add_message(TO, "Your code is 1234", from_=FROM)  # ours, but not via the service
    fake.script[TO] = Fault(drop=RESET, record=True)
    with pytest.raises(AmbiguousError):
        provider.send(make_outgoing())
    report = provider.lookup("", make_outgoing())
    assert report is not None
    assert fake.messages[report.provider_message_id]["messaging_service_sid"] == "MG" + "2" * 32


def test_search_cannot_tell_when_another_text_went_to_the_number(provider, fake):
    # Twilio may have altered our text (trial prefix, smart encoding): not proof of absence.
    fake.add_message(TO, "Sent from your Twilio trial account - Your code is 1234", from_=FROM)
    assert provider.lookup("", make_outgoing()) is None


def test_search_cannot_tell_between_two_identical_messages(provider, fake):
    fake.add_message(TO, "Your code is 1234", from_=FROM)
    fake.add_message(TO, "Your code is 1234", from_=FROM)
    assert provider.lookup("", make_outgoing()) is None


def test_search_cannot_tell_when_it_could_not_see_every_message(provider, fake):
    long_ago = datetime.now(UTC) - timedelta(days=30)
    for n in range(1001):  # one more than Twilio's largest page
        fake.add_message(TO, f"Old message {n}", from_=FROM, date_created=long_ago)
    assert provider.lookup("", make_outgoing()) is None


@pytest.mark.parametrize("fault", [twilio_error(500, 20500), twilio_error(429, 20429)])
def test_search_that_fails_cannot_tell(provider, fake, fault):
    fake.list_fault = fault
    assert provider.lookup("", make_outgoing()) is None


def test_the_creation_time_bounds_the_search(provider, fake):
    three_hours_ago = datetime.now(UTC) - timedelta(hours=3)
    stored = fake.add_message(TO, "Your code is 1234", from_=FROM, date_created=three_hours_ago)

    # Without the message's creation time, the last 26 hours are searched.
    report = provider.lookup("", make_outgoing(metadata={"attempt": 1}))
    assert report.provider_message_id == stored["sid"]
    # With it, an earlier message with the same text is another message.
    with pytest.raises(NotFound):
        provider.lookup("", make_outgoing())


# --- the HTTP client and what requests raises -------------------------------------------


def test_only_twilio_hosts_are_routed_to_the_base_url():
    client = RoutedHttpClient(base_url="http://127.0.0.1:9999/")
    assert (
        client.route("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1")
        == "http://127.0.0.1:9999/2010-04-01/Accounts/AC1/Messages.json?To=%2B1"
    )
    assert client.route("https://example.com/x") == "https://example.com/x"
    assert RoutedHttpClient().route("https://api.twilio.com/x") == "https://api.twilio.com/x"


@pytest.mark.parametrize(
    ("drop", "raised", "cause"),
    [
        (CLOSE, requests.ConnectionError, "RemoteDisconnected"),
        (RESET, requests.ConnectionError, "ConnectionResetError"),
        (HANG, requests.ReadTimeout, "Read timed out"),
        (CUT_BODY, requests.exceptions.ChunkedEncodingError, "IncompleteRead"),
    ],
)
def test_what_requests_raises_for_each_fault(fake, drop, raised, cause):
    """Pins the observations the provider's classification rests on (see its docstring)."""
    fake.script[TO] = Fault(drop=drop)
    client = RoutedHttpClient(base_url=fake.base_url, timeout=(2.0, 0.5))
    with pytest.raises(raised) as caught:
        client.request(
            "POST",
            f"https://api.twilio.com/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
            data={"To": TO, "Body": "x", "From": FROM},
            auth=(fake.account_sid, fake.auth_token),
        )
    assert cause in str(caught.value)
    if raised is requests.ConnectionError:
        assert type(caught.value) is requests.ConnectionError
        assert isinstance(caught.value.args[0], urllib3.exceptions.ProtocolError)


def test_a_refused_connection_is_a_new_connection_error():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    client = RoutedHttpClient(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(requests.ConnectionError) as caught:
        client.request("GET", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json")
    assert isinstance(caught.value.args[0], urllib3.exceptions.MaxRetryError)
    assert isinstance(caught.value.args[0].reason, urllib3.exceptions.NewConnectionError)
