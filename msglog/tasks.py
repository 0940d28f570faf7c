"""Celery tasks: thin wrappers that take ids and run inside the company's scope.

Sending tasks are routed by channel (queues `sms` and `email`), status work to `events`,
periodic work to `maintenance`. Every task is safe to run twice.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.db import transaction
from django_scopes import scopes_disabled

from companies.tenancy import company_scope

from . import batches, events, rate_limits, sending
from .kinds import Channel
from .models import Message
from .providers.base import Report


def enqueue_on_commit(task, *args, **options) -> None:
    """Publish a task only once the transaction that made its data has committed."""
    transaction.on_commit(lambda: task.apply_async(args=args, **options))


def enqueue_sends(company_id: int, channel: str, message_ids: list[int]) -> None:
    """Publish the chunk tasks of these messages once committed, over one connection."""
    task = send_sms_chunk if channel == Channel.SMS else send_email_chunk
    size = sending.task_chunk(len(message_ids))
    chunks = [message_ids[start : start + size] for start in range(0, len(message_ids), size)]

    def publish() -> None:
        with task.app.producer_or_acquire() as producer:
            for chunk in chunks:
                # A short argsrepr: Celery would otherwise repr every id into the header.
                argsrepr = f"({company_id}, [{chunk[0]}..{chunk[-1]}: {len(chunk)} ids])"
                task.apply_async(args=(company_id, chunk), producer=producer, argsrepr=argsrepr)

    transaction.on_commit(publish)


def enqueue_retry(
    company_id: int, channel: str, message_id: int, attempt: int, countdown: float = 0
) -> None:
    task = send_sms_message if channel == Channel.SMS else send_email_message
    enqueue_on_commit(task, company_id, message_id, attempt, countdown=countdown)


def _deliver(company_id: int, message_id: int, attempt: int | None) -> str:
    with company_scope(company_id):
        try:
            return sending.deliver(message_id, attempt)
        except sending.RetryLater as retry:
            channel = Message.objects.filter(pk=message_id).values_list("channel", flat=True)
            enqueue_retry(
                company_id, channel.first(), message_id, retry.attempt, countdown=retry.countdown
            )
            return "retry"


@shared_task(name="msglog.tasks.send_sms_chunk", queue="sms")
def send_sms_chunk(company_id: int, message_ids: list[int]) -> list[str]:
    with company_scope(company_id):
        return _deliver_paced(company_id, Channel.SMS, message_ids)


@shared_task(name="msglog.tasks.send_email_chunk", queue="email")
def send_email_chunk(company_id: int, message_ids: list[int]) -> list[str]:
    with company_scope(company_id):
        return _deliver_paced(company_id, Channel.EMAIL, message_ids)


def _deliver_paced(company_id: int, channel: str, message_ids: list[int]) -> list[str]:
    """The chunk in slices, each once the company's and provider's rate limits allow."""
    provider = sending.provider_name(channel)
    return [
        outcome
        for part in rate_limits.paced(company_id, provider, message_ids)
        for outcome in sending.deliver_many(company_id, part)
    ]


@shared_task(name="msglog.tasks.send_sms_message", queue="sms")
def send_sms_message(company_id: int, message_id: int, attempt: int | None = None) -> str:
    return _deliver(company_id, message_id, attempt)


@shared_task(name="msglog.tasks.send_email_message", queue="email")
def send_email_message(company_id: int, message_id: int, attempt: int | None = None) -> str:
    return _deliver(company_id, message_id, attempt)


def schedule_simulated_reports(messages: list[Message]) -> None:
    """The simulator reports back after realistic delays, through the events queue: one
    task per company and delay, carrying the reports of every message it concerns."""
    from .providers.simulator import SimulatorProvider

    due: dict[tuple[int, float], list] = {}
    for message in messages:
        provider = SimulatorProvider(message.channel)
        for delay, report in provider.reports(message.provider_message_id, message.to_address):
            item = [message.pk, {**report.__dict__, "occurred_at": report.occurred_at.isoformat()}]
            due.setdefault((message.company_id, delay), []).append(item)
    for (company_id, delay), items in due.items():
        enqueue_on_commit(
            apply_simulated_reports,
            company_id,
            items,
            countdown=delay,
            argsrepr=f"({company_id}, [{len(items)} reports])",
        )


@shared_task(name="msglog.tasks.apply_simulated_reports", queue="events")
def apply_simulated_reports(company_id: int, items: list) -> int:
    """Apply simulator reports, all the chunk's at once (as a webhook batch would be)."""
    with company_scope(company_id):
        reports = {pk: report for pk, report in items}
        messages = Message.objects.filter(company_id=company_id, pk__in=list(reports))
        batch = [
            events.report_event(
                message,
                Report(
                    **{
                        **reports[message.pk],
                        "occurred_at": datetime.fromisoformat(reports[message.pk]["occurred_at"]),
                    }
                ),
                source="simulator",
            )
            for message in messages
        ]
        events.record_events(batch)
        return len(batch)


@shared_task(name="msglog.tasks.refresh_message_status", queue="events")
def refresh_message_status(company_id: int, message_id: int) -> str:
    """Recompute one message's status from its events."""
    with company_scope(company_id):
        message = Message.objects.filter(company_id=company_id, pk=message_id).first()
        if message is None:
            return "missing"
        return events.refresh_message(message).status


@shared_task(name="msglog.tasks.dispatch_due_messages", queue="maintenance")
def dispatch_due_messages() -> int:
    """Queue scheduled messages whose time has come (runs every few seconds, from beat)."""
    with scopes_disabled():
        return sending.dispatch_due()


@shared_task(name="msglog.tasks.poll_sent_messages", queue="maintenance")
def poll_sent_messages() -> dict[str, int]:
    """Ask providers about sent messages that never got a final report."""
    outcomes: dict[str, int] = {}
    with scopes_disabled():
        for outcome, n in sending.poll_sent().items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    return outcomes


@shared_task(name="msglog.tasks.reconcile_yesterday", queue="maintenance")
def reconcile_yesterday() -> dict[str, int]:
    """The daily reconciliation with the providers (beat runs it once a day)."""
    with scopes_disabled():
        return sending.reconcile_day()


@shared_task(name="msglog.tasks.requeue_stale_messages", queue="maintenance")
def requeue_stale_messages() -> int:
    with scopes_disabled():
        return sending.requeue_stale()


@shared_task(name="msglog.tasks.reconcile_stuck_messages", queue="maintenance")
def reconcile_stuck_messages() -> dict[str, int]:
    """Ask providers about messages left in `sending` past the timeout."""
    outcomes: dict[str, int] = {}
    with scopes_disabled():
        stuck = sending.stuck_in_sending()
    for message in stuck:
        with company_scope(message.company_id):
            outcome = sending.reconcile(message)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@shared_task(name="msglog.tasks.send_demo_traffic", queue="maintenance")
def send_demo_traffic() -> int:
    """Embedded demo only (DEMO_TRAFFIC): a few messages every few seconds."""
    from .demo import send_demo_traffic as send_some

    return send_some()


# --- Batches (issue 6) --------------------------------------------------------------------


def enqueue_record_batch(company_id: int, upload_id: int) -> None:
    enqueue_on_commit(record_batch, company_id, upload_id)


@shared_task(name="msglog.tasks.record_batch", queue="maintenance")
def record_batch(company_id: int, upload_id: int) -> int:
    """Record a confirmed batch's recipients as messages, a chunk at a time."""
    with company_scope(company_id):
        return batches.record_rows(upload_id)


def enqueue_cancel_batch(company_id: int, batch_id: int) -> None:
    enqueue_on_commit(cancel_batch, company_id, batch_id)


@shared_task(name="msglog.tasks.cancel_batch", queue="maintenance")
def cancel_batch(company_id: int, batch_id: int) -> int:
    """Cancel the unsent messages of a stopped batch (a big one, after its Stop)."""
    with company_scope(company_id):
        batch = batches.Batch.objects.filter(pk=batch_id).first()
        return batches.cancel_unsent(batch) if batch is not None else 0


# --- Retention (issue 8) ---------------------------------------------------------------------


@shared_task(name="msglog.tasks.purge_expired_messages", queue="maintenance")
def purge_expired_messages() -> int:
    """Nightly, from beat: one purge task per company, so workers share the work."""
    from companies.models import Company

    company_ids = list(Company.objects.values_list("pk", flat=True))
    for company_id in company_ids:
        purge_company_messages.delay(company_id)
    return len(company_ids)


@shared_task(name="msglog.tasks.purge_company_messages", queue="maintenance")
def purge_company_messages(company_id: int) -> dict[str, int]:
    """Delete one company's messages, events and files older than its retention period."""
    from companies.models import Company

    from . import retention

    company = Company.objects.filter(pk=company_id).first()
    if company is None:
        return {}
    with company_scope(company_id):
        return dict(retention.purge_company(company))


# --- Provider reports (msglog/webhooks) ----------------------------------------------------


def enqueue_report_application() -> None:
    """Publish the task that applies stored provider reports (webhooks/reports.py)."""
    enqueue_on_commit(apply_provider_reports)


@shared_task(name="msglog.tasks.apply_provider_reports", queue="events")
def apply_provider_reports(linger: float | None = None) -> dict[str, int]:
    """Apply every pending provider report, in batches (beat runs it too, as a safety net,
    without lingering)."""
    from .webhooks import reports

    return reports.apply_all(linger=reports.LINGER if linger is None else linger)


@shared_task(name="msglog.tasks.prune_provider_reports", queue="maintenance")
def prune_provider_reports() -> int:
    from .webhooks import reports

    with scopes_disabled():
        return reports.prune()


# --- Exports (issue 7) --------------------------------------------------------------------


@shared_task(name="msglog.tasks.run_export", queue="exports")
def run_export(company_id: int, export_id: int) -> str:
    """Write a background export's file."""
    from . import exports

    with company_scope(company_id):
        return exports.run_job(export_id)


@shared_task(name="msglog.tasks.delete_expired_exports", queue="maintenance")
def delete_expired_exports() -> int:
    from . import exports

    with scopes_disabled():
        return exports.delete_expired()
