"""The WSGI application gunicorn serves."""

import os
from wsgiref.types import WSGIApplication

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msglog.config.settings")
application: WSGIApplication = get_wsgi_application()

# Twilio's status callbacks skip Django's middleware (msglog/providers/twilio/lean_path.py).
from msglog.providers.twilio.lean_path import LeanWebhookDispatch  # noqa: E402 — needs django.setup()

application = LeanWebhookDispatch(application)
