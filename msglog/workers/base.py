"""The base of every task: publishing that waits for the commit, and the company's scope.

Tasks are thin: they take ids, open the scope the work needs and call one service.
:class:`CompanyTask` is for work on one company's data (its first argument is the
company's id): the body runs inside that company's django-scopes scope, so a query that
forgets the company raises instead of reading another's. Platform-wide work (beat's
periodic tasks) uses :class:`Task` and says so with ``scopes_disabled()``.
"""

from __future__ import annotations

from typing import Any

import celery
from django.db import transaction

from companies.tenancy import company_scope


class Task(celery.Task):
    """A task that, published inside a transaction, is sent once that transaction
    commits (a rolled-back change publishes nothing; a worker never looks for rows that
    are not committed yet)."""

    # Deferred to the commit, there is no AsyncResult to return yet: callers of ours publish
    # by name (msglog.services.queue) and never read the result.
    def apply_async(  # type: ignore[override]
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        connection = transaction.get_connection()
        if connection.in_atomic_block and not self.app.conf.task_always_eager:
            transaction.on_commit(lambda: super(Task, self).apply_async(args, kwargs, **options))
            return None
        return super().apply_async(args, kwargs, **options)


class CompanyTask(Task):
    """A task on one company's data: its first argument is the company's id, and its body
    runs inside that company's scope."""

    def __call__(self, company_id: int, *args: Any, **kwargs: Any) -> Any:
        with company_scope(company_id):
            return super().__call__(company_id, *args, **kwargs)
