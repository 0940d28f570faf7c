"""Tables of the settings pages: the SMS credit ledger and the audit log."""

from __future__ import annotations

import django_tables2 as tables
from django.utils.html import format_html

from companies.models import AuditEntry, CreditLedgerEntry


class LedgerTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="When", format="Y-m-d H:i")
    kind = tables.Column(verbose_name="Movement")
    amount = tables.Column(verbose_name="Credits", attrs={"td": {"class": "num"}})
    balance_after = tables.Column(verbose_name="Balance after", attrs={"td": {"class": "num"}})
    message = tables.Column(verbose_name="Message", orderable=False, empty_values=())
    note = tables.Column(verbose_name="Note", orderable=False)
    created_by = tables.Column(verbose_name="By", orderable=False)

    class Meta:
        model = CreditLedgerEntry
        fields = ("created_at", "kind", "amount", "balance_after", "message", "note", "created_by")
        attrs = {"class": "table ledger-table"}
        orderable = False
        empty_text = "No credit movements yet."

    def render_amount(self, value: int) -> str:
        return f"{value:+,}"

    def render_message(self, record: CreditLedgerEntry):
        message = record.message  # None without a message id, and no query then
        if message is None:
            return "—" if record.kind != CreditLedgerEntry.Kind.CHARGE else "deleted (retention)"
        return format_html('<a href="{}">{}</a>', message.get_absolute_url(), message.public_id)


class AuditTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="When", format="Y-m-d H:i:s")
    actor_name = tables.Column(verbose_name="Who", default="system")
    action = tables.Column(verbose_name="Action")
    summary = tables.Column(verbose_name="What")

    class Meta:
        model = AuditEntry
        fields = ("created_at", "actor_name", "action", "summary")
        attrs = {"class": "table audit-table"}
        orderable = False
        empty_text = "Nothing recorded for these filters."
