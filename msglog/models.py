"""The message log: Message, StatusEvent, Batch, Suppression.

Every model here is company-owned and scoped (django-scopes): a query outside a
company scope raises. Indexes lead with company and created time, matching the
Logs page's filters; the sequential key never appears in a URL (public_id does).
"""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from companies.managers import CompanyScopedManager
from msglog.rules.kinds import Category, Channel, MessageType
from msglog.rules.statuses import FAILED_GROUP, Status

if TYPE_CHECKING:
    from msglog.rules.errors import Explanation

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _time_prefix(at: datetime | None) -> str:
    """8 characters that sort (as bytes and in any collation) by time: centiseconds since
    1970 in lower-case base 36, good until the year 2863."""
    n = int((at or timezone.now()).timestamp() * 100)
    digits = []
    for _ in range(8):
        n, digit = divmod(n, 36)
        digits.append(_BASE36[digit])
    return "".join(reversed(digits))


def new_public_ids(count: int, at: datetime | None = None) -> list[str]:
    """`count` unguessable ids for URLs: a time prefix, then 16 URL-safe random characters
    (96 bits, as `secrets.token_urlsafe(12)` gives). They say nothing of the sequential
    key or of how many messages a company sends; the prefix tells when the message was
    made, which every page showing the id shows anyway.

    The prefix makes new ids land at the end of the unique index instead of on a random
    page of it, as ULIDs and UUIDv7 do: a 100,000-message send then dirties a few hundred
    index pages rather than most of them (and with them their full-page WAL images).
    """
    prefix = _time_prefix(at)
    # 12 random bytes are exactly 16 base64 characters: one encoding for the lot.
    random = base64.urlsafe_b64encode(os.urandom(12 * count)).decode()
    return [prefix + random[i : i + 16] for i in range(0, 16 * count, 16)]


def new_public_id() -> str:
    """One id of :func:`new_public_ids` (24 characters)."""
    return new_public_ids(1)[0]


class Batch(models.Model):
    """One bulk operation: a template sent to many recipients, with running counters."""

    class State(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"
        FINISHED = "finished", "Finished"

    company = models.ForeignKey("companies.Company", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    template = models.ForeignKey(
        "templates_app.MessageTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batches",
    )
    template_version = models.ForeignKey(
        "templates_app.MessageTemplateVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.RUNNING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    restarted_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="restarts"
    )
    created_at = models.DateTimeField(default=timezone.now)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    # Counters kept incrementally as messages move; never counted per page view.
    total_count = models.PositiveIntegerField(default=0)
    sent_count = models.PositiveIntegerField(default=0)
    delivered_count = models.PositiveIntegerField(default=0)
    opened_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    canceled_count = models.PositiveIntegerField(default=0)
    # Bulk sends: waiting messages, and recipients still to be recorded.
    pending_count = models.PositiveIntegerField(
        default=0, help_text="Messages queued, scheduled or being handed over"
    )
    planned_count = models.PositiveIntegerField(
        default=0, help_text="Recipients the batch was created for"
    )

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["company", "-created_at"], name="batch_company_time")]

    def __str__(self) -> str:
        return self.name

    @property
    def progress(self) -> str:
        """'13/18': delivered of total, as the Batches page shows it."""
        return f"{self.delivered_count}/{self.total_count}"


class BatchUpload(models.Model):
    """Recipients of a batch in the making: a checked CSV upload or a choice of contacts.

    Created when the admin uploads (with the validation report), it becomes the batch's
    source when confirmed; workers then record its rows as messages in chunks.
    """

    company = models.ForeignKey("companies.Company", on_delete=models.CASCADE, related_name="+")
    batch = models.OneToOneField(
        Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="upload"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    name = models.CharField(max_length=200)
    filename = models.CharField(max_length=200, blank=True)
    template_version = models.ForeignKey(
        "templates_app.MessageTemplateVersion", on_delete=models.CASCADE, related_name="+"
    )
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # [address, name, contact id or None, {placeholder: value}] per recipient to send to;
    # the address as sending.normalize_address made it (checked, not parsed again).
    rows = models.JSONField(default=list)
    report = models.JSONField(default=dict, blank=True)
    recorded_rows = models.PositiveIntegerField(default=0, help_text="Rows already messages")
    created_at = models.DateTimeField(default=timezone.now)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({len(self.rows)} recipients)"


# The condition of the provider-id index. Queries spell it out beside their `IN` list:
# PostgreSQL proves a partial index applies from the list itself only up to 100 ids, and
# a longer list would read the whole message table.
HAS_PROVIDER_ID = ~models.Q(provider_message_id="")


class Message(models.Model):
    """One outgoing SMS or email, with exactly what was sent and where it stands."""

    # Unique by a constraint (Meta), not `unique=True`: that would also give it a LIKE
    # index (varchar_pattern_ops) that no query uses and every insert pays for.
    public_id = models.CharField(max_length=24, default=new_public_id, editable=False)
    company = models.ForeignKey(
        "companies.Company", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    to_address = models.CharField(max_length=254, help_text="E.164 phone number or email")
    to_name = models.CharField(max_length=200, blank=True)
    contact = models.ForeignKey(
        "companies.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    category = models.CharField(max_length=20, choices=Category.choices)
    message_type = models.CharField(max_length=30, choices=MessageType.choices)
    template = models.ForeignKey(
        "templates_app.MessageTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        db_index=False,
    )
    template_version = models.ForeignKey(
        "templates_app.MessageTemplateVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    subject = models.CharField(max_length=300, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    provider = models.CharField(max_length=30, blank=True)
    provider_message_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED)
    status_reason = models.CharField(max_length=300, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    segments = models.PositiveSmallIntegerField(default=0)
    encoding = models.CharField(max_length=10, blank=True, help_text="GSM-7 or UCS-2 for SMS")
    credits = models.PositiveIntegerField(default=0, help_text="SMS credits charged")
    batch = models.ForeignKey(
        Batch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        db_index=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    idempotency_key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, help_text="Queued at")
    scheduled_for = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["company", "-created_at", "-id"], name="msg_company_time"),
            models.Index(fields=["company", "status", "-created_at"], name="msg_company_status"),
            models.Index(fields=["company", "channel", "-created_at"], name="msg_company_channel"),
            models.Index(
                fields=["company", "message_type", "-created_at"], name="msg_company_type"
            ),
            models.Index(fields=["company", "to_address"], name="msg_company_address"),
            models.Index(fields=["template", "-created_at"], name="msg_template_time"),
            models.Index(fields=["contact", "-created_at"], name="msg_contact_time"),
            models.Index(fields=["batch", "status"], name="msg_batch_status"),
            models.Index(fields=["-created_at", "-id"], name="msg_time"),
            models.Index(
                fields=["provider_message_id"],
                name="msg_provider_id",
                condition=HAS_PROVIDER_ID,
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["public_id"], name="msglog_message_public_id_key"),
            models.UniqueConstraint(
                fields=["company", "idempotency_key"],
                name="msg_idempotency_key",
                condition=~models.Q(idempotency_key=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.to_address}"

    def get_absolute_url(self) -> str:
        return reverse("message-detail", kwargs={"public_id": self.public_id})

    @property
    def is_failed(self) -> bool:
        return self.status in FAILED_GROUP


class StatusEvent(models.Model):
    """One report about a message: ours, a provider's webhook, or a poll result."""

    class Source(models.TextChoices):
        SYSTEM = "system", "Message Log"
        SIMULATOR = "simulator", "Simulator"
        TWILIO = "twilio", "Twilio"
        SMTP = "smtp", "SMTP"
        ANYMAIL = "anymail", "Email provider"
        POLL = "poll", "Provider poll"
        USER = "user", "User action"
        TRACKING = "tracking", "Open/click tracking"

    company = models.ForeignKey(
        "companies.Company", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    # A Status value, or blank for a report that does not move the status (a soft
    # bounce, a retried transient error); `event` keeps the provider's own word.
    status = models.CharField(max_length=24, choices=Status.choices, blank=True)
    event = models.CharField(max_length=40, blank=True)
    occurred_at = models.DateTimeField(help_text="When the provider says it happened")
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.SYSTEM)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    reason = models.CharField(max_length=300, blank=True)
    provider_event_id = models.CharField(max_length=100, blank=True)
    dedupe_key = models.CharField(max_length=64)
    raw_payload = models.JSONField(default=dict, blank=True)

    # Not columns: the message detail page sets them on the events its timeline shows.
    explanation: Explanation | None
    payload_json: str

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "dedupe_key"], name="event_dedupe"),
        ]

    def __str__(self) -> str:
        return f"{self.status or self.event} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class Suppression(models.Model):
    """An address the company must not send to on one channel, and why."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
        SMS_STOP = "sms_stop", "SMS STOP"
        REPEATED_SOFT_BOUNCE = "repeated_soft_bounce", "Repeated soft bounces"
        MANUAL = "manual", "Added by a user"

    company = models.ForeignKey(
        "companies.Company", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=254)
    reason = models.CharField(max_length=30, choices=Reason.choices)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "channel", "address"], name="one_suppression_per_address"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"


class DailyRollup(models.Model):
    """Messages per company, day, channel, category, type and status, kept incrementally.

    Stats cards and the histogram read these (a few hundred rows a month) instead of
    counting the log. `day` is the message's creation date in UTC. Counts move with
    the message: a status change takes one from the old bucket and adds one to the new.
    """

    company = models.ForeignKey(
        "companies.Company", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    channel = models.CharField(max_length=10, choices=Channel.choices)
    category = models.CharField(max_length=20, choices=Category.choices)
    message_type = models.CharField(max_length=30, choices=MessageType.choices)
    status = models.CharField(max_length=24, choices=Status.choices)
    messages = models.IntegerField(default=0)
    segments = models.IntegerField(default=0)
    credits = models.IntegerField(default=0)

    objects = CompanyScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["company", "day", "channel", "category", "message_type", "status"],
                name="one_rollup_per_bucket",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.channel} {self.status}: {self.messages}"


class ColumnPreference(models.Model):
    """The columns a user chose to see on one kind of table (kept across visits)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    table = models.CharField(max_length=50)
    columns = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "table"], name="one_column_choice_per_table")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.table}"


class SimulatedSend(models.Model):
    """The simulator provider's own record of every message handed to it.

    It plays the part of a real provider's database: reconciliation asks it what it
    received, and tests count provider calls in it. Not company data: it is keyed by
    the provider message id and our public id, as a provider would know them.
    """

    provider_message_id = models.CharField(max_length=64, unique=True)
    public_id = models.CharField(max_length=24, db_index=True)
    company_id = models.BigIntegerField(db_index=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    to_address = models.CharField(max_length=254)
    accepted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["accepted_at", "id"]

    def __str__(self) -> str:
        return f"{self.provider_message_id} to {self.to_address}"


# --- Provider reports as received (msglog/providers) ---------------------------------------


class InboundReport(models.Model):
    """One report from outside (a provider's webhook, an inbound SMS, our own open or
    click tracking), stored durably the moment it is authenticated and applied to its
    message later, in batches, by a worker (msglog/services/inbound_reports.py).

    Not company data yet when it arrives: the company is known only once the report is
    matched to a message, so this is platform data like SimulatedSend, keyed by what the
    provider knows (its message id, the recipient address) and indexed on both, so
    erasure and retention can delete by address. `dedupe_key` is the report's content
    key, so a provider's re-delivery of the same report is stored once.
    """

    class Kind(models.TextChoices):
        STATUS = "status", "Status report"
        INBOUND = "inbound", "Inbound SMS"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        APPLIED = "applied", "Applied to its message"
        ORPHAN = "orphan", "No such message (yet)"
        IGNORED = "ignored", "Nothing to apply"

    source = models.CharField(max_length=20)  # a StatusEvent.Source value
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.STATUS)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=300, blank=True)
    provider_message_id = models.CharField(max_length=100, blank=True)
    public_id = models.CharField(max_length=24, blank=True)  # ours, when the report names it
    address = models.CharField(max_length=254, blank=True)  # the recipient (inbound: sender)
    status = models.CharField(max_length=24, blank=True)  # a Status value, or ""
    event = models.CharField(max_length=40, blank=True)  # the provider's own word
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    provider_event_id = models.CharField(max_length=100, blank=True)
    dedupe_key = models.CharField(max_length=64, unique=True)
    payload = models.JSONField(default=dict, blank=True)
    company_id = models.BigIntegerField(null=True, blank=True)  # once matched
    message_id = models.BigIntegerField(null=True, blank=True)  # once matched
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], name="report_pending", condition=models.Q(state="pending")),
            models.Index(
                fields=["provider_message_id"],
                name="report_orphan",
                condition=models.Q(state="orphan"),
            ),
            models.Index(fields=["provider_message_id"], name="report_provider_id"),
            models.Index(fields=["address"], name="report_address"),
            models.Index(fields=["received_at"], name="report_received"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.event or self.status} for {self.provider_message_id}"


# --- Exports ------------------------------------------------------------------


class Export(models.Model):
    """One CSV or Excel file of filtered messages, made in the background (msglog.services.exports).

    Small exports stream straight to the browser and leave only an audit entry; big ones
    become an Export: a file under MEDIA_ROOT that belongs to the company, is listed on
    the Exports page and is deleted once `expires_at` passes (or by retention).
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting"
        RUNNING = "running", "Writing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    public_id = models.CharField(max_length=24, unique=True, default=new_public_id, editable=False)
    company = models.ForeignKey("companies.Company", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file_format = models.CharField(max_length=10)
    source = models.CharField(max_length=20, help_text="The view exported: logs, failed, ...")
    source_id = models.BigIntegerField(null=True, blank=True, help_text="Its contact or batch")
    query = models.TextField(blank=True, help_text="The view's query string")
    filters = models.JSONField(default=dict, blank=True, help_text="The filters, as applied")
    include_content = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    rows_expected = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    file_path = models.CharField(max_length=300, blank=True, help_text="Under MEDIA_ROOT")
    file_name = models.CharField(max_length=200, blank=True, help_text="The download's name")
    file_size = models.BigIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    objects = CompanyScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["company", "-created_at"], name="export_company_time"),
            models.Index(fields=["expires_at"], name="export_expiry"),
        ]

    def __str__(self) -> str:
        return self.file_name or f"{self.file_format} export {self.public_id}"

    def get_absolute_url(self) -> str:
        return reverse("export-detail", kwargs={"public_id": self.public_id})

    @property
    def percent(self) -> int:
        if self.state == self.State.READY:
            return 100
        if not self.rows_expected:
            return 0
        return min(99, self.rows_written * 100 // self.rows_expected)

    @property
    def is_finished(self) -> bool:
        return self.state in {self.State.READY, self.State.FAILED}

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
