"""One message: the panel and its own page."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.views.generic import DetailView

from companies.roles import WHY_NOT, Perm, can
from companies.tenancy import for_company

from ..models import Message
from ..statuses import MEANING, display_words
from .base import CompanyViewMixin


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
