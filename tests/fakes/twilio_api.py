"""A small fake of Twilio's Messages REST API (2010-04-01), served on 127.0.0.1.

The real `twilio` SDK talks to it over HTTP (TWILIO_API_BASE_URL = ``fake.base_url``),
so the provider is tested through the SDK's own requests, paging and error parsing.

What it imitates:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded To, From or
  MessagingServiceSid, Body, StatusCallback) answers 201 with a Message resource shaped
  like Twilio's (sid "SM" + 32 hex, status "queued", or "accepted" with a Messaging
  Service; RFC 2822 dates; date_sent null until it is sent);
* ``GET .../Messages/{MessageSid}.json``, and 404 with code 20404 for an unknown SID;
* ``GET .../Messages.json`` with To, From, DateSent / DateSent< / DateSent> filters,
  newest first, with Twilio's paging envelope (PageSize, Page, next_page_uri);
* HTTP basic auth: anything but (account SID, auth token) answers 401, code 20003.

Test controls:

* ``fake.calls``: every create request's form fields, in order (thread-safe), so a test
  counts how many times the provider was really called;
* ``fake.script[to] = Fault(...)``: how creates to that number misbehave (an error JSON,
  a status, Retry-After, or a connection dropped, reset, left hanging or cut short, with
  or without the message stored first); ``fake.fetch_fault`` / ``fake.list_fault`` do
  the same for lookups;
* ``fake.set_status(sid, "undelivered", error_code=30003)``: Twilio's later news.

A DateSent filter leaves out messages without a date_sent (still queued): that is how
Twilio documents the field ("when the message was sent"), and why the provider does
not search by it.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import socket
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-auth-token-" + "5e" * 8

# How a scripted request ends when it gets no proper answer.
CLOSE = "close"  # read the request, close the socket without a byte of answer
RESET = "reset"  # read the request, reset the connection (RST)
HANG = "hang"  # read the request, never answer (the client's read timeout fires)
CUT_BODY = "cut_body"  # send the headers and half the body, then close


@dataclass
class Fault:
    """One scripted misbehaviour.

    `status` > 0 answers that HTTP status with Twilio's error JSON (`code`, `message`);
    `drop` (CLOSE, RESET, HANG, CUT_BODY) answers nothing proper instead. `record`
    stores the message first, as a Twilio that accepted it and then lost the answer
    would. `times` limits how many requests it applies to (None: all of them).
    """

    status: int = 0
    code: int | None = None
    message: str = ""
    retry_after: str | None = None
    drop: str = ""
    record: bool = False
    times: int | None = None
    body: str | None = None  # a raw body instead of Twilio's error JSON (an HTML 502 page)

    def error_json(self) -> dict[str, Any]:
        code = self.code if self.code is not None else self.status
        return {
            "code": code,
            "message": self.message or f"Error {code}",
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": self.status,
        }


def twilio_error(status: int, code: int, message: str = "", **extra: Any) -> Fault:
    return Fault(status=status, code=code, message=message, **extra)


def rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment, usegmt=True) if moment else None


@dataclass
class StoredMessage:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str
    status: str
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    num_segments: str = "1"
    seq: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def resource(self) -> dict[str, Any]:
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": self.num_segments,
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": self.to,
            "uri": f"{base}.json",
            **self.extra,
        }


class FakeTwilio:
    """The fake API: ``with FakeTwilio() as fake: fake.base_url``."""

    def __init__(
        self, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN
    ):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.script: dict[str, Fault] = {}
        self.fetch_fault: Fault | None = None
        self.list_fault: Fault | None = None
        self._lock = threading.Lock()
        self._calls: list[dict[str, str]] = []
        self._messages: dict[str, StoredMessage] = {}
        self._seq = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[tuple[str, str]] = []  # (method, path?query) of every request

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the fake first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- state --------------------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, str]]:
        """Every create request's form fields, in order (a copy)."""
        with self._lock:
            return copy.deepcopy(self._calls)

    @property
    def messages(self) -> dict[str, dict[str, Any]]:
        """The stored messages' resources by SID (a copy)."""
        with self._lock:
            return {sid: m.resource() for sid, m in self._messages.items()}

    def set_status(
        self,
        sid: str,
        status: str,
        *,
        error_code: int | None = None,
        error_message: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Twilio's later news about a message: what a fetch or a listing shows next."""
        at = at or datetime.now(UTC)
        with self._lock:
            message = self._messages[sid]
            message.status = status
            message.error_code = error_code
            message.error_message = error_message
            message.date_updated = at
            if status in {"sent", "delivered", "undelivered", "read"} and not message.date_sent:
                message.date_sent = at
            return message.resource()

    def add_message(self, to: str, body: str, **fields: Any) -> dict[str, Any]:
        """Store a message as if created earlier (history to search through)."""
        with self._lock:
            return self._store(
                {"To": to, "Body": body, "From": fields.pop("from_", "+15005550006")}, **fields
            ).resource()

    def _store(self, form: dict[str, str], **fields: Any) -> StoredMessage:
        now = fields.pop("date_created", None) or datetime.now(UTC)
        service = form.get("MessagingServiceSid")
        self._seq += 1
        message = StoredMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=form.get("To", ""),
            from_=form.get("From") or None,
            messaging_service_sid=service or None,
            body=form.get("Body", ""),
            status_callback=form.get("StatusCallback", ""),
            status="accepted" if service and not form.get("From") else "queued",
            date_created=now,
            date_updated=now,
            seq=self._seq,
        )
        for name, value in fields.items():
            setattr(message, name, value)
        self._messages[message.sid] = message
        return message

    def _take_fault(self, fault: Fault | None) -> Fault | None:
        """The fault, counted down; None once it has been used up."""
        if fault is None:
            return None
        with self._lock:
            if fault.times is not None:
                if fault.times <= 0:
                    return None
                fault.times -= 1
        return fault


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pooled session expects
    server_version = "FakeTwilio/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def handle_one_request(self) -> None:
        self.dropped = False
        try:
            super().handle_one_request()
        except (OSError, ValueError):
            # A connection this fake dropped on purpose cannot be flushed: expected.
            if not self.dropped:
                raise
            self.close_connection = True

    # --- plumbing -----------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self,
        status: int,
        data: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length).decode() if length else ""
        return {k: v[-1] for k, v in parse_qs(data, keep_blank_values=True).items()}

    def _authorized(self, account_sid: str) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        fake = self.fake
        return (
            secrets.compare_digest(user, fake.account_sid)
            and secrets.compare_digest(password, fake.auth_token)
            and account_sid == fake.account_sid
        )

    def _unauthorized(self) -> None:
        self._send_json(
            401,
            {
                "code": 20003,
                "message": "Authentication Error - invalid username",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401,
            },
            {"WWW-Authenticate": 'Basic realm="Twilio API"'},
        )

    def _misbehave(self, fault: Fault) -> None:
        """Answer as `fault` says: an error, or no proper answer at all."""
        self.dropped = bool(fault.drop)
        if fault.drop == CLOSE:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault.drop == RESET:
            self.close_connection = True
            # Linger 0 makes close() send RST instead of FIN; the file wrappers go first,
            # or close() would wait for them and the server's shutdown(SHUT_WR) send FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.wfile.close()
            self.rfile.close()
            self.connection.close()
        elif fault.drop == HANG:
            self.close_connection = True
            self.fake._stopping.wait(30)
        elif fault.drop == CUT_BODY:
            self.close_connection = True
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "400")
            self.end_headers()
            self.wfile.write(b'{"sid": "SM')
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            if fault.body is not None:
                self._send(fault.status, fault.body.encode(), "text/html", headers)
            else:
                self._send_json(fault.status, fault.error_json(), headers)

    def _route(self) -> tuple[str, str, str] | None:
        """(account_sid, message_sid or "", query) for a Messages URL, else None."""
        parts = urlsplit(self.path)
        pieces = parts.path.strip("/").split("/")
        if len(pieces) < 4 or pieces[0] != API_VERSION or pieces[1] != "Accounts":
            return None
        if pieces[3] == "Messages.json" and len(pieces) == 4:
            return pieces[2], "", parts.query
        if pieces[3] == "Messages" and len(pieces) == 5 and pieces[4].endswith(".json"):
            return pieces[2], pieces[4].removesuffix(".json"), parts.query
        return None

    def _not_found(self) -> None:
        self._send_json(
            404,
            {
                "code": 20404,
                "message": f"The requested resource {urlsplit(self.path).path} was not found",
                "more_info": "https://www.twilio.com/docs/errors/20404",
                "status": 404,
            },
        )

    # --- verbs --------------------------------------------------------------------------

    def do_POST(self) -> None:
        fake = self.fake
        form = self._read_form()  # always read: the client has sent it whole
        with fake._lock:
            fake.requests.append(("POST", self.path))
        route = self._route()
        if route is None or route[1]:
            return self._not_found()
        if not self._authorized(route[0]):
            return self._unauthorized()
        with fake._lock:
            fake._calls.append(form)
        fault = fake._take_fault(fake.script.get(form.get("To", "")))
        if fault is not None:
            if fault.record:
                with fake._lock:
                    fake._store(form)
            return self._misbehave(fault)
        if not form.get("To"):
            return self._misbehave(twilio_error(400, 21604, "A 'To' phone number is required."))
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._misbehave(twilio_error(400, 21603, "A 'From' phone number is required."))
        if not form.get("Body") and not form.get("MediaUrl"):
            return self._misbehave(twilio_error(400, 21602, "Message body is required."))
        with fake._lock:
            message = fake._store(form)
            resource = message.resource()
        return self._send_json(201, resource)

    def do_GET(self) -> None:
        fake = self.fake
        with fake._lock:
            fake.requests.append(("GET", self.path))
        route = self._route()
        if route is None:
            return self._not_found()
        account_sid, sid, query = route
        if not self._authorized(account_sid):
            return self._unauthorized()
        if sid:
            fault = fake._take_fault(fake.fetch_fault)
            if fault is not None:
                return self._misbehave(fault)
            with fake._lock:
                message = fake._messages.get(sid)
                resource = message.resource() if message else None
            if resource is None:
                return self._not_found()
            return self._send_json(200, resource)
        fault = fake._take_fault(fake.list_fault)
        if fault is not None:
            return self._misbehave(fault)
        return self._send_json(200, self._page(account_sid, query))

    def _page(self, account_sid: str, query: str) -> dict[str, Any]:
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        with self.fake._lock:
            found = [m for m in self.fake._messages.values() if _matches(m, params)]
            # Newest first, as Twilio lists them.
            found.sort(key=lambda m: (m.date_created, m.seq), reverse=True)
            resources = [m.resource() for m in found]
        page_size = max(1, min(1000, int(params.get("PageSize") or 50)))
        page = max(0, int(params.get("Page") or 0))
        chunk = resources[page * page_size : (page + 1) * page_size]
        path = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        filters = {k: v for k, v in params.items() if k not in {"Page", "PageSize", "PageToken"}}

        def uri(number: int) -> str:
            token = {"PageToken": f"PA{number}"} if number else {}
            return (
                f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': number, **token})}"
            )

        more = (page + 1) * page_size < len(resources)
        return {
            "messages": chunk,
            "end": page * page_size + max(len(chunk) - 1, 0),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": uri(page - 1) if page else None,
            "start": page * page_size,
            "uri": f"{path}?{query}" if query else path,
        }


def _parse_when(text: str) -> datetime | date:
    """Twilio's DateSent filter values: YYYY-MM-DD or an ISO 8601 time."""
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _compare(sent: datetime, bound: datetime | date) -> int:
    left: datetime | date = sent if isinstance(bound, datetime) else sent.date()
    return (left > bound) - (left < bound)  # type: ignore[operator]


def _matches(message: StoredMessage, params: dict[str, str]) -> bool:
    if "To" in params and message.to != params["To"]:
        return False
    if "From" in params and message.from_ != params["From"]:
        return False
    for key, accept in (("DateSent", {0}), ("DateSent<", {-1, 0}), ("DateSent>", {0, 1})):
        if key in params:
            if message.date_sent is None:
                return False
            if _compare(message.date_sent, _parse_when(params[key])) not in accept:
                return False
    return True
