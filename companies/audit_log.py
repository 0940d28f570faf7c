"""The audit log page's filters and its CSV export."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

import django_filters
from django import forms

from companies.models import AuditEntry
from msglog.rules.cells import neutralize
from msglog.rules.days import end_of_day, start_of_day

CSV_COLUMNS = ["when (UTC)", "who", "action", "what", "details"]


class AuditFilter(django_filters.FilterSet):
    action = django_filters.MultipleChoiceFilter(
        choices=AuditEntry.Action.choices,
        label="Action",
        widget=forms.SelectMultiple(attrs={"size": 4}),
    )
    who = django_filters.CharFilter(
        field_name="actor_name", lookup_expr="icontains", label="Who", max_length=150
    )
    q = django_filters.CharFilter(
        field_name="summary", lookup_expr="icontains", label="Contains", max_length=200
    )
    date_from = django_filters.DateFilter(
        method="filter_date_from", label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = django_filters.DateFilter(
        method="filter_date_to", label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, data=None, queryset=None, *, company=None, **kwargs):
        # Scoped here, whatever queryset the view passes: one company's entries only.
        queryset = (
            AuditEntry.objects.filter(company=company) if company else AuditEntry.objects.none()
        )
        super().__init__(data, queryset=queryset, **kwargs)

    def filter_date_from(self, queryset, name, value):
        return queryset.filter(created_at__gte=start_of_day(value)) if value else queryset

    def filter_date_to(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(created_at__lt=end_of_day(value))


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return neutralize("" if value is None else str(value))


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for entry in entries:
        yield writer.writerow(
            [
                safe_cell(entry.created_at.strftime("%Y-%m-%d %H:%M:%S")),
                safe_cell(entry.actor_name or "system"),
                safe_cell(entry.get_action_display()),
                safe_cell(entry.summary),
                safe_cell(json.dumps(entry.details, sort_keys=True) if entry.details else ""),
            ]
        )
