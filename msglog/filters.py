"""The Logs page's filters. Every choice list is limited to the current company."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from templates_app.models import MessageTemplate

from .kinds import Category, Channel, MessageType
from .statuses import Status, display_words, matching_statuses


class MessageFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_search",
        label="Search",
        widget=forms.TextInput(
            attrs={"placeholder": "Name, email, phone or subject", "type": "search"}
        ),
    )
    channel = django_filters.ChoiceFilter(choices=Channel.choices, empty_label="Any channel")
    status = django_filters.MultipleChoiceFilter(
        choices=[(s.value, display_words(s)) for s in Status],
        method="filter_status",
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )
    category = django_filters.ChoiceFilter(choices=Category.choices, empty_label="Any category")
    message_type = django_filters.ChoiceFilter(
        choices=MessageType.choices, label="Type", empty_label="Any type"
    )
    template = django_filters.ModelChoiceFilter(
        queryset=MessageTemplate.objects.none(), empty_label="Any template"
    )
    date_from = django_filters.DateFilter(
        field_name="created_at",
        lookup_expr="date__gte",
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = django_filters.DateFilter(
        field_name="created_at",
        lookup_expr="date__lte",
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args, company=None, **kwargs):
        super().__init__(*args, **kwargs)
        templates = MessageTemplate.objects.all()
        if company is not None:
            templates = templates.filter(company=company)
        self.filters["template"].queryset = templates.only("id", "name")

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        words = matching_statuses(value)
        match = (
            Q(to_name__icontains=value)
            | Q(to_address__icontains=value)
            | Q(subject__icontains=value)
        )
        if words:
            match |= Q(status__in=words)
        return queryset.filter(match)

    def filter_status(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        if not value:
            return queryset
        return queryset.filter(status__in=value)
