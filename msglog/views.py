"""Views of the message log: thin, company-filtered, role-checked."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import DetailView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin
from django_tables2.paginators import LazyPaginator

from companies.roles import WHY_NOT, Perm, can
from companies.tenancy import for_company

from .filters import MessageFilter
from .models import Message
from .statuses import MEANING, display_words
from .tables import MessageTable


class CompanyViewMixin(LoginRequiredMixin):
    """Signed in, a member of the current company, holding `required_perm`."""

    required_perm: Perm = Perm.VIEW_LOGS

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated and not can(request, self.required_perm):
            raise PermissionDenied(WHY_NOT[self.required_perm])
        return super().dispatch(request, *args, **kwargs)


def home(request: HttpRequest) -> HttpResponse:
    return redirect("logs" if request.user.is_authenticated else "login")


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


class MessageDetailView(CompanyViewMixin, DetailView):
    """One message: where it stands, its timeline, and (for roles that may) its content."""

    template_name = "msglog/message_detail.html"
    context_object_name = "message"

    def get_object(self, queryset=None) -> Message:
        messages = for_company(Message.objects.all(), self.request).select_related(
            "company", "template", "template_version", "batch", "contact"
        )
        return get_object_or_404(messages, public_id=self.kwargs["public_id"])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        message: Message = self.object
        context.update(
            events=message.events.order_by("occurred_at", "id"),
            status_words=display_words(message.status),
            status_meaning=MEANING[message.status],
            may_read_content=can(self.request, Perm.VIEW_CONTENT),
            why_no_content=WHY_NOT[Perm.VIEW_CONTENT],
        )
        return context
