"""Real Celery worker and beat processes for the fault tests, with short timeouts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from django.conf import settings

from msglog.devtools.worker_processes import start_worker, worker_env


def fault_worker_env(redis_url: str) -> dict:
    # Short timeouts so the recoveries happen within the test, not within the hour.
    return worker_env(
        redis_url,
        CELERY_VISIBILITY_TIMEOUT="10",
        SENDING_TIMEOUT_SECONDS="5",
        QUEUED_TIMEOUT_SECONDS="10",
    )


def start_fault_worker(name: str, env: dict, logs: Path) -> subprocess.Popen:
    return start_worker(
        name,
        queues="email,events,maintenance",
        env=env,
        log=logs / f"{name}.log",
        loglevel="INFO",
    )


def start_beat(*, env: dict, log: Path, schedule: Path) -> subprocess.Popen:
    """Celery beat, keeping its schedule file at `schedule`."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "msglog", "beat", f"--schedule={schedule}"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
