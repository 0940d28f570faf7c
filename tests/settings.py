"""The production settings (DEBUG off), as the suite runs them: over plain HTTP on the
test client, with a fast password hasher."""

import os

os.environ.setdefault("SECURE_SSL_REDIRECT", "0")

from msglog.config.settings import *  # noqa: F403
from msglog.config.settings import STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Manifest storage needs collectstatic; the suite serves static files as they are.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
