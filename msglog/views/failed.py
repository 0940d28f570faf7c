"""Failed: failures by reason, by provider and by day, so an outage stands out (SPEC §4)."""

from __future__ import annotations

from datetime import UTC, date, timedelta

from django import forms
from django.utils import timezone
from django.views.generic import TemplateView

from companies.tenancy import for_company

from ..failures import Window, failure_report
from ..kinds import Channel
from ..models import Message
from .base import CompanyViewMixin

PERIODS = [("today", "Today"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("custom", "Custom")]
DEFAULT_PERIOD = "7d"
PRESET_DAYS = {"today": 1, "7d": 7, "30d": 30}
# One row per day: beyond a year the table stops being readable and the query stops being cheap.
MAX_DAYS = 366


def utc_today() -> date:
    return timezone.now().astimezone(UTC).date()


class FailedFilterForm(forms.Form):
    period = forms.ChoiceField(choices=PERIODS, required=False, label="Period")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    channel = forms.ChoiceField(
        choices=[("", "Any channel"), *Channel.choices], required=False, label="Channel"
    )

    def __init__(self, *args, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def clean(self):
        data = super().clean()
        period = data.get("period") or (
            "custom" if data.get("date_from") or data.get("date_to") else DEFAULT_PERIOD
        )
        data["period"] = period
        if period != "custom":
            return data
        date_to = data.get("date_to") or self.today
        date_from = data.get("date_from") or date_to - timedelta(days=PRESET_DAYS["7d"] - 1)
        if date_from > date_to:
            raise forms.ValidationError("The start date is after the end date.")
        if (date_to - date_from).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        data["date_from"], data["date_to"] = date_from, date_to
        return data

    def window(self) -> Window:
        """The days and channel asked for; the default week when the input is not valid."""
        data = self.cleaned_data if self.is_valid() else {"period": DEFAULT_PERIOD}
        period = data["period"]
        channel = data.get("channel", "")
        if period == "custom":
            return Window(data["date_from"], data["date_to"], channel, period)
        days = PRESET_DAYS[period]
        return Window(self.today - timedelta(days=days - 1), self.today, channel, period)


class FailedView(CompanyViewMixin, TemplateView):
    """Failures of a period for the current company (every company for operators)."""

    template_name = "msglog/failed.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = FailedFilterForm(self.request.GET or None, today=utc_today())
        window = form.window()
        if not form.is_bound or (form.is_valid() and window.period != "custom"):
            # Show the dates a preset stands for, so switching to "Custom" starts from them.
            initial = {
                "period": window.period,
                "date_from": window.date_from,
                "date_to": window.date_to,
                "channel": window.channel,
            }
            form = FailedFilterForm(initial=initial, today=form.today)
        messages = for_company(Message.objects.all(), self.request)
        context.update(
            form=form,
            window=window,
            report=failure_report(messages, window, by_company=self.request.all_companies),
        )
        return context
