"""ESPs tell us what became of an email, through anymail's tracking webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_scopes import scope, scopes_disabled

from msglog.models import InboundReport, StatusEvent, Suppression
from msglog.services import inbound_reports
from tests.clock import ago, iso_z
from tests.factories import ContactFactory, MessageFactory
from tests.msglog.providers.anymail.esp_posts import (
    mailgun_event,
    post_json,
    postmark_bounce,
    postmark_complaint,
    sendgrid_event,
    ses_bounce,
    ses_delivery,
    sns_notification,
)

# The providers sign with these secrets, over the canonical URL.
pytestmark = pytest.mark.usefixtures("webhook_settings")

SENDGRID = "/webhooks/anymail/sendgrid/tracking/"
MAILGUN = "/webhooks/anymail/mailgun/tracking/"
POSTMARK = "/webhooks/anymail/postmark/tracking/"
SES = "/webhooks/anymail/amazon_ses/tracking/"
T0 = int(ago(hours=1).timestamp())  # ESPs send Unix seconds


def email(acme, address="ann@example.org", provider_id="esp-1", **fields):
    return MessageFactory(
        company=acme, channel="email", to_address=address, provider="anymail",
        provider_message_id=provider_id, status="sent", **fields,
    )  # fmt: skip


def refreshed(message):
    with scope(company=message.company_id):
        message.refresh_from_db()
    return message


@pytest.mark.django_db
def test_sendgrid_delivery_open_and_click_arrive_in_one_post(client, acme):
    message = email(acme)
    batch = [
        sendgrid_event("click", "esp-1", "ann@example.org", T0 + 60, url="https://acme.test/a"),
        sendgrid_event("open", "esp-1", "ann@example.org", T0 + 30),
        sendgrid_event("delivered", "esp-1", "ann@example.org", T0, response="250 OK"),
    ]
    assert post_json(client, SENDGRID, batch).status_code == 200
    assert InboundReport.objects.count() == 3

    inbound_reports.apply_all()
    message = refreshed(message)
    assert message.status == "clicked"
    assert message.delivered_at == datetime.fromtimestamp(T0, UTC)
    assert message.opened_at == datetime.fromtimestamp(T0 + 30, UTC)
    assert message.clicked_at == datetime.fromtimestamp(T0 + 60, UTC)
    with scope(company=acme.pk):
        raw = StatusEvent.objects.get(message=message, status="clicked").raw_payload
    assert raw["esp"] == "SendGrid"
    assert raw["esp_event"]["url"] == "https://acme.test/a"


@pytest.mark.django_db
def test_a_hard_bounce_suppresses_the_address_and_flags_the_contact(client, acme):
    contact = ContactFactory(company=acme, email="ann@example.org")
    message = email(acme, contact=contact)
    bounce = sendgrid_event(
        "bounce", "esp-1", "ann@example.org", T0, type="bounce", status="5.1.1",
        reason="550 5.1.1 The email account that you tried to reach does not exist",
    )  # fmt: skip
    post_json(client, SENDGRID, [bounce])
    inbound_reports.apply_all()
    assert refreshed(message).status == "bounced"
    with scopes_disabled():
        assert Suppression.objects.get(company=acme, address="ann@example.org").reason == (
            "hard_bounce"
        )
        contact.refresh_from_db()
    assert contact.email_bounced


@pytest.mark.django_db
def test_either_webhook_secret_works_during_a_rotation_and_a_wrong_one_stores_nothing(client, acme):
    email(acme)
    delivered = [sendgrid_event("delivered", "esp-1", "ann@example.org", T0)]
    assert post_json(client, SENDGRID, delivered, "old-user:old-secret").status_code == 200
    assert InboundReport.objects.count() == 1

    opened = [sendgrid_event("open", "esp-1", "ann@example.org", T0 + 5)]
    assert post_json(client, SENDGRID, opened, "hook-user:wrong").status_code == 400
    assert post_json(client, SENDGRID, opened, credentials=None).status_code == 400
    assert InboundReport.objects.count() == 1


@pytest.mark.django_db
def test_mailgun_events_must_carry_mailguns_signature(client, acme):
    # Mailgun answers a send with its id in angle brackets, and anymail keeps them.
    message = email(acme, provider_id="<20261123.1@mg.example.com>")
    good = mailgun_event("delivered", "20261123.1@mg.example.com", "ann@example.org", T0)
    forged = mailgun_event(
        "opened", "20261123.1@mg.example.com", "ann@example.org", T0 + 9, key="guessed"
    )
    assert post_json(client, MAILGUN, forged).status_code == 400
    assert InboundReport.objects.count() == 0
    assert post_json(client, MAILGUN, good).status_code == 200
    assert post_json(client, MAILGUN, good).status_code == 200  # Mailgun retries
    assert InboundReport.objects.count() == 1
    inbound_reports.apply_all()
    assert refreshed(message).status == "delivered"


@pytest.mark.django_db
def test_an_event_is_matched_by_our_id_when_the_esps_id_never_reached_us(client, acme):
    message = email(acme, provider_id="")  # the send's answer was lost
    event = mailgun_event(
        "delivered", "lost@mg.example.com", "ann@example.org", T0,
        user_variables={"message_log_id": "placeholder"},
    )  # fmt: skip
    event["event-data"]["user-variables"]["message_log_id"] = message.public_id
    post_json(client, MAILGUN, event)
    inbound_reports.apply_all()
    assert refreshed(message).status == "delivered"


@pytest.mark.django_db
def test_postmark_spam_complaint_suppresses_and_outranks_delivery(client, acme):
    contact = ContactFactory(company=acme, email="ann@example.org")
    message = email(acme, provider_id="883953f4-6105-42a2-a16a-77a8eac79483", contact=contact)
    complaint = postmark_complaint(
        message.provider_message_id, "ann@example.org", iso_z(ago(minutes=5))
    )
    assert post_json(client, POSTMARK, complaint).status_code == 200
    inbound_reports.apply_all()
    assert refreshed(message).status == "complained"
    with scopes_disabled():
        assert Suppression.objects.get(address="ann@example.org").reason == "complaint"
        contact.refresh_from_db()
    assert contact.email_bounced and contact.marketing_opt_out


@pytest.mark.django_db
def test_soft_bounces_never_bounce_a_message_but_repeated_ones_suppress_the_address(client, acme):
    messages = [email(acme, provider_id=f"pm-{i}") for i in range(3)]
    # Within the soft-bounce window (a week), counted back from today.
    for i, message in enumerate(messages[:2]):
        soft = postmark_bounce("SoftBounce", message.provider_message_id, "ann@example.org",
                               iso_z(ago(days=3 - i)), 100 + i)  # fmt: skip
        post_json(client, POSTMARK, soft)
    # The same message deferred again counts once.
    again = postmark_bounce("SoftBounce", "pm-1", "ann@example.org", iso_z(ago(days=1)), 200)
    post_json(client, POSTMARK, again)
    inbound_reports.apply_all()
    assert {refreshed(m).status for m in messages} == {"sent"}
    with scopes_disabled():
        assert not Suppression.objects.exists()

    third = postmark_bounce("SoftBounce", "pm-2", "ann@example.org", iso_z(ago(hours=1)), 300)
    post_json(client, POSTMARK, third)
    inbound_reports.apply_all()
    with scopes_disabled():
        assert Suppression.objects.get(address="ann@example.org").reason == ("repeated_soft_bounce")
        events = StatusEvent.objects.filter(message__in=messages, event="soft_bounce")
        assert events.count() == 4
    assert refreshed(messages[2]).status == "sent"


@pytest.mark.django_db
def test_soft_bounces_older_than_the_window_no_longer_count(client, acme):
    # A fixed "now", so the window's edge is exact whatever day the suite runs.
    now = datetime(2031, 3, 14, 12, 0, tzinfo=UTC)
    messages = [email(acme, provider_id=f"pm-{i}") for i in range(3)]
    days_before = [8, 6, 1]  # a week's window: the first is out of it
    with time_machine.travel(now, tick=False):
        for i, (message, days) in enumerate(zip(messages, days_before, strict=True)):
            at = iso_z(now - timedelta(days=days))
            soft = postmark_bounce("SoftBounce", message.provider_message_id, "ann@example.org",
                                   at, 400 + i)  # fmt: skip
            post_json(client, POSTMARK, soft)
        inbound_reports.apply_all()
    with scopes_disabled():
        assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_amazon_ses_over_sns_needs_the_webhook_secret(client, acme):
    message = email(acme, provider_id="0100019abc-ses-1")
    body, headers = sns_notification(ses_bounce("0100019abc-ses-1", "ann@example.org"))
    # SNS first posts without credentials and expects a 401 challenge.
    assert post_json(client, SES, body, credentials=None, **headers).status_code == 401
    assert post_json(client, SES, body, "hook-user:nope", **headers).status_code == 400
    assert InboundReport.objects.count() == 0

    assert post_json(client, SES, body, **headers).status_code == 200
    assert post_json(client, SES, body, **headers).status_code == 200  # SNS redelivers
    inbound_reports.apply_all()
    assert InboundReport.objects.count() == 1
    assert refreshed(message).status == "bounced"


@pytest.mark.django_db
def test_ses_transient_bounce_is_a_soft_bounce(client, acme):
    message = email(acme, provider_id="0100019abc-ses-2")
    body, headers = sns_notification(ses_bounce("0100019abc-ses-2", "ann@example.org", "Transient"))
    post_json(client, SES, body, **headers)
    delivered, headers2 = sns_notification(ses_delivery("0100019abc-ses-2", "ann@example.org"))
    post_json(client, SES, delivered, **headers2)
    inbound_reports.apply_all()
    message = refreshed(message)
    assert message.status == "delivered"
    with scope(company=acme.pk):
        assert StatusEvent.objects.filter(message=message, event="soft_bounce").exists()


@pytest.mark.django_db
def test_sns_headers_that_disagree_with_the_body_are_refused(client, acme):
    email(acme, provider_id="0100019abc-ses-3")
    body, headers = sns_notification(ses_delivery("0100019abc-ses-3", "ann@example.org"))
    headers["HTTP_X_AMZ_SNS_MESSAGE_ID"] = "someone-else"
    assert post_json(client, SES, body, **headers).status_code == 400
    assert InboundReport.objects.count() == 0


@pytest.mark.django_db
def test_malformed_huge_or_unknown_posts_never_answer_500(client, acme, settings):
    email(acme)
    broken = client.post(
        SENDGRID, "[{not json", content_type="application/json",
        HTTP_AUTHORIZATION="Basic aG9vay11c2VyOmhvb2stc2VjcmV0",
    )  # fmt: skip
    assert broken.status_code == 400
    not_a_list = post_json(client, SENDGRID, {"event": "delivered"})
    assert not_a_list.status_code == 400
    settings.WEBHOOK_MAX_BYTES = 2048
    huge = [sendgrid_event("delivered", "esp-1", "ann@example.org", T0, pad="x" * 4096)]
    assert post_json(client, SENDGRID, huge).status_code == 413
    assert InboundReport.objects.count() == 0

    odd = [sendgrid_event("group_resubscribe", "esp-1", "ann@example.org", T0)]
    assert post_json(client, SENDGRID, odd).status_code == 200
    report = InboundReport.objects.get()
    assert report.state == "ignored" and report.reason
    assert json.dumps(report.payload)
