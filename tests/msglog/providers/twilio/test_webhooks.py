"""Twilio tells us what became of an SMS, and recipients text STOP and START."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from django_scopes import scope, scopes_disabled

from msglog.models import InboundReport, StatusEvent, Suppression
from msglog.services import inbound_reports
from tests.factories import ContactFactory, MessageFactory
from tests.msglog.providers.twilio.twilio_posts import (
    inbound_params,
    post_signed,
    signature,
    status_params,
)

# The providers sign with these secrets, over the canonical URL.
pytestmark = pytest.mark.usefixtures("webhook_settings")

STATUS = "/webhooks/twilio/status/"
INBOUND = "/webhooks/twilio/inbound/"
SID = "SM" + "a" * 32


@pytest.fixture
def sms(acme):
    return MessageFactory(
        company=acme,
        channel="sms",
        to_address="+14155550100",
        provider="twilio",
        provider_message_id=SID,
        status="sent",
    )


def stored() -> int:
    return InboundReport.objects.count()


def refreshed(message):
    with scope(company=message.company_id):
        message.refresh_from_db()
    return message


@pytest.mark.django_db
def test_a_delivery_receipt_delivers_the_message_at_the_carriers_time(client, sms):
    params = status_params(SID, "delivered", RawDlrDoneDate="2611231405")
    response = post_signed(client, STATUS, params)
    assert response.status_code == 204
    assert stored() == 1

    inbound_reports.apply_all()
    message = refreshed(sms)
    assert message.status == "delivered"
    assert message.delivered_at == datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    with scope(company=sms.company_id):
        event = StatusEvent.objects.get(message=sms, source="twilio")
    assert event.raw_payload["MessageStatus"] == "delivered"
    assert "AccountSid" not in event.raw_payload


@pytest.mark.django_db
def test_an_undelivered_report_keeps_twilios_error_code(client, sms):
    post_signed(client, STATUS, status_params(SID, "undelivered", ErrorCode="30003"))
    inbound_reports.apply_all()
    message = refreshed(sms)
    assert (message.status, message.error_code) == ("undelivered", "30003")


@pytest.mark.django_db
def test_a_forged_signature_is_refused_and_nothing_is_stored(client, sms):
    params = status_params(SID, "delivered")
    forged = client.post(
        STATUS,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE="bm90IGEgcmVhbCBzaWduYXR1cmU=",
    )
    unsigned = client.post(
        STATUS, urlencode(params), content_type="application/x-www-form-urlencoded"
    )
    tampered = post_signed(client, STATUS, params, sign_as=status_params(SID, "undelivered"))
    wrong_token = client.post(
        STATUS,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature(STATUS, params, token="someone-elses-token"),
    )
    assert [r.status_code for r in (forged, unsigned, tampered, wrong_token)] == [403] * 4
    assert stored() == 0
    assert refreshed(sms).status == "sent"


@pytest.mark.django_db
def test_the_signature_is_checked_against_the_public_url_not_the_forwarded_host(client, sms):
    params = status_params(SID, "delivered")
    # An attacker signs for their own host and claims it through X-Forwarded-Host.
    spoofed = client.post(
        STATUS,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature(STATUS, params, base="https://evil.example"),
        HTTP_X_FORWARDED_HOST="evil.example",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert spoofed.status_code == 403
    # Twilio signed our public https URL; the proxy in front speaks plain HTTP to us.
    genuine = post_signed(client, STATUS, params, HTTP_X_FORWARDED_HOST="10.0.0.7:8000")
    assert genuine.status_code == 204


@pytest.mark.django_db
def test_twilios_retries_and_replays_are_stored_once_and_change_nothing(client, sms):
    params = status_params(SID, "delivered", RawDlrDoneDate="2611231405")
    for _ in range(3):
        assert post_signed(client, STATUS, params).status_code == 204
    assert stored() == 1
    inbound_reports.apply_all()
    before = refreshed(sms).updated_at

    assert post_signed(client, STATUS, params).status_code == 204  # replayed later
    inbound_reports.apply_all()
    assert stored() == 1
    assert refreshed(sms).updated_at == before
    with scope(company=sms.company_id):
        assert StatusEvent.objects.filter(message=sms, source="twilio").count() == 1


@pytest.mark.django_db
def test_bad_input_answers_4xx_and_stores_nothing(client, sms, settings):
    huge = status_params(SID, "delivered", Body="x" * 40_000)
    assert post_signed(client, STATUS, huge).status_code == 413
    json_body = client.post(
        STATUS, {"MessageSid": SID}, content_type="application/json",
        HTTP_X_TWILIO_SIGNATURE=signature(STATUS, {}),
    )  # fmt: skip
    assert json_body.status_code == 415
    no_sid = {"MessageStatus": "delivered", "To": "+14155550100"}
    assert post_signed(client, STATUS, no_sid).status_code == 400
    assert client.get(STATUS).status_code == 405
    assert stored() == 0


@pytest.mark.django_db
def test_an_unknown_status_is_kept_with_its_reason_and_moves_nothing(client, sms):
    assert post_signed(client, STATUS, status_params(SID, "exploded")).status_code == 204
    report = InboundReport.objects.get()
    assert report.state == "ignored"
    assert "exploded" in report.reason
    inbound_reports.apply_all()
    assert refreshed(sms).status == "sent"


@pytest.mark.django_db
def test_a_callback_that_outran_our_commit_is_applied_when_the_message_appears(client, acme):
    early_sid = "SM" + "b" * 32
    post_signed(client, STATUS, status_params(early_sid, "delivered"))
    inbound_reports.apply_all()
    orphan = InboundReport.objects.get()
    assert orphan.state == "orphan" and orphan.reason

    message = MessageFactory(
        company=acme, channel="sms", provider="twilio", status="sent",
        provider_message_id=early_sid,
    )  # fmt: skip
    assert inbound_reports.apply_all()["adopted"] == 1
    assert refreshed(message).status == "delivered"
    orphan.refresh_from_db()
    assert (orphan.state, orphan.message_id, orphan.company_id) == ("applied", message.pk, acme.pk)


@pytest.mark.django_db
def test_a_failed_send_with_21610_suppresses_the_number_and_flags_the_contact(client, acme):
    contact = ContactFactory(company=acme, phone="+14155550123")
    message = MessageFactory(
        company=acme, channel="sms", to_address="+14155550123", contact=contact,
        provider="twilio", provider_message_id=SID, status="sent",
    )  # fmt: skip
    post_signed(client, STATUS, status_params(SID, "failed", to="+14155550123", ErrorCode="21610"))
    inbound_reports.apply_all()
    assert refreshed(message).status == "failed"
    with scopes_disabled():
        entry = Suppression.objects.get(company=acme, address="+14155550123")
        contact.refresh_from_db()
    assert entry.reason == "sms_stop"
    assert contact.sms_opted_out


@pytest.mark.django_db
def test_stop_opts_the_recipient_out_and_start_brings_them_back(client, acme, rival):
    contact = ContactFactory(company=acme, phone="+14155550177")
    MessageFactory(company=acme, channel="sms", to_address="+14155550177", provider="twilio")
    stop = inbound_params("SM" + "c" * 32, "+14155550177", "Stop")
    response = post_signed(client, INBOUND, stop)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    inbound_reports.apply_all()
    with scopes_disabled():
        assert Suppression.objects.filter(
            company=acme, channel="sms", address="+14155550177", reason="sms_stop"
        ).exists()
        assert not Suppression.objects.filter(company=rival).exists()
        contact.refresh_from_db()
    assert contact.sms_opted_out

    post_signed(client, INBOUND, inbound_params("SM" + "d" * 32, "+14155550177", "START"))
    inbound_reports.apply_all()
    with scopes_disabled():
        assert not Suppression.objects.filter(company=acme, address="+14155550177").exists()
        contact.refresh_from_db()
    assert not contact.sms_opted_out

    # The old signed STOP, replayed, is recognized as stored and changes nothing.
    post_signed(client, INBOUND, stop)
    inbound_reports.apply_all()
    with scopes_disabled():
        assert not Suppression.objects.filter(company=acme, address="+14155550177").exists()


@pytest.mark.django_db
def test_an_ordinary_reply_is_kept_but_changes_nothing(client, acme):
    MessageFactory(company=acme, channel="sms", to_address="+14155550177", provider="twilio")
    post_signed(client, INBOUND, inbound_params("SM" + "e" * 32, "+14155550177", "See you then"))
    inbound_reports.apply_all()
    assert InboundReport.objects.get().state == "ignored"
    with scopes_disabled():
        assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_an_unsigned_stop_is_refused(client, acme):
    params = inbound_params("SM" + "f" * 32, "+14155550177", "STOP")
    response = client.post(
        INBOUND, urlencode(params), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 403
    assert stored() == 0
