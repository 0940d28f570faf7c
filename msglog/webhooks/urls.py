"""Everything under /webhooks/ (SPEC §8)."""

from django.urls import include, path

from . import anymail, tracking, twilio

urlpatterns = [
    path("twilio/status/", twilio.status_callback, name="twilio-status"),
    path("twilio/inbound/", twilio.inbound_sms, name="twilio-inbound"),
    path("track/open/<str:token>/", tracking.open_pixel, name="track-open"),
    path("track/click/<str:token>/", tracking.click_redirect, name="track-click"),
    # anymail's tracking webhooks: /webhooks/anymail/<esp>/tracking/
    path("anymail/", include((anymail.tracking_urlpatterns(), "anymail"))),
]
