"""Celery tasks: thin wrappers that take ids and run inside the company's scope."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from companies.tenancy import company_scope

from . import events
from .models import Message


def enqueue_on_commit(task, *args) -> None:
    """Publish a task only once the transaction that made its data has committed."""
    transaction.on_commit(lambda: task.delay(*args))


@shared_task(queue="events")
def refresh_message_status(company_id: int, message_id: int) -> str:
    """Recompute one message's status from its events."""
    with company_scope(company_id):
        message = Message.objects.filter(company_id=company_id, pk=message_id).first()
        if message is None:
            return "missing"
        return events.refresh_message(message).status
