"""The site's URLs: the log's pages, company administration, the providers' webhooks
(under /webhooks/, each provider's from its own folder) and the operators' admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("msglog.web.urls")),
    path("", include("companies.urls")),
    path("webhooks/twilio/", include("msglog.providers.twilio.urls")),
    # anymail's tracking webhooks: /webhooks/anymail/<esp>/tracking/
    path("webhooks/anymail/", include(("msglog.providers.anymail.urls", "anymail"))),
    path("admin/", admin.site.urls),
]
