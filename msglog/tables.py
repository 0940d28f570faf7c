"""The message table shared by every page that lists messages (Logs, contact, batch)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import django_tables2 as tables
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

# Columns a user may hide, in display order, with their headings (SPEC §4).
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

        django-tables2 renders each cell through its column machinery, which costs most of
        a page's time at 50 rows; these cells are plain functions of the message.
        """
        names = [column.name for column in self.columns]
        rows = []
        for row in self.paginated_rows:
            message = row.record
            message.url = message_url(message.public_id)
            cells = "".join(CELLS[name](message) for name in names)
            rows.append(
                format_html(
                    '<tr class="{}" data-href="{}" hx-get="{}" hx-target="#panel" '
                    'hx-swap="innerHTML">{}</tr>',
                    "row-failed" if message.is_failed else "",
                    message.url,
                    message.url,
                    mark_safe(cells),  # noqa: S308 — every cell is built by format_html
                )
            )
        return mark_safe("".join(rows))  # noqa: S308 — every row is built by format_html


@functools.cache
def _message_url_pattern() -> str:
    return reverse("message-detail", kwargs={"public_id": "PUBLIC_ID"})


def message_url(public_id: str) -> str:
    """A message's URL without resolving the URLconf for every row."""
    return _message_url_pattern().replace("PUBLIC_ID", public_id)


def _td(content, css: str = "") -> str:
    return (
        format_html('<td class="{}">{}</td>', css, content)
        if css
        else format_html("<td>{}</td>", content)
    )


def _date(message) -> str:
    return _td(dateformat.format(timezone.localtime(message.created_at), "M j, H:i"))


def _recipient(message) -> str:
    return _td(
        format_html(
            '<a href="{}" class="recipient">{}</a><br><small>{}</small>',
            message.get_absolute_url(),
            message.to_name or message.to_address,
            message.to_address if message.to_name else "",
        )
    )


def _status(message) -> str:
    return _td(
        format_html(
            '<span class="badge status-{}">{}</span>', message.status, message.get_status_display()
        )
    )


def _template(message) -> str:
    if message.template_id is None:
        return _td("—")
    url = reverse("template-detail", kwargs={"template_id": message.template_id})
    return _td(format_html('<a href="{}">{}</a>', url, message.template.name))


def _batch(message) -> str:
    if message.batch_id is None:
        return _td("—")
    url = reverse("batch-detail", kwargs={"batch_id": message.batch_id})
    return _td(format_html('<a href="{}">{}</a>', url, message.batch.name))


CELLS: dict[str, Callable[[object], str]] = {
    "channel": lambda m: _td(m.get_channel_display()),
    "created_at": _date,
    "category": lambda m: _td(m.get_category_display()),
    "recipient": _recipient,
    "status": _status,
    "message_type": lambda m: _td(m.get_message_type_display()),
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
