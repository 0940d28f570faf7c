"""A contact's page: who they are, red flags, and their comms history."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from companies.models import Contact
from companies.tenancy import for_company
from msglog.models import Message
from msglog.queries.suppressions import red_flags
from msglog.web.logs import LogsView


class ContactDetailView(LogsView):
    """The Logs page narrowed to one contact's messages, under the contact's card."""

    template_name = "companies/contact_detail.html"
    default_period = "all"  # a contact's history is all of it unless the user picks a period
    show_stats = False

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Resolved first, so another company's contact is a 404 before anything is counted.
        contacts = for_company(Contact.objects.all(), self.request)
        self.contact = get_object_or_404(contacts, pk=kwargs["contact_id"])
        return super().get(request, *args, **kwargs)

    def base_queryset(self) -> QuerySet:
        return for_company(Message.objects.all(), self.request).filter(contact=self.contact)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(contact=self.contact, red_flags=red_flags(self.contact))
        return context
