"""The message table shared by every page that lists messages (Logs, contact, batch)."""

from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

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
        row_attrs = {
            "data-href": lambda record: record.get_absolute_url(),
            "hx-get": lambda record: record.get_absolute_url(),
            "hx-target": "#panel",
            "hx-swap": "innerHTML",
            "class": lambda record: "row-failed" if record.is_failed else "",
        }
        empty_text = "No messages match these filters."

    def __init__(
        self, *args, hidden: frozenset[str] = DEFAULT_HIDDEN, show_company: bool = False, **kwargs
    ):
        super().__init__(*args, **kwargs)
        for name in OPTIONAL_COLUMNS:
            if name in hidden or (name == "company" and not show_company):
                self.columns.hide(name)

    def render_recipient(self, record) -> str:
        return format_html(
            '<a href="{}" class="recipient">{}</a><br><small>{}</small>',
            record.get_absolute_url(),
            record.to_name or record.to_address,
            record.to_address if record.to_name else "",
        )

    def render_status(self, record) -> str:
        return format_html(
            '<span class="badge status-{}">{}</span>', record.status, record.get_status_display()
        )

    def render_channel(self, record) -> str:
        return record.get_channel_display()

    def render_category(self, record) -> str:
        return record.get_category_display()

    def render_message_type(self, record) -> str:
        return record.get_message_type_display()

    def render_template(self, record) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("template-detail", kwargs={"template_id": record.template_id}),
            record.template.name,
        )

    def render_batch(self, record) -> str:
        return format_html(
            '<a href="{}?batch={}&amp;period=all">{}</a>',
            reverse("logs"),
            record.batch_id,
            record.batch.name,
        )


def hidden_columns(choice: list[str] | None) -> frozenset[str]:
    """The optional columns a choice of visible ones leaves hidden (None: the defaults)."""
    if choice is None:
        return DEFAULT_HIDDEN
    return frozenset(OPTIONAL_COLUMNS) - set(choice)
