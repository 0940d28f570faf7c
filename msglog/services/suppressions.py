"""The suppression list: addresses a company must not send to, and the contact flags
that go with them.

What adds an entry, as reports arrive (msglog/services/inbound_reports.py):

======================================  ==========================  =======================
report                                  suppression reason          contact flag
======================================  ==========================  =======================
hard bounce (email)                     hard_bounce                 email_bounced
spam complaint                          complaint                   email_bounced,
                                                                    marketing_opt_out
unsubscribe                             unsubscribe                 email_bounced,
                                                                    marketing_opt_out
SOFT_BOUNCE_LIMIT soft bounces of one   repeated_soft_bounce        email_bounced
address, on different messages, within
SOFT_BOUNCE_WINDOW
SMS STOP keyword, or Twilio error 21610 sms_stop                    sms_opted_out
======================================  ==========================  =======================

An SMS START keyword lifts an sms_stop entry (and only that kind) and the contact's flag.
Every function here is safe to run twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

from companies.models import Contact
from msglog.models import Message, StatusEvent, Suppression
from msglog.rules.kinds import Channel

#: Soft bounces (deferrals, temporary failures) of one address on this many different
#: messages within SOFT_BOUNCE_WINDOW make the address suppressed. One message deferred
#: several times (greylisting, a full mailbox for an hour) counts once.
SOFT_BOUNCE_LIMIT = settings.SOFT_BOUNCE_LIMIT
SOFT_BOUNCE_WINDOW = timedelta(days=settings.SOFT_BOUNCE_WINDOW_DAYS)
#: The event word every soft bounce is recorded under, whatever the provider called it.
SOFT_BOUNCE_EVENT = "soft_bounce"

EMAIL_FLAGS: dict[str, dict[str, bool]] = {
    Suppression.Reason.HARD_BOUNCE: {"email_bounced": True},
    Suppression.Reason.REPEATED_SOFT_BOUNCE: {"email_bounced": True},
    Suppression.Reason.COMPLAINT: {"email_bounced": True, "marketing_opt_out": True},
    Suppression.Reason.UNSUBSCRIBE: {"email_bounced": True, "marketing_opt_out": True},
}


def _contacts(company_id: int, channel: str, address: str) -> QuerySet[Contact]:
    contacts = Contact.objects.filter(company_id=company_id)
    if channel == Channel.SMS:
        return contacts.filter(phone=address)
    return contacts.filter(email__iexact=address)


def add(
    company_id: int,
    channel: str,
    address: str,
    reason: str,
    *,
    message: Message | None = None,
    note: str = "",
) -> bool:
    """Put `address` on the company's suppression list and flag its contacts.

    Returns True when the entry is new (an existing entry keeps its first reason).
    """
    if not address:
        return False
    _, created = Suppression.objects.get_or_create(
        company_id=company_id,
        channel=channel,
        address=address,
        defaults={"reason": reason, "message": message, "note": note[:300]},
    )
    flags = {"sms_opted_out": True} if channel == Channel.SMS else EMAIL_FLAGS.get(reason, {})
    if flags:
        _contacts(company_id, channel, address).update(**flags)
    return created


def lift_sms_stop(company_id: int, address: str) -> bool:
    """The recipient texted START: lift their SMS STOP entry and the contact's flag."""
    deleted, _ = Suppression.objects.filter(
        company_id=company_id,
        channel=Channel.SMS,
        address=address,
        reason=Suppression.Reason.SMS_STOP,
    ).delete()
    _contacts(company_id, Channel.SMS, address).update(sms_opted_out=False)
    return bool(deleted)


def soft_bounced_too_often(company_id: int, address: str, now: datetime) -> bool:
    """Whether `address` soft-bounced on SOFT_BOUNCE_LIMIT messages within the window."""
    messages = (
        StatusEvent.objects.filter(
            company_id=company_id,
            event=SOFT_BOUNCE_EVENT,
            occurred_at__gte=now - SOFT_BOUNCE_WINDOW,
            message__in=Message.objects.filter(company_id=company_id, to_address=address).values(
                "pk"
            ),
        )
        .values("message_id")
        .distinct()
    )
    return messages.count() >= SOFT_BOUNCE_LIMIT
