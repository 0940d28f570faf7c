"""A lean WSGI path for Twilio's status callbacks; every other request goes to Django.

Status callbacks are the one request that arrives by the thousand a second (two or more
per SMS sent), and Django's middleware stack costs more CPU than the callback itself:
sessions, authentication, messages, CSRF, htmx and the tenant scope all serve signed-in
people. A callback is authenticated by its Twilio signature alone and touches no company
data until a worker applies it, so this path hands the request straight to the same view
(:func:`msglog.providers.twilio.webhooks.status_callback`): the size limit before reading, the
form content type, the signature over ``PUBLIC_BASE_URL`` + path + query, a MessageSid,
and the durable INSERT before the 204 are exactly the view's, as are its 4xx answers.
Nothing looks at the Host header, so skipping ALLOWED_HOSTS and the HTTPS redirect
changes nothing a forger could use: the signature is over our canonical https URL.

Database connections are kept across requests as Django keeps them (``CONN_MAX_AGE``),
without Django's per-request health-check query: a connection the server dropped
(restart, idle timeout) fails the INSERT, which is safe to run again (the report's
content key makes it insert once), so the view runs once more on a fresh connection.
Only a lost connection is retried: a statement timeout or "too many clients" means the
database is overloaded, and running the view again would only add to its load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import cast

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from msglog.providers.twilio.webhooks import status_callback


class LeanWebhookDispatch:
    """WSGI: POSTs to the Twilio status URL go to its view directly, the rest to `app`."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.status_path = reverse("twilio-status")  # PATH_INFO, below any SCRIPT_NAME

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.status_path or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            response = answer(WSGIRequest(environ))
        finally:
            _release_connections()
        body = response.content
        if not response.has_header("Content-Length"):  # as CommonMiddleware would
            response["Content-Length"] = str(len(body))
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [
                *response.items(),
                *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
            ],
        )
        return [body]


def _status_callback(request: HttpRequest) -> HttpResponse:
    try:
        return status_callback(request)
    except (InterfaceError, OperationalError) as error:
        if not _connection_lost(error):
            raise
        for conn in connections.all(initialized_only=True):
            conn.close()  # a fresh one is made on use
        return status_callback(request)  # idempotent: the report inserts once


#: The view's answer, with Django's own answers to exceptions: 400 for a suspicious
#: request (too many fields), 500 (logged to django.request) for a failure, so Twilio
#: may retry.
answer = cast(  # the stub covers async views too; a sync view's wrapper answers in kind
    Callable[[HttpRequest], HttpResponse], convert_exception_to_response(_status_callback)
)


def _connection_lost(error: InterfaceError | OperationalError) -> bool:
    """Whether `error` is a lost connection, worth one more try: an InterfaceError
    (psycopg's "connection is closed"), or a connection that no longer answers. A
    connection never made ("too many clients") or still working (a statement timeout) is
    not; nor is anything inside a transaction, which must not be left half done (tests
    run in one)."""
    opened = connections.all(initialized_only=True)
    if any(conn.in_atomic_block for conn in opened):
        return False
    if isinstance(error, InterfaceError):
        return True
    return any(conn.connection is not None and not conn.is_usable() for conn in opened)


def _release_connections() -> None:
    """What Django does as a request finishes (``close_old_connections``, i.e.
    ``BaseDatabaseWrapper.close_if_unusable_or_obsolete``): close a connection whose
    autocommit was left changed, one past CONN_MAX_AGE, or one that saw an error and is
    no longer usable (an errored one that still answers is kept, so a statement timeout
    under load does not add a reconnect). Unlike Django it does not clear
    ``health_check_done``, which would make the next request's first cursor run a
    health-check query."""
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.in_atomic_block:
            continue
        if conn.errors_occurred and conn.get_autocommit() and conn.is_usable():
            conn.errors_occurred = False
        if (
            conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]
            or conn.errors_occurred
            or (conn.close_at is not None and now >= conn.close_at)
        ):
            conn.close()
