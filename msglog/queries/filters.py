"""The Logs page's filters. Every choice list is limited to the current company.

Bad input never raises: an invalid value becomes a form error and an empty result.
"""

from __future__ import annotations

import copy
from datetime import date

import django_filters
from django import forms
from django.core.validators import MinValueValidator
from django.db.models import Q, QuerySet
from django.forms.models import ModelChoiceIterator
from django.http import QueryDict
from django.utils import timezone

from companies.models import Company
from msglog.models import Batch
from msglog.queries.search import search_messages
from msglog.queries.widgets import (
    FastDateInput,
    FastHiddenInput,
    FastSelect,
    FastSelectMultiple,
    FastTextInput,
)
from msglog.rules.days import end_of_day, period_range, start_of_day
from msglog.rules.kinds import Category, Channel, MessageType, Provider
from msglog.rules.statuses import FAILED_GROUP, Status, display_words, matching_statuses
from templates_app.models import MessageTemplate

# The tabs above the table, each a fixed filter.
TABS: dict[str, tuple[str, Q]] = {
    "all": ("All", Q()),
    "email": ("Emails", Q(channel=Channel.EMAIL)),
    "sms": ("SMS", Q(channel=Channel.SMS)),
    "confirmations": ("Confirmations", Q(message_type=MessageType.CONFIRMATION)),
    "reminders": ("Reminders", Q(message_type=MessageType.REMINDER)),
    "failed": ("Failed", Q(status__in=FAILED_GROUP)),
}

PERIODS = [
    ("today", "Today"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("all", "All time"),
    ("custom", "Custom"),
]
DEFAULT_PERIOD = "30d"


class PlainModelChoiceIterator(ModelChoiceIterator):
    """Choices read with one ordinary query.

    Django reads choices with .iterator(), which on PostgreSQL opens a server-side
    cursor: three round trips per select on every Logs page view.
    """

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


class PlainModelChoiceField(forms.ModelChoiceField):
    iterator = PlainModelChoiceIterator


class ModelChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = PlainModelChoiceField


class FilterCopies(dict):
    """A FilterSet's declared filters, copied per instance without a deep copy.

    django-filter deep-copies every filter (widgets, choices, querysets) for each
    FilterSet; a shallow copy with its own `extra` dict and its own bound `method` is
    enough, because filters only set attributes and `extra` keys (a ModelChoiceFilter
    sets its queryset there), and costs a tenth of the time on every Logs page view.
    """

    def __deepcopy__(self, memo) -> dict:
        copies = {}
        for name, original in self.items():
            filter_ = copy.copy(original)
            filter_.extra = dict(original.extra)
            filter_.__dict__.pop("_field", None)  # each copy builds a form field of its own
            if original.method is not None:
                filter_.method = original.method  # binds a FilterMethod to the copy
            copies[name] = filter_
        return copies


class MessageFilter(django_filters.FilterSet):
    tab = django_filters.ChoiceFilter(
        choices=[(key, label) for key, (label, _) in TABS.items()],
        method="filter_tab",
        empty_label=None,
        label="Tab",
        widget=FastHiddenInput,
    )
    q = django_filters.CharFilter(
        method="filter_search",
        label="Search",
        max_length=200,
        widget=FastTextInput(
            attrs={"placeholder": "Name, email, phone or subject", "type": "search"}
        ),
    )
    period = django_filters.ChoiceFilter(
        choices=PERIODS,
        method="filter_period",
        label="Date",
        empty_label=None,
        widget=FastSelect,
    )
    date_from = django_filters.DateFilter(
        method="filter_date_from", label="From", widget=FastDateInput(attrs={"type": "date"})
    )
    date_to = django_filters.DateFilter(
        method="filter_date_to", label="To", widget=FastDateInput(attrs={"type": "date"})
    )
    channel = django_filters.ChoiceFilter(
        choices=Channel.choices, label="Channel", empty_label="Any channel", widget=FastSelect
    )
    status = django_filters.MultipleChoiceFilter(
        choices=[(s.value, display_words(s)) for s in Status],
        label="Status",
        widget=FastSelectMultiple(attrs={"size": 4}),
    )
    category = django_filters.ChoiceFilter(
        choices=Category.choices, label="Category", empty_label="Any category", widget=FastSelect
    )
    message_type = django_filters.ChoiceFilter(
        choices=MessageType.choices, label="Type", empty_label="Any type", widget=FastSelect
    )
    template = ModelChoiceFilter(
        queryset=MessageTemplate.objects.none(),
        label="Template",
        empty_label="Any template",
        widget=FastSelect,
    )
    provider = django_filters.ChoiceFilter(
        choices=Provider.choices, label="Provider", empty_label="Any provider", widget=FastSelect
    )
    batch = ModelChoiceFilter(
        queryset=Batch.objects.none(), label="Batch", empty_label="Any batch", widget=FastSelect
    )
    has_errors = django_filters.BooleanFilter(
        method="filter_has_errors",
        label="Errors",
        widget=FastSelect(
            choices=[("", "With or without"), ("true", "Has errors"), ("false", "No errors")]
        ),
    )
    error_code = django_filters.CharFilter(max_length=40, label="Error code", widget=FastTextInput)
    company = ModelChoiceFilter(
        queryset=Company.objects.none(),
        label="Company",
        empty_label="All companies",
        widget=FastSelect,
    )

    # Filters the daily rollups can answer; any other one makes the cards count the log.
    ROLLUP_FILTERS = frozenset(
        {
            "tab",
            "period",
            "date_from",
            "date_to",
            "channel",
            "status",
            "category",
            "message_type",
            "company",
        }
    )

    def __init__(
        self,
        data=None,
        *args,
        company=None,
        all_companies: bool = False,
        today: date | None = None,
        default_period: str = DEFAULT_PERIOD,
        earliest_day: date | None = None,
        earliest_reason: str = "",
        **kwargs,
    ):
        # Always bound, with the defaults filled in: an empty query string is a valid view.
        data = data.copy() if data is not None else QueryDict(mutable=True)
        data.setdefault("tab", "all")
        if data.get("date_from") or data.get("date_to"):
            data.setdefault("period", "custom")
        data.setdefault("period", default_period)
        self.default_period = default_period
        super().__init__(data, *args, **kwargs)
        self.today = today or timezone.now().date()
        if earliest_day is not None:
            self.limit_to_retention(earliest_day, earliest_reason)
        templates = MessageTemplate.objects.all()
        batches = Batch.objects.all()
        if company is not None:
            templates = templates.filter(company=company)
            batches = batches.filter(company=company)
        self.filters["template"].queryset = templates.only("id", "name")
        self.filters["batch"].queryset = batches.only("id", "name")
        if all_companies:
            self.filters["company"].queryset = Company.objects.all()
        else:
            del self.filters["company"]

    def limit_to_retention(self, earliest: date, reason: str) -> None:
        """Dates before the company's retention period are refused, with the reason."""
        for name in ("date_from", "date_to"):
            self.filters[name].extra["validators"] = [
                MinValueValidator(earliest, message=reason or "Older messages are deleted.")
            ]
            self.filters[name].extra["widget"] = FastDateInput(
                attrs={"type": "date", "min": earliest.isoformat()}
            )

    @classmethod
    def get_filters(cls):
        # For this class and its subclasses (a batch's filters): django-filter's metaclass
        # builds each class's filters anew.
        return FilterCopies(super().get_filters())

    def get_form_class(self):
        form_class = super().get_form_class()
        # The class and its fields were made for this FilterSet alone (one form each).
        form_class.base_fields = FieldsUsedOnce(form_class.base_fields)
        return form_class

    @property
    def current_tab(self) -> str:
        value = self.form.cleaned_data.get("tab") if self.is_valid() else None
        return value or "all"

    def date_bounds(self) -> tuple[date | None, date | None]:
        """The first and last day the filters select (None: unbounded)."""
        if not self.is_valid():
            return period_range(self.default_period, self.today)
        data = self.form.cleaned_data
        if data.get("period") == "custom":
            return data.get("date_from"), data.get("date_to")
        return period_range(data.get("period") or self.default_period, self.today)

    def active_filters(self) -> set[str]:
        if not self.is_valid():
            return set()
        return {
            name
            for name, value in self.form.cleaned_data.items()
            if value not in (None, "", [], ()) and not (name == "tab" and value == "all")
        }

    def rollups_can_answer(self) -> bool:
        return self.active_filters() <= self.ROLLUP_FILTERS

    def filter_tab(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(TABS[value][1]) if value in TABS else queryset

    def filter_period(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        start, end = period_range(value, self.today)
        return self.filter_date_to(self.filter_date_from(queryset, name, start), name, end)

    # Whole UTC days as a created_at range, so the (company, created_at) index serves it.
    def filter_date_from(self, queryset: QuerySet, name: str, value: date | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(created_at__gte=start_of_day(value))

    def filter_date_to(self, queryset: QuerySet, name: str, value: date | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(created_at__lt=end_of_day(value))

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        words = matching_statuses(value)
        if words:  # "Dropped", "InvalidPhoneNumber": a status in another product's words
            matching = search_messages(queryset, value).values("pk")
            return queryset.filter(Q(status__in=words) | Q(pk__in=matching))
        return search_messages(queryset, value)

    def filter_has_errors(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        errors = ~Q(error_code="") | ~Q(error_message="")
        return queryset.filter(errors if value else ~errors)


class FieldsUsedOnce(dict):
    """Form fields that the one form made from them may use without copying.

    Django deep-copies a form class's fields (choices and widgets included) for every
    form; a FilterSet builds fresh fields and a form class of its own each time, so the
    copy is pure cost on every Logs page view.
    """

    def __deepcopy__(self, memo) -> dict:
        return dict(self)
