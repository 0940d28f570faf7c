"""Twilio's status callbacks through the WSGI application gunicorn serves, which hands
them to their view without Django's middleware: the same answers, the same store."""

from __future__ import annotations

import io
import sys
from urllib.parse import urlencode

import pytest
from django.db import connection, transaction
from django.db.backends.signals import connection_created
from django_scopes import scope

from msglog.config.wsgi import application
from msglog.models import InboundReport
from msglog.providers.twilio import lean_path
from msglog.providers.twilio.webhooks import status_report
from msglog.services import inbound_reports
from tests.factories import MessageFactory
from tests.msglog.providers.twilio.twilio_posts import signature, status_params

# The providers sign with these secrets, over the canonical URL.
pytestmark = pytest.mark.usefixtures("webhook_settings")

STATUS = "/webhooks/twilio/status/"
SID = "SM" + "d" * 32


def call(
    path: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    content_type: str = "application/x-www-form-urlencoded",
    **headers: str,
) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request to the WSGI application."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    answer: list = []
    chunks = application(
        environ, lambda status, headers, exc_info=None: answer.extend([status, headers])
    )
    content = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return int(answer[0].split()[0]), dict(answer[1]), content


def signed(params: dict) -> tuple[bytes, str]:
    return urlencode(params).encode(), signature(STATUS, params)


@pytest.fixture
def sms(acme):
    return MessageFactory(
        company=acme, channel="sms", to_address="+14155550100", provider="twilio",
        provider_message_id=SID, status="sent",
    )  # fmt: skip


@pytest.mark.django_db
def test_a_signed_callback_is_stored_once_and_applied(sms):
    body, sig = signed(status_params(SID, "delivered", RawDlrDoneDate="2611231405"))
    answers = [call(STATUS, body, x_twilio_signature=sig) for _ in range(2)]  # and a retry
    assert [status for status, _, _ in answers] == [204, 204]
    assert answers[0][1]["Content-Length"] == "0"
    assert InboundReport.objects.get().state == "pending"

    inbound_reports.apply_all()
    with scope(company=sms.company_id):
        sms.refresh_from_db()
    assert sms.status == "delivered"


@pytest.mark.django_db
def test_it_refuses_what_the_view_refuses_and_stores_nothing(sms):
    body = urlencode(status_params(SID, "delivered")).encode()
    forged = call(STATUS, body, x_twilio_signature="bm90IGEgc2lnbmF0dXJl")
    unsigned = call(STATUS, body)
    huge_body, huge_sig = signed(status_params(SID, "delivered", Body="x" * 40_000))
    huge = call(STATUS, huge_body, x_twilio_signature=huge_sig)
    json_body = call(STATUS, b'{"MessageSid": "x"}', content_type="application/json")
    no_sid_body, no_sid_sig = signed({"MessageStatus": "delivered"})
    no_sid = call(STATUS, no_sid_body, x_twilio_signature=no_sid_sig)
    fields = {f"f{i}": "1" for i in range(1001)}  # over DATA_UPLOAD_MAX_NUMBER_FIELDS
    many_body, many_sig = signed(fields)
    too_many = call(STATUS, many_body, x_twilio_signature=many_sig)

    statuses = [a[0] for a in (forged, unsigned, huge, json_body, no_sid, too_many)]
    assert statuses == [403, 403, 413, 415, 400, 400]
    assert InboundReport.objects.count() == 0


@pytest.mark.django_db
def test_other_requests_go_through_django(sms):
    assert call(STATUS, method="GET")[0] == 405  # the view's require_POST, via Django
    status, headers, _ = call("/login/", method="GET")
    assert status == 200
    assert headers["X-Frame-Options"] == "DENY"  # Django's middleware ran


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_database_dropped_is_replaced_and_the_report_stored(acme):
    body, sig = signed(status_params(SID, "sent"))
    assert call(STATUS, body, x_twilio_signature=sig)[0] == 204
    connection.connection.close()  # as a database restart leaves a kept connection

    body, sig = signed(status_params(SID, "delivered"))
    assert call(STATUS, body, x_twilio_signature=sig)[0] == 204
    assert sorted(InboundReport.objects.values_list("event", flat=True)) == ["delivered", "sent"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_view_answers_500_and_its_connection_is_closed(acme, monkeypatch):
    def half_done(request):  # leaves a transaction open, as a bug could
        transaction.set_autocommit(False)
        inbound_reports.store([status_report(request.POST)])
        raise RuntimeError("a bug")

    monkeypatch.setattr(lean_path, "status_callback", half_done)
    body, sig = signed(status_params(SID, "sent"))
    assert call(STATUS, body, x_twilio_signature=sig)[0] == 500
    assert connection.connection is None  # closed: its uncommitted INSERT rolled back
    assert InboundReport.objects.count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL statement timeout")
@pytest.mark.django_db(transaction=True)
def test_a_statement_timeout_is_not_retried(acme, monkeypatch):
    """An overloaded database is not asked twice: only a lost connection is retried."""
    opened: list[object] = []

    def count(connection, **kwargs):
        opened.append(connection)

    table = InboundReport._meta.db_table
    locker = connection.get_new_connection(connection.get_connection_params())
    try:
        with monkeypatch.context() as patched:
            # Every new connection times out too, so a retry would fail the same way.
            options = connection.settings_dict["OPTIONS"]
            patched.setitem(options, "options", "-c statement_timeout=200")
            connection.close()
            connection.ensure_connection()
            locker.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")  # the INSERT waits
            connection_created.connect(count)
            try:
                body, sig = signed(status_params(SID, "sent"))
                assert call(STATUS, body, x_twilio_signature=sig)[0] == 500
                kept = connection.connection is not None  # still usable: no reconnect
            finally:
                connection_created.disconnect(count)
    finally:
        locker.close()
        connection.close()  # its next one has no statement timeout
    assert opened == []  # the view ran once, on the connection it had
    assert kept
    assert InboundReport.objects.count() == 0
