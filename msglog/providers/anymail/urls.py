"""anymail's tracking webhooks, /webhooks/anymail/<esp>/tracking/, each view guarded."""

from anymail.urls import urlpatterns as anymail_urlpatterns
from django.urls import URLPattern

from msglog.providers.anymail.webhooks import guarded

urlpatterns = [
    URLPattern(p.pattern, guarded(p.callback), p.default_args, p.name)
    for p in anymail_urlpatterns
    if isinstance(p, URLPattern) and (p.name or "").endswith("tracking_webhook")
]
