"""Publishing work for the workers: by task name, once the data it needs has committed.

Services never import the workers (msglog/workers): they name the task and its
arguments (ids, never objects) and this module publishes it when the transaction that
wrote the data commits, so a worker never looks for a row that is not there yet, and a
rolled-back change publishes nothing. Outside a transaction it publishes at once.
Routes (which queue a task name goes to) are settings: CELERY_TASK_ROUTES.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from celery import current_app
from django.db import transaction


def publish(name: str, *args: Any, **options: Any) -> None:
    """Publish task `name` now (prefer :func:`publish_on_commit`)."""
    app = current_app
    if app.conf.task_always_eager:
        # One process, no broker (a test, a shell): run it here, as Celery's .delay() would.
        app.tasks[name].apply(args=args)
        return
    app.send_task(name, args=args, **options)


def publish_on_commit(name: str, *args: Any, **options: Any) -> None:
    """Publish task `name` with these arguments once the current transaction commits."""
    transaction.on_commit(lambda: publish(name, *args, **options))


def publish_many_on_commit(
    name: str, arguments: Sequence[tuple], describe: Iterable[str] | None = None
) -> None:
    """Publish one task `name` per tuple of arguments, over one broker connection, once
    committed. `describe` gives each task's short argsrepr (for big id lists: the
    broker would otherwise carry the repr of every id in the message's headers)."""
    reprs: list[str | None] = list(describe) if describe is not None else [None] * len(arguments)

    def publish_all() -> None:
        app = current_app
        if app.conf.task_always_eager:
            for args in arguments:
                app.tasks[name].apply(args=args)
            return
        with app.producer_or_acquire() as producer:
            for args, argsrepr in zip(arguments, reprs, strict=True):
                options: dict[str, Any] = {"argsrepr": argsrepr} if argsrepr else {}
                app.send_task(name, args=args, producer=producer, **options)

    if arguments:
        transaction.on_commit(publish_all)
