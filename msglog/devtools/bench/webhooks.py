"""Benchmark: Twilio status callbacks end to end.

gunicorn with 2 workers on 127.0.0.1 serves /webhooks/twilio/status/; a concurrent client
in this process posts signed callbacks (the `twilio` library's RequestValidator signs
them, the view checks them) over keep-alive connections; the view stores each report
durably and answers; one Celery worker subprocess applies them to the messages in
batches. Figures: requests per second while sending, response time percentiles, and
the time until the last report is applied (from the first request).

Size: BENCH_WEBHOOK_CALLBACKS (default 100,000) callbacks over BENCH_WEBHOOK_MESSAGES
(default 50,000) SMS messages of one batch: each message gets "sent" and "delivered"
(with the carrier's RawDlrDoneDate), shuffled within windows of 1,000, so some
deliveries arrive before their "sent". The messages are created by the benchmark in a
company of its own (a previous run's is deleted first).
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from django_scopes import scopes_disabled
from twilio.request_validator import RequestValidator

from companies.models import Company
from msglog.devtools.worker_processes import start_worker, stop_workers
from msglog.models import Batch, Message
from msglog.rules.kinds import Category, Channel, MessageType
from msglog.rules.statuses import Status
from msglog.services import rollups

PATH = "/webhooks/twilio/status/"
TOKEN = "bench-webhooks-auth-token"  # noqa: S105 — signs the benchmark's own posts
PUBLIC_BASE_URL = "https://bench-webhooks.example"
SLUG = "bench-webhooks"
CLIENT_CONNECTIONS = int(os.environ.get("BENCH_WEBHOOK_CONNECTIONS", "16"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reset() -> None:
    """Delete a previous run's company, messages, events and reports."""
    with scopes_disabled():
        old = list(Company.objects.filter(slug=SLUG).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM msglog_inboundreport WHERE provider_message_id LIKE 'SMbw%%'")
        for table in ("msglog_statusevent", "msglog_message", "msglog_dailyrollup", "msglog_batch"):
            for company_id in old:
                cursor.execute(f"DELETE FROM {table} WHERE company_id = %s", [company_id])  # noqa: S608
    with scopes_disabled():
        Company.objects.filter(pk__in=old).delete()


def _vacuum() -> None:
    """VACUUM and ANALYZE what the benchmark writes: the previous run's rows are dead
    tuples until then, and a server without autovacuum (this one runs with it off) would
    carry every run's into the next, each slower than the last."""
    with connection.cursor() as cursor:
        for table in (
            "msglog_inboundreport", "msglog_statusevent", "msglog_message", "msglog_batch",
            "msglog_dailyrollup", "companies_company",
        ):  # fmt: skip
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def _messages(count: int) -> tuple[Company, list[str]]:
    company = Company.objects.create(name="Bench webhooks", slug=SLUG)
    batch = Batch.objects.create(
        company=company, name="Bench webhooks", channel=Channel.SMS, total_count=count,
        sent_count=count,
    )  # fmt: skip
    now = timezone.now()
    sids = [f"SMbw{i:030d}" for i in range(count)]
    with scopes_disabled():
        for start in range(0, count, 5000):
            chunk = [
                Message(
                    company=company,
                    channel=Channel.SMS,
                    to_address=f"+1415{i:07d}",
                    category=Category.TRANSACTIONAL,
                    message_type=MessageType.REMINDER,
                    body_text="See you tomorrow at 10:00.",
                    provider="twilio",
                    provider_message_id=sid,
                    status=Status.SENT,
                    segments=1,
                    credits=1,
                    batch=batch,
                    created_at=now,
                    updated_at=now,
                    sent_at=now,
                )
                for i, sid in enumerate(sids[start : start + 5000], start=start)
            ]
            Message.objects.bulk_create(chunk)
            rollups.count_created(chunk)
    return company, sids


def _callbacks(sids: list[str], total: int) -> list[tuple[bytes, str]]:
    """(form body, signature) for each callback, signed as Twilio signs them."""
    validator = RequestValidator(TOKEN)
    url = PUBLIC_BASE_URL + PATH
    done = (timezone.now() + timedelta(minutes=1)).strftime("%y%m%d%H%M")
    forms = []
    for n in range(total):
        sid = sids[(n // 2) % len(sids)]
        status = "sent" if n % 2 == 0 else "delivered"
        form = {
            "AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "From": "+14155559999",
            "MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status,
            "To": "+14155550100",
        }  # fmt: skip
        if status == "delivered":
            form["RawDlrDoneDate"] = done
        forms.append(form)
    rng = random.Random(5)
    for start in range(0, total, 1000):
        window = forms[start : start + 1000]
        rng.shuffle(window)
        forms[start : start + 1000] = window
    return [(urlencode(form).encode(), validator.compute_signature(url, form)) for form in forms]


def _start(command: list[str], env: dict, log_name: str) -> subprocess.Popen:
    """gunicorn in its own process group (the worker: worker_processes.start_worker)."""
    log = open(settings.VAR_DIR / f"bench_webhooks_{log_name}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("gunicorn exited: see var/bench_webhooks_web.log")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def _requests(callbacks: list[tuple[bytes, str]]) -> list[bytes]:
    """Each callback as the bytes of its HTTP request, built before the clock starts."""
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
    ).encode()
    return [
        head + f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        for body, sig in callbacks
    ]


class _Connection:
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.index = -1
        self.started = 0.0

    def response(self) -> tuple[int, bool] | None:
        """(status, server closes) once a whole response is buffered, else None."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buffer[:end].decode("latin-1").lower().split("\r\n")
        length = 0
        closes = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                closes = value.strip() == "close"
        if len(self.buffer) < end + 4 + length:
            return None
        self.buffer = self.buffer[end + 4 + length :]
        return int(head[0].split()[1]), closes


def _post_all(port: int, callbacks: list[tuple[bytes, str]]) -> tuple[list[float], int, float]:
    """Post every callback over CLIENT_CONNECTIONS keep-alive connections from one thread
    (a selector; the requests' bytes are built beforehand, so the client costs tens of
    microseconds a request); returns latencies (ms), the number of non-2xx answers, and
    the seconds it took. A connection the server closes is reopened and its request sent
    again (a callback is stored once, however often it is posted)."""
    requests = _requests(callbacks)
    latencies: list[float] = []
    failures = 0
    selector = selectors.DefaultSelector()
    queue = iter(range(len(requests)))

    def send(conn: _Connection, index: int) -> None:
        conn.index = index
        conn.started = time.perf_counter()
        conn.sock.sendall(requests[index])

    def reopen(conn: _Connection) -> _Connection:
        selector.unregister(conn.sock)
        conn.sock.close()
        fresh = _Connection(port)
        selector.register(fresh.sock, selectors.EVENT_READ, fresh)
        return fresh

    started = time.perf_counter()
    for _ in range(min(CLIENT_CONNECTIONS, len(requests))):
        conn = _Connection(port)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        send(conn, next(queue))
    in_flight = len(selector.get_map())
    while in_flight:
        for key, _ in selector.select():
            conn = key.data
            data = conn.sock.recv(65536)
            if not data:  # closed before answering: again, on a new connection
                send(reopen(conn), conn.index)
                continue
            conn.buffer += data
            while (answer := conn.response()) is not None:
                status, closes = answer
                latencies.append((time.perf_counter() - conn.started) * 1000)
                failures += status >= 300
                if closes:
                    conn = reopen(conn)
                index = next(queue, None)
                if index is None:
                    in_flight -= 1
                    selector.unregister(conn.sock)
                    conn.sock.close()
                    break
                send(conn, index)
    selector.close()
    return latencies, failures, time.perf_counter() - started


def _stat(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_seconds(group: int) -> float:
    """User + system CPU seconds of every live process in a process group (Linux /proc)."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(entry)) and int(fields[2]) == group:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> dict[tuple[str, int], float]:
    """CPU seconds of each live PostgreSQL backend connected to this database, by
    (application name, pid): the server runs on this machine, and the web and worker
    processes name themselves with PGAPPNAME. Other databases' backends are not counted."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name, pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend'"
        )
        backends = cursor.fetchall()
    found = {}
    for name, pid in backends:
        if fields := _stat(pid):
            found[(name, pid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


class _PostgresCpu:
    """CPU seconds spent by this database's backends, by application name, from now on.

    A thread samples them every half second: a backend that disconnects on the way (its
    process is gone once CONN_MAX_AGE closes the connection) keeps what it had spent at
    its last sample, and one that connects later counts from zero."""

    def __init__(self) -> None:
        self.before = _postgres_cpu()
        self.last = dict(self.before)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        try:
            while not self.done.wait(0.5):
                self.last.update(_postgres_cpu())
        finally:
            connection.close()

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        self.last.update(_postgres_cpu())
        spent: dict[str, float] = {}
        for (name, pid), cpu in self.last.items():
            spent[name] = spent.get(name, 0.0) + cpu - self.before.get((name, pid), 0.0)
        return spent


def _pending() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM msglog_inboundreport WHERE state = 'pending'")
        return int(cursor.fetchone()[0])


def bench_webhooks() -> dict:
    total = int(os.environ.get("BENCH_WEBHOOK_CALLBACKS", "100000"))
    message_count = int(os.environ.get("BENCH_WEBHOOK_MESSAGES", "50000"))
    _reset()
    company, sids = _messages(message_count)
    _vacuum()
    callbacks = _callbacks(sids, total)

    port = _free_port()
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "msglog.config.settings",
    }
    web = _start(
        [
            sys.executable, "-m", "gunicorn", "msglog.config.wsgi", "--workers", "2",
            "--worker-class", "gthread", "--threads", "8", "--keep-alive", "30", "--preload",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
        ],
        {**env, "PGAPPNAME": "bench-web"},
        "web",
    )  # fmt: skip
    worker = start_worker(
        "bench-webhooks",
        queues="events",
        env={**env, "PGAPPNAME": "bench-worker"},
        log=settings.VAR_DIR / "bench_webhooks_worker.log",
        pool="solo",
        quiet=True,
    )
    try:
        _wait_port(port, web)
        web_cpu, worker_cpu = _cpu_seconds(web.pid), _cpu_seconds(worker.pid)
        postgres = _PostgresCpu()
        load_before = os.getloadavg()
        client_cpu = time.process_time()
        started = time.perf_counter()
        latencies, failures, sending_seconds = _post_all(port, callbacks)
        client_cpu = time.process_time() - client_cpu
        web_cpu = _cpu_seconds(web.pid) - web_cpu
        while _pending() and worker.poll() is None:
            time.sleep(0.1)
        applied_seconds = time.perf_counter() - started
        worker_cpu = _cpu_seconds(worker.pid) - worker_cpu
        postgres_cpu = postgres.stop()
        load = os.getloadavg()
    finally:
        _stop(web)
        stop_workers(worker, timeout=15)

    with scopes_disabled():
        statuses = dict(
            Message.objects.filter(company=company)
            .order_by()
            .values("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        batch = Batch.objects.get(company=company)
    latencies.sort()
    return {
        "callbacks": total,
        "messages": message_count,
        "client_connections": CLIENT_CONNECTIONS,
        "gunicorn": "2 workers x 8 threads (gthread)",
        "non_2xx": failures,
        "sending_seconds": round(sending_seconds, 1),
        "events_per_second": round(total / sending_seconds),
        "response_ms": {
            "median": round(statistics.median(latencies), 1),
            "p95": round(latencies[int(len(latencies) * 0.95)], 1),
            "p99": round(latencies[int(len(latencies) * 0.99)], 1),
            "max": round(latencies[-1], 1),
        },
        "last_applied_after_seconds": round(applied_seconds, 1),
        # CPU spent per callback, whatever else the machine runs: what 1,000/s needs.
        "cpu_ms_per_callback": {
            "gunicorn": round(web_cpu * 1000 / total, 2),
            "celery_worker": round(worker_cpu * 1000 / total, 2),
            "client": round(client_cpu * 1000 / total, 2),
            # the PostgreSQL backends serving each of them
            "postgres_for_gunicorn": round(postgres_cpu.get("bench-web", 0) * 1000 / total, 2),
            "postgres_for_worker": round(postgres_cpu.get("bench-worker", 0) * 1000 / total, 2),
        },
        "load_average_1_5_15_before": [round(x, 1) for x in load_before],
        "load_average_1_5_15": [round(x, 1) for x in load],
        "statuses": statuses,
        "batch_delivered": batch.delivered_count,
        "public_base_url": PUBLIC_BASE_URL,
        "database": settings.DATABASES["default"]["NAME"],
    }
