"""Real Celery worker processes, as benchmarks and tests start them beside themselves.

One way to start a worker (its own process group, so a stop or a SIGKILL reaches its pool
children too) and to stop it, instead of a copy in every benchmark and test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection


def worker_env(redis_url: str | None = None, **extra: str) -> dict:
    """This process's environment for a worker that sees the same database (the test
    database in tests) and broker as this process, plus `extra` settings."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "REDIS_URL": redis_url or settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "msglog.config.settings",
        "SECURE_SSL_REDIRECT": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_worker(
    name: str,
    *,
    queues: str,
    env: dict,
    log: Path,
    pool: str = "prefork",
    loglevel: str = "WARNING",
    quiet: bool = False,
) -> subprocess.Popen:
    """A one-process worker named `name` on `queues`, its output appended to `log`.

    `quiet` leaves out gossip, mingle and heartbeats: a worker that only measures speed
    need not talk to the others.
    """
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "msglog",
        "worker",
        "--concurrency=1",
        f"--pool={pool}",
        f"--hostname={name}@%h",
        f"--queues={queues}",
        f"--loglevel={loglevel}",
    ]
    if quiet:
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(
        args,
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_workers(*workers: subprocess.Popen, timeout: float = 20) -> None:
    """Warm shutdown (TERM), then SIGKILL for any worker still there after `timeout`."""
    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_hard(worker)


def kill_hard(worker: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool children: no goodbye, as a crash would."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
