"""Failed: failures by reason, by provider and by day, so an outage stands out."""

from __future__ import annotations

from django.views.generic import TemplateView

from companies.tenancy import CompanyRequest, for_company
from companies.views.base import CompanyViewMixin
from msglog.models import Message
from msglog.queries.failures import FailedFilterForm, failure_report, utc_today


class FailedView(CompanyViewMixin, TemplateView):
    """Failures of a period for the current company (every company for operators)."""

    request: CompanyRequest
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
