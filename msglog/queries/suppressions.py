"""Reading the suppression list: what a send checks, why a message was suppressed, and a
contact's red flags (a bounced email, an SMS opt-out).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from companies.models import Company, Contact
from msglog.models import Message, Suppression
from msglog.rules.kinds import Channel

# Above this many addresses, a send reads the company's whole suppression list on the
# channel when the list is the shorter of the two: one read instead of many lookups.
WHOLE_LIST_ABOVE = 1000


def whole_suppression_list(company: Company, channel: str, addresses: int) -> dict | None:
    """The company's whole suppression list on `channel`, by address, if a send to this
    many `addresses` is big and the list is shorter than it; else None."""
    if addresses <= WHOLE_LIST_ABOVE:
        return None
    entries = Suppression.objects.filter(company=company, channel=channel)
    if entries.count() >= addresses:
        return None
    return {e.address: e for e in entries.iterator(2000)}


def suppressions_for(company: Company, channel: str, addresses: Iterable[str]) -> dict:
    """The suppression entries of these addresses, by address."""
    wanted = [a for a in set(addresses) if a]
    if not wanted:
        return {}
    whole = whole_suppression_list(company, channel, len(wanted))
    if whole is not None:
        wanted_set = set(wanted)
        return {address: e for address, e in whole.items() if address in wanted_set}
    return suppressions_looked_up(company, channel, wanted)


def suppressions_looked_up(company: Company, channel: str, wanted: list[str]) -> dict:
    """The suppression entries of these distinct addresses, looked up by address."""
    entries = Suppression.objects.filter(company=company, channel=channel)
    found: dict[str, Suppression] = {}
    for start in range(0, len(wanted), 5000):
        for entry in entries.filter(address__in=wanted[start : start + 5000]):
            found[entry.address] = entry
    return found


def suppression_reason(message: Message) -> str:
    """Why the address is on the suppression list, for a suppressed message."""
    entry = (
        Suppression.objects.filter(
            company_id=message.company_id,
            channel=message.channel,
            address__iexact=message.to_address,
        )
        .only("reason", "note")
        .first()
    )
    if entry is None:
        return ""
    return f"{entry.get_reason_display()}{f' ({entry.note})' if entry.note else ''}"


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
        bounced = contact.email_bounced or (email is not None and email.reason in BOUNCE_REASONS)
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
        opted_out = contact.sms_opted_out or (
            sms is not None and sms.reason == Suppression.Reason.SMS_STOP
        )
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
