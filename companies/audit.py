"""The audit log: the one function that records what a person did.

Callers pass the request (actor and company come from it) or both explicitly. The
details are small JSON facts — the filter of an export, the fields a setting changed
from and to — never message content or an erased address.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django_scopes import scopes_disabled

from companies.models import AuditEntry, Company, Membership

Action = AuditEntry.Action


def record(
    action: str,
    summary: str,
    *,
    request: HttpRequest | None = None,
    company: Company | int | None = None,
    actor=None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. `company`/`actor` default to the request's."""
    if request is not None:
        if company is None:
            company = getattr(request, "company", None)
        if actor is None and request.user.is_authenticated:
            actor = request.user
    company_id = company.pk if isinstance(company, Company) else company
    # Writing never leaks; the entry may belong to no company (an operator's action).
    with scopes_disabled():
        return AuditEntry.objects.create(
            company_id=company_id,
            actor=actor,
            actor_name=actor.get_username() if actor is not None else "",
            action=action,
            summary=summary[:300],
            details=details or {},
        )


def record_login(sender, request: HttpRequest | None, user, **kwargs) -> None:
    """A sign-in, in the audit log of every company the person belongs to."""

    with scopes_disabled():
        company_ids: list[int | None] = list(
            Membership.objects.filter(user=user).values_list("company_id", flat=True)
        )
    for company_id in company_ids or [None]:
        record(Action.LOGIN, "Signed in", company=company_id, actor=user)
