"""Workers die mid-send: nothing is lost, nothing is sent twice, nothing stays in sending.

A 5,000-recipient email send through the simulator on Redis with two real worker
processes; one of them is SIGKILLed three times mid-run and restarted. In the end every
message was handed to the provider exactly once (the simulator's own record counts the
calls), and each one's status says what happened.
"""

from __future__ import annotations

import time

import pytest
import redis
from django.db.models import Count
from django_scopes import scope, scopes_disabled

from msglog.devtools.worker_processes import kill_hard
from msglog.models import Message, SimulatedSend
from msglog.services import sending
from msglog.services.sending import Content, Recipient
from tests.processes import fault_worker_env, start_beat, start_fault_worker

RECIPIENTS = 5_000
pytestmark = pytest.mark.fault


@pytest.fixture
def broker(settings):
    if not settings.REDIS_URL:
        pytest.skip("the fault test runs on the Redis broker (REDIS_URL)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield settings.REDIS_URL
    client.flushdb()


def counts(company) -> dict[str, int]:
    with scopes_disabled():
        return dict(
            Message.objects.filter(company=company)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )


@pytest.mark.django_db(transaction=True)
def test_killed_workers_lose_nothing_and_send_nothing_twice(acme, broker, tmp_path):
    with scope(company=acme.pk):
        sending.send_many(
            acme,
            channel="email",
            category="notification",
            message_type="reminder",
            recipients=[
                Recipient(address=f"client{i}@example.org", name=f"Client {i}")
                for i in range(RECIPIENTS)
            ],
            content=Content(subject="Reminder", text="See you tomorrow, {{ first_name }}."),
        )
    env = fault_worker_env(broker)
    beat = start_beat(env=env, log=tmp_path / "beat.log", schedule=tmp_path / "beat")
    steady = start_fault_worker("steady", env, tmp_path)
    victim = start_fault_worker("victim", env, tmp_path)
    kills = 0
    try:
        for threshold in (600, 1800, 3200):
            deadline = time.monotonic() + 240
            while SimulatedSend.objects.count() < threshold:
                assert time.monotonic() < deadline, counts(acme)
                time.sleep(0.2)
            kill_hard(victim)
            kills += 1
            victim = start_fault_worker("victim", env, tmp_path)

        deadline = time.monotonic() + 300
        while True:
            now = counts(acme)
            if not (now.get("queued") or now.get("sending")):
                break
            assert time.monotonic() < deadline, f"still pending: {now}"
            time.sleep(1)
    finally:
        for process in (victim, steady, beat):
            if process.poll() is None:
                kill_hard(process)

    assert kills == 3
    with scopes_disabled():
        messages = Message.objects.filter(company=acme)
        assert messages.count() == RECIPIENTS  # none lost
        calls = dict(
            SimulatedSend.objects.values_list("public_id").annotate(n=Count("id")).order_by()
        )
        assert max(calls.values()) == 1, "a message was handed to the provider twice"
        for message in messages.only("public_id", "status", "provider_message_id"):
            if message.public_id in calls:
                # Handed over once; the status says so (reconciled ones too).
                assert message.status in {"sent", "delivered", "opened"}, message.status
                assert message.provider_message_id
            else:
                # Never handed over: only an outcome the record explains is allowed.
                assert message.status == "failed", message.status
        reconciled = messages.filter(events__source="poll").distinct().count()
    print(
        f"\n{len(calls)} provider calls for {RECIPIENTS} messages; "
        f"{reconciled} settled by asking the provider; final: {counts(acme)}"
    )
