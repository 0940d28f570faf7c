"""Embedded mode, as a newcomer runs it: SQLite, the filesystem broker, a real worker.

Runs the project's own commands in subprocesses with none of the production
variables set, so the default can never silently break.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.fakes import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A fresh var/ folder, migrated and seeded with the demo, as `./dev run` makes it."""
    var = tmp_path_factory.mktemp("var")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(MSGLOG_VAR_DIR=str(var), DEBUG="1", PYTHONUNBUFFERED="1")

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    manage("migrate", "--no-input")
    logins = manage("seed_demo", "--once")
    return {
        "var": var,
        "env": env,
        "manage": manage,
        "logins": logins,
        "db": var / "msglog.sqlite3",
    }


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def worker(embedded):
    """A Celery worker with beat, as `./dev run` starts it, demo traffic on."""
    env = {**embedded["env"], "DEMO_TRAFFIC": "1"}
    process = start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "msglog",
            "worker",
            "--beat",
            "--pool=solo",
            "--queues=sms,email,events,maintenance,celery",
            f"--schedule={embedded['var'] / 'beat-schedule'}",
            "--loglevel=INFO",
        ],
        env,
        embedded["var"] / "worker.log",
    )
    yield process
    stop(process)


def query(embedded, sql: str, *params):
    db = sqlite3.connect(embedded["db"], timeout=30)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def wait_for(embedded, worker, condition, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        assert worker.poll() is None, (embedded["var"] / "worker.log").read_text()
        time.sleep(0.5)
    raise AssertionError((embedded["var"] / "worker.log").read_text()[-5000:])


def test_a_worker_processes_a_task_end_to_end(embedded, worker):
    ((message_id, company_id),) = query(
        embedded, "SELECT id, company_id FROM msglog_message WHERE status = 'sent' LIMIT 1"
    )
    # A provider report arrives; the worker applies it to the message.
    embedded["manage"](
        "shell",
        "-c",
        f"""
from django.utils import timezone
from django_scopes import scopes_disabled
from msglog.models import StatusEvent
from msglog.rules.dedupe import dedupe_key
from msglog.services import queue
with scopes_disabled():
    StatusEvent.objects.create(company_id={company_id}, message_id={message_id},
        status="delivered", occurred_at=timezone.now(), source="simulator",
        dedupe_key=dedupe_key("smoke", {message_id}))
queue.publish_on_commit("msglog.tasks.refresh_message_status", {company_id}, {message_id})
""",
    )
    wait_for(
        embedded,
        worker,
        lambda: query(
            embedded,
            "SELECT 1 FROM msglog_message WHERE id = ? AND status = 'delivered'",
            message_id,
        ),
    )


def test_demo_traffic_moves_from_queued_to_a_final_status(embedded, worker):
    """What a newcomer sees: new messages go queued, sending, sent, then delivered or not."""
    settled = wait_for(
        embedded,
        worker,
        lambda: query(
            embedded,
            "SELECT m.id FROM msglog_message m WHERE m.metadata LIKE '%demo%' AND m.status IN "
            "('delivered', 'opened', 'clicked', 'undelivered', 'bounced', 'complained')",
        ),
    )
    (message_id,) = settled[0]
    steps = [
        s
        for (s,) in query(
            embedded,
            "SELECT status FROM msglog_statusevent WHERE message_id = ? AND status != '' "
            "ORDER BY occurred_at, id",
            message_id,
        )
    ]
    assert steps[:3] == ["queued", "sending", "sent"], steps


def test_the_web_server_serves_the_login_and_a_demo_users_logs(embedded):
    username, password = first_login(embedded["logins"])
    port = free_port()
    web = start(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        embedded["env"],
        embedded["var"] / "web.log",
    )
    try:
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        deadline = time.monotonic() + 60
        while True:
            try:
                login_page = opener.open(f"{base}/login/", timeout=5).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, (embedded["var"] / "web.log").read_text()
                assert web.poll() is None, (embedded["var"] / "web.log").read_text()
                time.sleep(0.3)
        assert "Sign in" in login_page
        token = login_page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        body = urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token}
        ).encode()
        request = urllib.request.Request(
            f"{base}/login/", data=body, headers={"Referer": f"{base}/login/"}
        )
        logs = opener.open(request, timeout=30).read().decode()
        assert "Message Service" in logs
        assert "badge status-" in logs  # demo messages are listed
    finally:
        stop(web)


def first_login(printed: str) -> tuple[str, str]:
    """The first username and password in seed_demo's printed table of logins."""
    for line in printed.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "@" in parts[0] and not parts[0].startswith("http"):
            return parts[0], parts[1]
    raise AssertionError(f"seed_demo printed no logins:\n{printed}")
