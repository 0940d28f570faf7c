"""ESP tracking webhook posts in the shapes each ESP documents, authenticated as each one
does: anymail's WEBHOOK_SECRET basic auth, plus Mailgun's HMAC signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

from tests.clock import ago, iso_z

MAILGUN_KEY = "mailgun-signing-key-123"


def basic_auth(credentials: str = "hook-user:hook-secret") -> dict:
    token = base64.b64encode(credentials.encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def post_json(client, path: str, payload, credentials="hook-user:hook-secret", **headers):
    auth = basic_auth(credentials) if credentials else {}
    return client.post(
        path, json.dumps(payload), content_type="application/json", **auth, **headers
    )


def sendgrid_event(event: str, message_id: str, email: str, ts: int, **extra) -> dict:
    return {
        "email": email,
        "timestamp": ts,
        "smtp-id": f"<{message_id}@sendgrid.test>",
        "anymail_id": message_id,
        "event": event,
        "category": ["message-log"],
        "sg_event_id": f"sg-{event}-{message_id}-{ts}",
        "sg_message_id": f"{message_id}.filter0001.16648.5515E0B88.0",
        **extra,
    }


def mailgun_event(event: str, message_id: str, email: str, ts: float, key=MAILGUN_KEY, **data):
    token = uuid.uuid4().hex
    timestamp = str(int(ts))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature.hexdigest()},
        "event-data": {
            "event": event,
            "timestamp": ts,
            "id": f"mg-{event}-{int(ts)}",
            "recipient": email,
            "message": {"headers": {"message-id": message_id, "to": email}},
            "user-variables": data.pop("user_variables", {}),
            **data,
        },
    }


def postmark_bounce(kind: str, message_id: str, email: str, at: str, bounce_id: int) -> dict:
    return {
        "RecordType": "Bounce",
        "ID": bounce_id,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 4096,
        "Name": kind,
        "Tag": "message-log",
        "MessageID": message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "clinic@example.com",
        "BouncedAt": at,
        "DumpAvailable": True,
        "Inactive": kind == "HardBounce",
        "CanActivate": True,
        "Subject": "Your appointment",
        "Metadata": {},
    }


def postmark_complaint(message_id: str, email: str, at: str) -> dict:
    return {
        **postmark_bounce("SpamComplaint", message_id, email, at, 99),
        "RecordType": "SpamComplaint",
        "TypeCode": 512,
    }


def sns_notification(ses_event: dict, message_id: str | None = None) -> tuple[dict, dict]:
    """An SES event inside an SNS Notification, with the headers SNS sends."""
    sns_id = message_id or str(uuid.uuid4())
    body = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_event),
        "Timestamp": iso_z(ago(seconds=1)),
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+...",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    headers = {
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification",
        "HTTP_X_AMZ_SNS_MESSAGE_ID": sns_id,
        "HTTP_X_AMZ_SNS_TOPIC_ARN": body["TopicArn"],
    }
    return body, headers


def ses_bounce(message_id: str, email: str, bounce_type: str = "Permanent") -> dict:
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": email,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": iso_z(ago(seconds=2)),
            "feedbackId": f"feedback-{message_id}-{bounce_type}",
        },
        "mail": {
            "timestamp": iso_z(ago(seconds=4)),
            "source": "clinic@example.com",
            "messageId": message_id,
            "destination": [email],
        },
    }


def ses_delivery(message_id: str, email: str) -> dict:
    return {
        "eventType": "Delivery",
        "mail": {
            "timestamp": iso_z(ago(seconds=4)),
            "source": "clinic@example.com",
            "messageId": message_id,
            "destination": [email],
        },
        "delivery": {
            "timestamp": iso_z(ago(seconds=2)),
            "processingTimeMillis": 2000,
            "recipients": [email],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        },
    }
