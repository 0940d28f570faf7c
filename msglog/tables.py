"""The message table shared by every page that lists messages."""

from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html


class MessageTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="Date", format="M j, H:i")
    channel = tables.Column(verbose_name="Delivery")
    recipient = tables.Column(
        verbose_name="Recipient", accessor="to_address", order_by=("to_name", "to_address")
    )
    message_type = tables.Column(verbose_name="Type")
    status = tables.Column(verbose_name="Sending Status")
    template = tables.Column(verbose_name="Template", accessor="template__name")
    credits = tables.Column(verbose_name="Credits")
    company = tables.Column(verbose_name="Company", accessor="company__name")

    class Meta:
        attrs = {"class": "table log-table"}
        fields = ()
        sequence = (
            "channel",
            "created_at",
            "message_type",
            "recipient",
            "status",
            "template",
            "credits",
            "company",
        )
        order_by = ("-created_at",)
        row_attrs = {
            "data-href": lambda record: reverse(
                "message-detail", kwargs={"public_id": record.public_id}
            ),
            "class": lambda record: "row-failed" if record.is_failed else "",
        }
        empty_text = "No messages match these filters."

    def __init__(self, *args, show_company: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not show_company:
            self.columns.hide("company")

    def render_recipient(self, record) -> str:
        return format_html(
            '<a href="{}">{}</a><br><small>{}</small>',
            reverse("message-detail", kwargs={"public_id": record.public_id}),
            record.to_name or record.to_address,
            record.to_address if record.to_name else "",
        )

    def render_status(self, record) -> str:
        return format_html(
            '<span class="badge status-{}">{}</span>', record.status, record.get_status_display()
        )

    def render_channel(self, record) -> str:
        return record.get_channel_display()

    def render_message_type(self, record) -> str:
        return record.get_message_type_display()
