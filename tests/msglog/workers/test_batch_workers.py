"""Batches with real workers on PostgreSQL and Redis.

Stop: a 20,000-recipient email batch runs on two busy worker processes; Ada stops it.
The simulator records when each provider call happened: none is later than the stop's
commit, every message is sent or canceled, and nothing is left waiting.

Rate limit: the same company's batch on two worker processes, limited to 40 messages a
second: in no second do more than the limit (plus one second's burst) go out.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
import redis
from django.db.models import Max
from django_scopes import scope, scopes_disabled

from msglog.devtools.worker_processes import stop_workers
from msglog.models import Batch, Message, SimulatedSend
from msglog.services import batches, uploads
from tests.factories import TemplateFactory, UserFactory
from tests.processes import fault_worker_env, start_fault_worker


@pytest.fixture
def broker(settings):
    if not settings.REDIS_URL:
        pytest.skip("real workers run on the Redis broker (REDIS_URL)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield settings.REDIS_URL
    client.flushdb()


def start_batch(company, user, recipients: int, name: str) -> Batch:
    template = TemplateFactory(
        company=company, channel="email", subject="News", text="Hello {{ first_name }}."
    )
    with scopes_disabled():
        version = template.publish()
    with scope(company=company.pk):
        data = "email,name\n" + "".join(
            f"client{i}@example.org,Client {i}\n" for i in range(recipients)
        )
        upload = uploads.upload_csv(
            company, name=name, template_version=version, data=data, uploaded_by=user
        )
        return batches.confirm(upload, user)  # the recording task is published on commit


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def calls(company) -> int:
    return SimulatedSend.objects.filter(company_id=company.pk).count()


@pytest.mark.django_db(transaction=True)
def test_stop_on_two_busy_workers_leaves_no_call_after_its_commit(acme, broker, tmp_path):
    ada = UserFactory(username="ada.admin")
    env = fault_worker_env(broker)
    workers = [start_fault_worker(name, env, tmp_path) for name in ("one", "two")]
    try:
        batch = start_batch(acme, ada, 20_000, "Big newsletter")
        wait_for(lambda: calls(acme) >= 1_500, 300, "the workers to get going")
        with scope(company=acme.pk):
            result = batches.stop(batch, ada)
        assert result.stopped
        stop_committed = result.committed_at
        # Give the workers time to show any straggler.
        time.sleep(5)
        with scopes_disabled():
            wait_for(
                lambda: (
                    not Message.objects.filter(
                        batch=batch, status__in=["queued", "scheduled", "sending"]
                    ).exists()
                ),
                120,
                "every message to be sent or canceled",
            )
            last_call = SimulatedSend.objects.filter(company_id=acme.pk).aggregate(
                last=Max("accepted_at")
            )["last"]
            late = SimulatedSend.objects.filter(
                company_id=acme.pk, accepted_at__gt=stop_committed
            ).count()
            statuses = Counter(Message.objects.filter(batch=batch).values_list("status", flat=True))
            batch.refresh_from_db()
    finally:
        stop_workers(*workers)
    assert late == 0, f"{late} provider calls after the stop's commit (last {last_call})"
    sent = sum(n for s, n in statuses.items() if s != "canceled")
    assert sent == calls(acme), "each sent message was handed over exactly once"
    assert statuses["canceled"] >= 1 and sent + statuses["canceled"] == batch.total_count
    assert batch.canceled_count == statuses["canceled"] and batch.pending_count == 0
    assert batch.state == "stopped"


@pytest.mark.django_db(transaction=True)
def test_the_rate_limit_holds_across_two_worker_processes(acme, broker, tmp_path):
    rate, recipients = 40, 400
    env = {**fault_worker_env(broker), "RATE_LIMIT_COMPANY_PER_SECOND": str(rate)}
    redis.Redis.from_url(broker).delete(f"msglog:rate:company:{acme.pk}")
    workers = [start_fault_worker(name, env, tmp_path) for name in ("one", "two")]
    try:
        start_batch(acme, UserFactory(username="ada.admin"), recipients, "Paced")
        wait_for(lambda: calls(acme) >= recipients, 120, "every message to go out")
    finally:
        stop_workers(*workers)
    times = sorted(
        SimulatedSend.objects.filter(company_id=acme.pk).values_list("accepted_at", flat=True)
    )
    window = timedelta(seconds=1)
    busiest = max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))
    assert busiest <= 2 * rate, f"{busiest} calls in one second, limit {rate}/s"
    elapsed = (times[-1] - times[0]).total_seconds()
    assert elapsed >= (recipients - rate) / rate * 0.95, f"{recipients} sent in {elapsed:.1f} s"
    logs = [(tmp_path / f"{name}.log").read_text() for name in ("one", "two")]
    assert all("send_email_chunk" in log for log in logs), "both workers took a share"
