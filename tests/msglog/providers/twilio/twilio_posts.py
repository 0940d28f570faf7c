"""Twilio's webhook posts as Twilio makes them: form-encoded, signed by the `twilio`
library's own RequestValidator over the URL it calls and every parameter."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"


def status_params(sid: str, status: str, to: str = "+14155550100", **extra: str) -> dict:
    """A status callback's parameters, as Twilio documents them."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": "+14155559999",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": to,
        **extra,
    }


def inbound_params(sid: str, sender: str, body: str, to: str = "+14155559999") -> dict:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": sender,
        "FromCountry": "US",
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": to,
    }


def signature(path: str, params: dict, token: str = AUTH_TOKEN, base: str | None = None) -> str:
    url = (base or settings.PUBLIC_BASE_URL) + path
    return RequestValidator(token).compute_signature(url, params)


def post_signed(client, path: str, params: dict, *, sign_as: dict | None = None, **headers):
    """POST as Twilio does; `sign_as` signs other parameters (a tampered body)."""
    return client.post(
        path,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature(path, sign_as or params),
        **headers,
    )
