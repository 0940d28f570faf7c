"""Twilio's webhooks: /webhooks/twilio/status/ and /webhooks/twilio/inbound/."""

from django.urls import path

from msglog.providers.twilio import webhooks

urlpatterns = [
    path("status/", webhooks.status_callback, name="twilio-status"),
    path("inbound/", webhooks.inbound_sms, name="twilio-inbound"),
]
