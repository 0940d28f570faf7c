"""The Celery application. Tasks live in msglog/tasks.py as thin wrappers."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msglog.settings")

app = Celery("msglog")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
