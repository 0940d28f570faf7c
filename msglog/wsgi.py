import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msglog.settings")
application = get_wsgi_application()

# Twilio's status callbacks skip Django's middleware (msglog/webhooks/dispatch.py).
from msglog.webhooks.dispatch import LeanWebhookDispatch  # noqa: E402 — needs django.setup()

application = LeanWebhookDispatch(application)
