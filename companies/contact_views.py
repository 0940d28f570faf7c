"""A contact's page: who they are, red flags, and their comms history (SPEC §4 "Contact")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from msglog.kinds import Channel
from msglog.models import Message, Suppression
from msglog.views.logs import LogsView

from .models import Contact
from .tenancy import for_company

BOUNCE_REASONS = frozenset(
    {Suppression.Reason.HARD_BOUNCE, Suppression.Reason.REPEATED_SOFT_BOUNCE}
)


@dataclass(frozen=True)
class RedFlag:
    """A reason messages to this contact will not arrive on one channel."""

    channel: str
    title: str
    detail: str = ""
    since: datetime | None = None
    note: str = ""


def red_flags(contact: Contact) -> list[RedFlag]:
    """A bounced email and an SMS opt-out, from the contact and the suppression list."""
    wanted = Q(pk__in=[])
    if contact.email:
        # Addresses are stored as given or lowercased; an exact match keeps the index usable.
        wanted |= Q(channel=Channel.EMAIL, address__in={contact.email, contact.email.lower()})
    if contact.phone:
        wanted |= Q(channel=Channel.SMS, address=contact.phone)
    suppressions = {
        s.channel: s
        for s in Suppression.objects.filter(company_id=contact.company_id).filter(wanted)
    }
    flags = []
    email = suppressions.get(Channel.EMAIL)
    if contact.email_bounced or email:
        bounced = contact.email_bounced or email.reason in BOUNCE_REASONS
        flags.append(
            RedFlag(
                channel=Channel.EMAIL,
                title="Email bounced" if bounced else "Email suppressed",
                detail=email.get_reason_display() if email else "Marked bounced on the contact",
                since=email.created_at if email else None,
                note=email.note if email else "",
            )
        )
    sms = suppressions.get(Channel.SMS)
    if contact.sms_opted_out or sms:
        opted_out = contact.sms_opted_out or sms.reason == Suppression.Reason.SMS_STOP
        flags.append(
            RedFlag(
                channel=Channel.SMS,
                title="SMS opted out" if opted_out else "SMS suppressed",
                detail=sms.get_reason_display() if sms else "Marked opted out on the contact",
                since=sms.created_at if sms else None,
                note=sms.note if sms else "",
            )
        )
    return flags


class ContactDetailView(LogsView):
    """The Logs page narrowed to one contact's messages, under the contact's card."""

    template_name = "companies/contact_detail.html"
    default_period = "all"  # a contact's history is all of it unless the user picks a period
    show_stats = False

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Resolved first, so another company's contact is a 404 before anything is counted.
        contacts = for_company(Contact.objects.all(), request)
        self.contact = get_object_or_404(contacts, pk=kwargs["contact_id"])
        return super().get(request, *args, **kwargs)

    def base_queryset(self) -> QuerySet:
        return for_company(Message.objects.all(), self.request).filter(contact=self.contact)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(contact=self.contact, red_flags=red_flags(self.contact))
        return context
