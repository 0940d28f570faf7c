import pytest

from tests.msglog.webhooks.twilio_posts import AUTH_TOKEN


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.PUBLIC_BASE_URL = "https://msglog.example.com"
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": ["old-user:old-secret", "hook-user:hook-secret"],
        "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-signing-key-123",
    }
    return settings
