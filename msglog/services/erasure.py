"""Erasure (GDPR): everything logged for one recipient address or contact goes.

Deleted: the messages to the address or contact (subject, bodies, metadata), their
status events with the providers' raw payloads, every row linked to them, the
simulator's copy, the address in suppressions (unless the admin keeps it on the
do-not-send list), in contacts and in ledger notes, and export files that mention it.
Left: one audit entry saying an erasure happened and how many rows went — never the
address — and the daily rollups, which hold counts only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from companies import audit
from companies.models import Company, Contact, CreditLedgerEntry
from msglog.models import Message, SimulatedSend, Suppression
from msglog.rules.addresses import normalize_email, normalize_phone
from msglog.rules.kinds import Channel
from msglog.services import purging

CHUNK = 2000


class ErasureError(ValueError):
    """A refused erasure, worded for the person who asked."""


@dataclass
class Target:
    """What to erase in one company: addresses (as stored) and/or one contact."""

    company: Company
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    contact: Contact | None = None

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(self.emails | self.phones)

    def messages(self) -> QuerySet[Message]:
        wanted = Q(pk__in=[])
        if self.emails:
            wanted |= Q(channel=Channel.EMAIL, to_address__in=self.email_forms())
        if self.phones:
            wanted |= Q(channel=Channel.SMS, to_address__in=self.phones)
        if self.contact is not None:
            wanted |= Q(contact_id=self.contact.pk)
        return Message._base_manager.filter(company_id=self.company.pk).filter(wanted)

    def email_forms(self) -> set[str]:
        # Addresses are stored as given or lowercased; both forms, so the index serves it.
        return self.emails | {e.lower() for e in self.emails}


def email_variants(address: str) -> set[str]:
    """The forms an address may be stored in: as typed, as sending normalizes it (domain
    lowercased) and all lowercase; exact forms keep the (company, address) index usable."""
    normalized = normalize_email(address) or address
    return {address, normalized, address.lower()}


def target_for_address(company: Company, address: str) -> Target:
    """The target for one typed address: an email, or a phone in the company's region."""
    address = (address or "").strip()
    if not address:
        raise ErasureError("Enter the email address or phone number to erase.")
    if "@" in address:
        email = normalize_email(address)
        if email is None:
            raise ErasureError("This is not a valid email address.")
        return Target(company, emails=email_variants(address))
    phone = normalize_phone(address, company.default_region)
    if phone is None:
        raise ErasureError(
            "This is not a valid phone number: write it with its country code, +14155550123."
        )
    return Target(company, phones={phone})


def target_for_contact(contact: Contact) -> Target:
    company = Company.objects.get(pk=contact.company_id)
    target = Target(company, contact=contact)
    if contact.email:
        target.emails |= email_variants(contact.email)
    if contact.phone:
        phone = normalize_phone(contact.phone, company.default_region)
        target.phones |= {contact.phone} | ({phone} if phone else set())
    return target


def preview(target: Target) -> dict[str, int]:
    """How much an erasure would delete, for the confirmation step."""
    return {
        "messages": target.messages().count(),
        "suppressions": suppressions(target).count(),
        "contacts": contacts(target).count(),
    }


def suppressions(target: Target) -> QuerySet[Suppression]:
    wanted = Q(pk__in=[])
    if target.emails:
        wanted |= Q(channel=Channel.EMAIL, address__in=target.email_forms())
    if target.phones:
        wanted |= Q(channel=Channel.SMS, address__in=target.phones)
    return Suppression._base_manager.filter(company_id=target.company.pk).filter(wanted)


def contacts(target: Target) -> QuerySet[Contact]:
    wanted = Q(pk__in=[])
    for email in target.email_forms():
        wanted |= Q(email__iexact=email)
    if target.phones:
        wanted |= Q(phone__in=target.phones)
    if target.contact is not None:
        wanted |= Q(pk=target.contact.pk)
    return Contact._base_manager.filter(company_id=target.company.pk).filter(wanted)


def erase(
    target: Target,
    *,
    keep_suppression: bool = False,
    request: HttpRequest | None = None,
    actor: AbstractBaseUser | None = None,
    how: str = "",
) -> Counter:
    """Erase the target's data in its company and audit that it happened (without it)."""
    company_id = target.company.pk
    counts: Counter = Counter()
    # Messages in chunks, each in its own transaction: an erasure of a busy address
    # never holds long locks; a re-run finishes an interrupted one.
    while ids := list(target.messages().order_by().values_list("id", flat=True)[:CHUNK]):
        counts.update(purging.delete_messages(company_id, ids))
    with transaction.atomic():
        counts["simulator copies"] += SimulatedSend.objects.filter(
            company_id=company_id, to_address__in=target.email_forms() | target.phones
        ).delete()[0]
        if not keep_suppression:
            counts[Suppression._meta.label] += suppressions(target).delete()[0]
        else:
            # The do-not-send entry stays; the note a provider wrote about it may name them.
            suppressions(target).update(note="", message=None)
        counts.update(_erase_from_contacts(target))
        counts["ledger notes"] += _scrub_ledger_notes(target)
        for label, hook in purging.ERASURE_HOOKS.items():
            counts[label] += hook(company_id, target.addresses)
        totals = {k: v for k, v in counts.items() if v}
        audit.record(
            audit.Action.ERASURE,
            "Erased everything logged for one "
            + ("contact" if target.contact is not None else "recipient")
            + f" ({counts.get(Message._meta.label, 0)} messages)"
            + (f" {how}" if how else ""),
            request=request,
            company=company_id,
            actor=actor,
            details={"deleted": totals, "kept_on_do_not_send_list": keep_suppression},
        )
    return counts


def _erase_from_contacts(target: Target) -> Counter:
    counts: Counter = Counter()
    for contact in contacts(target):
        email_erased = contact.email and contact.email.lower() in target.email_forms()
        phone_erased = contact.phone and contact.phone in target.phones
        if target.contact is not None and contact.pk == target.contact.pk:
            contact.delete()
            counts[Contact._meta.label] += 1
            continue
        if email_erased:
            contact.email = ""
        if phone_erased:
            contact.phone = ""
        contact.save(update_fields=["email", "phone"])
        counts["contact fields"] += 1
    return counts


def _scrub_ledger_notes(target: Target) -> int:
    """Charges' notes say whom a message went to; the amounts stay (the ledger must sum)."""
    mentions = Q(pk__in=[])
    for address in target.addresses:
        mentions |= Q(note__icontains=address)
    return (
        CreditLedgerEntry._base_manager.filter(company_id=target.company.pk)
        .filter(mentions)
        .update(note="Erased recipient")
    )
