"""Batch benchmarks: stop latency with real workers, and creation from a CSV.

`batch_stop`: a 50,000-recipient email batch is recorded and sent by two Celery worker
processes (started here, on the benchmark's database and Redis); once they are busy it
is stopped. A stop of so many unsent messages returns at once and a worker cancels
them (`all_unsent_canceled_seconds`). Figures: the time from the stop's commit to the
last provider call (the simulator records each call's time; 0 when the last call came
before the commit), and how many calls came after the commit. Target: <= 1 s and 0.

`batch_create`: a 100,000-row CSV (emails, a name and a placeholder column) is checked,
confirmed and recorded as queued messages with their send tasks published. Target:
<= 10 s. No worker runs; the published tasks are removed afterwards.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max
from django_scopes import scope, scopes_disabled

from companies.models import Company
from msglog.devtools.bench.sending import backend_pid, cpu_seconds, purge_broker
from msglog.devtools.worker_processes import start_worker, stop_workers, worker_env
from msglog.models import Batch, SimulatedSend
from msglog.services import batches, uploads
from templates_app.models import MessageTemplate

STOP_RECIPIENTS = 50_000
CREATE_ROWS = 100_000


def _company() -> tuple[Company, object, object]:
    with scopes_disabled():
        company, _ = Company.objects.get_or_create(
            slug="bench-batches", defaults={"name": "Bench Batches"}
        )
        user, _ = get_user_model().objects.get_or_create(username="bench-batch-admin")
        template, _ = MessageTemplate.objects.get_or_create(
            company=company,
            name="Bench newsletter",
            defaults={
                "channel": "email",
                "category": "marketing",
                "message_type": "marketing",
                "subject": "News for {{ first_name }}",
                "text": "Hello {{ first_name }}, {{ offer }} off.",
            },
        )
        version = template.publish(user)
    return company, user, version


def _csv(rows: int, tag: str) -> str:
    lines = ["email,name,offer"]
    lines += [f"client{i}.{tag}@example.org,Client {i},{i % 30} %" for i in range(rows)]
    return "\n".join(lines) + "\n"


def _purge_queues() -> None:
    purge_broker(("email", "sms", "events", "maintenance", "celery"))


def _calls(company: Company) -> int:
    return SimulatedSend.objects.filter(company_id=company.pk).count()


def bench_batch_stop(runs: int = int(os.environ.get("BENCH_STOP_RUNS", "3"))) -> dict:
    if not settings.REDIS_URL:
        raise SystemExit("batch_stop needs Redis (REDIS_URL): it runs real workers.")
    company, user, version = _company()
    _purge_queues()
    latencies, late_calls, sent_before, stop_seconds, cancel_seconds = [], [], [], [], []
    logs = Path(tempfile.mkdtemp(prefix="bench-batch-stop-"))
    workers = [
        start_worker(
            f"bench{i}",
            queues="email,events,maintenance",
            env=worker_env(),
            log=logs / f"bench{i}.log",
        )
        for i in (1, 2)
    ]
    try:
        for run in range(runs):
            with scope(company=company.pk):
                upload = uploads.upload_csv(
                    company,
                    name=f"Stop bench {run}",
                    template_version=version,
                    data=_csv(STOP_RECIPIENTS, f"stop{run}.{time.time_ns()}"),
                    uploaded_by=user,
                )
                batch = batches.confirm(upload, user)
                # Recorded here, chunk by chunk; the workers send each chunk once committed.
                before = _calls(company)
                batches.record_rows(upload.pk)
                deadline = time.monotonic() + 300
                while _calls(company) - before < 2_000:
                    if time.monotonic() > deadline:
                        raise SystemExit("the workers sent nothing: are they running?")
                    time.sleep(0.05)
                started = time.perf_counter()
                result = batches.stop(batch, user)
                stop_seconds.append(time.perf_counter() - started)
                committed = result.committed_at
                time.sleep(3)  # any straggler shows up by now
                while Batch.objects.filter(pk=batch.pk, pending_count__gt=0).exists():
                    if time.monotonic() > deadline + 600:
                        raise SystemExit("the unsent messages were never canceled")
                    time.sleep(0.2)
                cancel_seconds.append(time.perf_counter() - started)
                sends = SimulatedSend.objects.filter(company_id=company.pk)
                last = sends.aggregate(last=Max("accepted_at"))["last"]
                latencies.append(max(0.0, (last - committed).total_seconds()) * 1000)
                late_calls.append(sends.filter(accepted_at__gt=committed).count())
                sent_before.append(_calls(company) - before)
                batch.refresh_from_db()
    finally:
        stop_workers(*workers)
        _purge_queues()
    return {
        "recipients": STOP_RECIPIENTS,
        "workers": 2,
        "runs": runs,
        "stop_to_last_call_ms_median": round(statistics.median(latencies), 1),
        "stop_to_last_call_ms_max": round(max(latencies), 1),
        "calls_after_stop_commit_max": max(late_calls),
        "sent_before_stop_median": statistics.median(sent_before),
        "stop_request_seconds_median": round(statistics.median(stop_seconds), 2),
        "all_unsent_canceled_seconds_median": round(statistics.median(cancel_seconds), 1),
    }


def bench_batch_create(runs: int = int(os.environ.get("BENCH_CREATE_RUNS", "1"))) -> dict:
    """Besides the wall clock, the CPU time of this process and of its database server
    process (as bench_enqueue reports it): on a shared machine the wall clock mostly
    measures the neighbours."""
    company, user, version = _company()
    checks, records, totals, python_cpu, database_cpu = [], [], [], [], []
    for run in range(runs):
        data = _csv(CREATE_ROWS, f"create{run}.{time.time_ns()}")
        with scope(company=company.pk):
            server = backend_pid()
            server_before = cpu_seconds(server) if server else 0.0
            cpu_before = time.process_time()
            started = time.perf_counter()
            upload = uploads.upload_csv(
                company, name=f"Create bench {run}", template_version=version, data=data
            )
            checked = time.perf_counter()
            batch = batches.confirm(upload, user)
            batches.record_rows(upload.pk)
            done = time.perf_counter()
            python_cpu.append(time.process_time() - cpu_before)
            if server:
                database_cpu.append(cpu_seconds(server) - server_before)
            batches.stop(batch, user)  # nothing of it is ever sent
        checks.append(checked - started)
        records.append(done - checked)
        totals.append(done - started)
        _purge_queues()
    figures = {
        "rows": CREATE_ROWS,
        "runs": runs,
        "total_seconds_median": round(statistics.median(totals), 2),
        "check_seconds_median": round(statistics.median(checks), 2),
        "record_and_enqueue_seconds_median": round(statistics.median(records), 2),
        "median_python_cpu_s": round(statistics.median(python_cpu), 2),
        "state_after": Batch.State.STOPPED,
    }
    if database_cpu:
        figures["median_database_cpu_s"] = round(statistics.median(database_cpu), 2)
    figures["load_average"] = os.getloadavg()
    return figures
