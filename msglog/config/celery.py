"""The Celery application. Its tasks are msglog/workers/tasks.py (and, in a checkout,
the demo's in msglog/devtools/tasks.py); its settings are CELERY_* in settings.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msglog.config.settings")

app = Celery("msglog")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["msglog.workers"])
app.autodiscover_tasks()  # each installed app's tasks module (msglog.devtools.tasks)
