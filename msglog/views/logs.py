"""Message Service > Logs."""

from __future__ import annotations

from django_filters.views import FilterView
from django_tables2 import SingleTableMixin
from django_tables2.paginators import LazyPaginator

from companies.tenancy import for_company

from ..filters import MessageFilter
from ..models import Message
from ..tables import MessageTable
from .base import CompanyViewMixin


class LogsView(CompanyViewMixin, SingleTableMixin, FilterView):
    """Message Service > Logs: the company's messages, newest first."""

    model = Message
    table_class = MessageTable
    filterset_class = MessageFilter
    template_name = "msglog/logs.html"
    table_pagination = {"paginator_class": LazyPaginator, "per_page": 50}

    def get_queryset(self):
        return (
            for_company(Message.objects.all(), self.request)
            .select_related("template", "company")
            .defer("body_text", "body_html", "metadata")
        )

    def get_filterset_kwargs(self, filterset_class):
        kwargs = super().get_filterset_kwargs(filterset_class)
        kwargs["company"] = self.request.company
        return kwargs

    def get_table_kwargs(self):
        return {"show_company": self.request.all_companies}
