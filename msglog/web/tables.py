"""The message table shared by every page that lists messages (Logs, contact, batch)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

import django_tables2 as tables
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from msglog.rules.kinds import Category, Channel, MessageType
from msglog.rules.statuses import Status

if TYPE_CHECKING:
    from msglog.models import Message

# Columns a user may hide, in display order, with their headings.
OPTIONAL_COLUMNS: dict[str, str] = {
    "channel": "Delivery",
    "created_at": "Date",
    "category": "Type",
    "message_type": "Message Type",
    "template": "Template",
    "credits": "Credits",
    "batch": "Batch",
    "company": "Company",
}
ALWAYS_SHOWN = ("recipient", "status")
DEFAULT_HIDDEN = frozenset({"batch"})


class MessageTable(tables.Table):
    channel = tables.Column(verbose_name="Delivery")
    created_at = tables.DateTimeColumn(verbose_name="Date", format="M j, H:i")
    category = tables.Column(verbose_name="Type")
    recipient = tables.Column(
        verbose_name="Recipient", accessor="to_address", order_by=("to_name", "to_address")
    )
    status = tables.Column(verbose_name="Sending Status")
    message_type = tables.Column(verbose_name="Message Type")
    template = tables.Column(
        verbose_name="Template", accessor="template__name", order_by=("template__name",)
    )
    credits = tables.Column(verbose_name="Credits", attrs={"td": {"class": "num"}})
    batch = tables.Column(verbose_name="Batch", accessor="batch__name", order_by=("batch__name",))
    company = tables.Column(
        verbose_name="Company", accessor="company__name", order_by=("company__name",)
    )

    class Meta:
        attrs = {"class": "table log-table"}
        template_name = "msglog/table.html"
        fields = ()
        sequence = (
            "channel",
            "created_at",
            "category",
            "recipient",
            "status",
            "message_type",
            "template",
            "credits",
            "batch",
            "company",
        )
        order_by = ("-created_at",)
        empty_text = "No messages match these filters."

    def __init__(
        self, *args, hidden: frozenset[str] = DEFAULT_HIDDEN, show_company: bool = False, **kwargs
    ):
        super().__init__(*args, **kwargs)
        for name in OPTIONAL_COLUMNS:
            if name in hidden or (name == "company" and not show_company):
                self.columns.hide(name)

    def body_html(self) -> SafeString:
        """The page's rows, rendered in one pass.

        django-tables2 renders each cell through its column machinery, and format_html
        costs a lazy-aware escape per argument: together most of a page's time at 50
        rows. These cells are plain functions of the message; every text is escaped
        with html.escape.
        """
        names = [column.name for column in self.columns]
        cells = [CELLS[name] for name in names]
        rows = []
        for row in self.paginated_rows:
            message = row.record
            message.url = message_url(message.public_id)
            url = escape(message.url)
            css = "row-failed" if message.is_failed else ""
            rows.append(
                f'<tr class="{css}" data-href="{url}" hx-get="{url}" hx-target="#panel" '
                f'hx-swap="innerHTML">{"".join(cell(message) for cell in cells)}</tr>'
            )
        return mark_safe("".join(rows))  # noqa: S308 — every text is escaped in its cell


@functools.cache
def _url_pattern(name: str, kwarg: str) -> str:
    return reverse(name, kwargs={kwarg: 123456789}).replace("123456789", "{}")


def message_url(public_id: str) -> str:
    """A message's URL without resolving the URLconf for every row."""
    return _message_url_pattern().replace("PUBLIC_ID", public_id)


@functools.cache
def _message_url_pattern() -> str:
    return reverse("message-detail", kwargs={"public_id": "PUBLIC_ID"})


def _td(text, css: str = "") -> str:
    """A cell of plain text (escaped here)."""
    return f'<td class="{css}">{escape(str(text))}</td>' if css else f"<td>{escape(str(text))}</td>"


CHANNEL_LABELS = dict(Channel.choices)
CATEGORY_LABELS = dict(Category.choices)
TYPE_LABELS = dict(MessageType.choices)
STATUS_LABELS = dict(Status.choices)


def _date(message) -> str:
    when = timezone.localtime(message.created_at)
    return f"<td>{when:%b} {when.day}, {when:%H:%M}</td>"


def _recipient(message) -> str:
    name = message.to_name or message.to_address
    under = escape(message.to_address) if message.to_name else ""
    return (
        f'<td><a href="{escape(message.url)}" class="recipient">{escape(name)}</a>'
        f"<br><small>{under}</small></td>"
    )


def _status(message) -> str:
    label = STATUS_LABELS.get(message.status, message.status)
    status = escape(message.status)
    return f'<td><span class="badge status-{status}">{escape(str(label))}</span></td>'


def _template(message) -> str:
    if message.template_id is None:
        return "<td>—</td>"
    url = _url_pattern("template-detail", "template_id").format(message.template_id)
    return f'<td><a href="{url}">{escape(message.template.name)}</a></td>'


def _batch(message) -> str:
    if message.batch_id is None:
        return "<td>—</td>"
    url = _url_pattern("batch-detail", "batch_id").format(message.batch_id)
    return f'<td><a href="{url}">{escape(message.batch.name)}</a></td>'


CELLS: dict[str, Callable[[Message], str]] = {
    "channel": lambda m: _td(CHANNEL_LABELS.get(m.channel, m.channel)),
    "created_at": _date,
    "category": lambda m: _td(CATEGORY_LABELS.get(m.category, m.category)),
    "recipient": _recipient,
    "status": _status,
    "message_type": lambda m: _td(TYPE_LABELS.get(m.message_type, m.message_type)),
    "template": _template,
    "credits": lambda m: _td(m.credits, "num"),
    "batch": _batch,
    "company": lambda m: _td(m.company.name),
}


def hidden_columns(choice: list[str] | None) -> frozenset[str]:
    """The optional columns a choice of visible ones leaves hidden (None: the defaults)."""
    if choice is None:
        return DEFAULT_HIDDEN
    return frozenset(OPTIONAL_COLUMNS) - set(choice)
