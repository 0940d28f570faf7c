"""Celery tasks: thin entry points that take ids and call one service each.

Each task is named ``msglog.tasks.<name>``: services publish them by that name
(msglog/services/queue.py), CELERY_TASK_ROUTES sends them to their queue by it, and
work already queued keeps finding its task. Sending goes to the `sms` and `email`
queues, status work to `events`, exports to `exports`, periodic work to `maintenance`.
Every task is safe to run twice.
"""

from __future__ import annotations

from celery import shared_task
from django_scopes import scopes_disabled

from companies.models import Company
from msglog.models import Message
from msglog.rules.kinds import Channel
from msglog.rules.provider_interface import ProviderReport
from msglog.services import batches, delivery, events, inbound_reports, retention
from msglog.services.exports import jobs
from msglog.workers.base import CompanyTask, Task

# --- Sending ---------------------------------------------------------------------------


@shared_task(base=CompanyTask, name="msglog.tasks.send_sms_chunk")
def send_sms_chunk(company_id: int, message_ids: list[int]) -> list[str]:
    return delivery.deliver_paced(company_id, Channel.SMS, message_ids)


@shared_task(base=CompanyTask, name="msglog.tasks.send_email_chunk")
def send_email_chunk(company_id: int, message_ids: list[int]) -> list[str]:
    return delivery.deliver_paced(company_id, Channel.EMAIL, message_ids)


@shared_task(base=CompanyTask, name="msglog.tasks.send_sms_message")
def send_sms_message(company_id: int, message_id: int, attempt: int | None = None) -> str:
    return delivery.deliver(message_id, attempt)


@shared_task(base=CompanyTask, name="msglog.tasks.send_email_message")
def send_email_message(company_id: int, message_id: int, attempt: int | None = None) -> str:
    return delivery.deliver(message_id, attempt)


@shared_task(base=Task, name="msglog.tasks.dispatch_due_messages")
def dispatch_due_messages() -> int:
    """Queue scheduled messages whose time has come (beat, every few seconds)."""
    with scopes_disabled():
        return delivery.dispatch_due()


@shared_task(base=Task, name="msglog.tasks.requeue_stale_messages")
def requeue_stale_messages() -> int:
    with scopes_disabled():
        return delivery.requeue_stale()


@shared_task(base=Task, name="msglog.tasks.reconcile_stuck_messages")
def reconcile_stuck_messages() -> dict[str, int]:
    """Ask providers about messages left in `sending` past the timeout."""
    return delivery.reconcile_stuck()


@shared_task(base=Task, name="msglog.tasks.poll_sent_messages")
def poll_sent_messages() -> dict[str, int]:
    """Ask providers about sent messages that never got a final report."""
    with scopes_disabled():
        return delivery.poll_sent()


@shared_task(base=Task, name="msglog.tasks.reconcile_yesterday")
def reconcile_yesterday() -> dict[str, int]:
    """The daily reconciliation with the providers (beat, once a day)."""
    with scopes_disabled():
        return delivery.reconcile_day()


# --- Status reports ----------------------------------------------------------------------


@shared_task(base=CompanyTask, name="msglog.tasks.apply_simulated_reports")
def apply_simulated_reports(company_id: int, items: list) -> int:
    """Apply the simulator's reports, a chunk's at once (as a webhook batch would be).
    Each item is [the message's public id (or its id), the report as JSON]."""
    reports = [(key, ProviderReport.from_json(report)) for key, report in items]
    return events.record_provider_reports(company_id, reports, source="simulator")


@shared_task(base=CompanyTask, name="msglog.tasks.refresh_message_status")
def refresh_message_status(company_id: int, message_id: int) -> str:
    """Recompute one message's status from its events."""
    message = Message.objects.filter(company_id=company_id, pk=message_id).first()
    if message is None:
        return "missing"
    return events.refresh_message(message).status


@shared_task(base=Task, name="msglog.tasks.apply_provider_reports")
def apply_provider_reports(linger: float | None = None) -> dict[str, int]:
    """Apply every pending provider report, in batches (beat runs it too, as a safety net,
    without lingering)."""
    return inbound_reports.apply_all(linger=inbound_reports.LINGER if linger is None else linger)


@shared_task(base=Task, name="msglog.tasks.prune_provider_reports")
def prune_provider_reports() -> int:
    with scopes_disabled():
        return inbound_reports.prune()


# --- Batches --------------------------------------------------------------------------


@shared_task(base=CompanyTask, name="msglog.tasks.record_batch")
def record_batch(company_id: int, upload_id: int) -> int:
    """Record a confirmed batch's recipients as messages, a chunk at a time."""
    return batches.record_rows(upload_id)


@shared_task(base=CompanyTask, name="msglog.tasks.cancel_batch")
def cancel_batch(company_id: int, batch_id: int) -> int:
    """Cancel the unsent messages of a stopped batch (a big one, after its Stop)."""
    return batches.cancel_unsent_of(batch_id)


# --- Retention -------------------------------------------------------------------------


@shared_task(base=Task, name="msglog.tasks.purge_expired_messages")
def purge_expired_messages() -> int:
    """Nightly, from beat: one purge task per company, so workers share the work."""
    company_ids = list(Company.objects.values_list("pk", flat=True))
    for company_id in company_ids:
        purge_company_messages.delay(company_id)
    return len(company_ids)


@shared_task(base=CompanyTask, name="msglog.tasks.purge_company_messages")
def purge_company_messages(company_id: int) -> dict[str, int]:
    """Delete one company's messages, events and files older than its retention period."""
    company = Company.objects.filter(pk=company_id).first()
    return dict(retention.purge_company(company)) if company is not None else {}


# --- Exports ---------------------------------------------------------------------------


@shared_task(base=CompanyTask, name="msglog.tasks.run_export")
def run_export(company_id: int, export_id: int) -> str:
    """Write a background export's file."""
    return jobs.run_job(export_id)


@shared_task(base=Task, name="msglog.tasks.delete_expired_exports")
def delete_expired_exports() -> int:
    with scopes_disabled():
        return jobs.delete_expired()
