"""The demo's own task: a few messages every few seconds (beat, when DEMO_TRAFFIC is on)."""

from __future__ import annotations

from celery import shared_task

from msglog.devtools.demo import send_demo_traffic as send_some
from msglog.workers.base import Task


@shared_task(base=Task, name="msglog.tasks.send_demo_traffic")
def send_demo_traffic() -> int:
    return send_some()
