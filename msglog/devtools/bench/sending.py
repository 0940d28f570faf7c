"""Benchmarks of sending: enqueue rate and worker throughput.

Both need only a migrated database: they make their own company and recipients, and
remove the messages they sent afterwards, so the log they run on stays as it was.

* `enqueue`: one `send_many` to 100,000 email recipients, timed from the call to the
  moment the messages are committed and their chunk tasks are on the broker.
* `throughput`: two real `celery worker` processes (one pool process each, on Redis,
  consuming the email queue) hand the messages of one 20,000-recipient send to the
  simulator; timed from the send (so the enqueue is inside the figure) until none is
  queued or sending.

Both also report CPU time, because on a shared machine the wall clock mostly measures
the neighbours' load (quoted with each result).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django_scopes import scope, scopes_disabled

from companies.models import Company
from msglog.config.celery import app
from msglog.devtools.worker_processes import start_worker, stop_workers, worker_env
from msglog.rules.kinds import Category, Channel, MessageType
from msglog.rules.statuses import Status
from msglog.services import sending
from msglog.services.sending import Content, Recipient

BENCH_COMPANY = "bench-sending"
CONTENT = Content(
    subject="Your appointment, {{ first_name }}",
    text="Hello {{ first_name }}, see you on {{ day }} at {{ time }}. Reply to change it.",
    html="<p>Hello {{ first_name }}, see you on <b>{{ day }}</b> at {{ time }}.</p>",
)


def bench_company() -> Company:
    company, _ = Company.objects.get_or_create(
        slug=BENCH_COMPANY, defaults={"name": "Bench Sending", "sms_credit_balance": 0}
    )
    return company


def recipients(n: int, run: int) -> list[Recipient]:
    return [
        Recipient(
            address=f"client{run}-{i}@example.org",
            name=f"Client {i} Example",
            context={"day": "Tuesday", "time": f"{9 + i % 8}:00"},
        )
        for i in range(n)
    ]


def send_to(company: Company, people: list[Recipient]) -> list:
    with scope(company=company.pk):
        return sending.send_many(
            company,
            channel=Channel.EMAIL,
            recipients=people,
            category=Category.TRANSACTIONAL,
            message_type=MessageType.REMINDER,
            content=CONTENT,
        )


def forget(company: Company) -> None:
    """Remove what a run sent (messages, events, rollups, the simulator's record)."""
    with connection.cursor() as cursor:
        for table in ("msglog_statusevent", "msglog_message", "msglog_dailyrollup"):
            cursor.execute(f"DELETE FROM {table} WHERE company_id = %s", [company.pk])  # noqa: S608
        cursor.execute("DELETE FROM msglog_simulatedsend WHERE company_id = %s", [company.pk])


def purge_broker(queues: tuple[str, ...] = ("sms", "email", "events")) -> None:
    """Drop the tasks a run published (only in these queues)."""

    with app.connection_for_write() as conn:
        for queue in queues:
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # noqa: S112 — a queue never declared has nothing to purge
                continue


def summary(samples: list[float], n: int) -> dict:
    median = statistics.median(samples)
    return {
        "messages": n,
        "runs": len(samples),
        "median_s": round(median, 3),
        "median_messages_per_s": round(n / median),
        "samples_s": [round(s, 3) for s in samples],
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (a worker and its pool process)."""
    try:
        total = cpu_seconds(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return total + sum(tree_cpu_seconds(int(child)) for child in children)


def backend_pid() -> int | None:
    """The PostgreSQL server process serving this connection, when it is on this machine."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def bench_enqueue(n: int = 100_000, runs: int = 3) -> dict:
    """Record and queue one send to `n` email recipients, in one call.

    Besides the wall-clock time, the CPU time spent by this process and by its database
    server process: on a shared machine the wall clock mostly measures the neighbours,
    the CPU time what the send itself costs.
    """
    with scopes_disabled():
        company = bench_company()
        forget(company)
    purge_broker()
    samples, python_cpu, database_cpu = [], [], []
    for run in range(runs):
        people = recipients(n, run)
        server = backend_pid()
        server_before = cpu_seconds(server) if server else 0.0
        cpu_before = time.process_time()
        start = time.perf_counter()
        messages = send_to(company, people)
        samples.append(time.perf_counter() - start)
        python_cpu.append(time.process_time() - cpu_before)
        if server:
            database_cpu.append(cpu_seconds(server) - server_before)
        assert len(messages) == n
        with scopes_disabled():
            forget(company)
        purge_broker()
    figures = summary(samples, n)
    figures["median_python_cpu_s"] = round(statistics.median(python_cpu), 3)
    if database_cpu:
        figures["median_database_cpu_s"] = round(statistics.median(database_cpu), 3)
        figures["messages_per_cpu_s"] = round(
            n / (statistics.median(python_cpu) + statistics.median(database_cpu))
        )
    figures["load_average"] = os.getloadavg()
    return figures


def wait_ready(names: list[str], timeout: float = 60) -> None:

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        answered = {host.split("@")[0] for reply in replies for host in reply}
        if all(name in answered for name in names):
            return
    raise SystemExit(f"workers {names} did not start within {timeout:.0f} s")


def pending(company: Company) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM msglog_message WHERE company_id = %s AND status IN (%s, %s)",
            [company.pk, Status.QUEUED, Status.SENDING],
        )
        return cursor.fetchone()[0]


def bench_throughput(n: int = 20_000, workers: int = 2, runs: int = 3) -> dict:
    """Queued to sent through the simulator with `workers` worker processes on Redis."""
    if not settings.REDIS_URL:
        raise SystemExit("The throughput benchmark needs Redis: set REDIS_URL.")
    with scopes_disabled():
        company = bench_company()
        forget(company)
    purge_broker()
    logs = Path(settings.VAR_DIR) / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    names = [f"bench{i}" for i in range(workers)]
    env = worker_env()
    processes = [
        start_worker(name, queues="email", env=env, log=logs / f"{name}.log", quiet=True)
        for name in names
    ]
    samples: list[float] = []
    worker_cpu: list[float] = []
    try:
        wait_ready(names)
        for run in range(runs):
            people = recipients(n, run)
            # Timed from before the send: the first chunks are being sent while the last
            # are still being queued, so the enqueue is inside the figure (conservative).
            workers_before = sum(tree_cpu_seconds(p.pid) for p in processes)
            start = time.perf_counter()
            send_to(company, people)
            deadline = start + max(600, n / 20)
            while pending(company):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"still {pending(company)} pending; see {logs}")
                time.sleep(0.05)
            samples.append(time.perf_counter() - start)
            worker_cpu.append(sum(tree_cpu_seconds(p.pid) for p in processes) - workers_before)
            with scopes_disabled():
                forget(company)
            purge_broker()
    finally:
        stop_workers(*processes)
        purge_broker()
    figures = summary(samples, n)
    figures["workers"] = workers
    # The worker processes' own CPU time per message (their database servers' not included:
    # Django reopens connections, so those processes come and go within a run).
    figures["median_worker_cpu_ms_per_message"] = round(statistics.median(worker_cpu) / n * 1000, 3)
    figures["load_average"] = os.getloadavg()
    return figures
