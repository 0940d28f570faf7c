"""Roles and what each may do: the one permission helper for views and templates."""

from __future__ import annotations

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    SUPPORT = "support", "Support"
    ACCOUNTANT = "accountant", "Accountant"
    VIEWER = "viewer", "Viewer"


class Perm(StrEnum):
    VIEW_LOGS = "view_logs"
    VIEW_CONTENT = "view_content"  # subject, text, HTML and raw provider payloads
    EXPORT = "export"
    SEND = "send"  # compose and resend
    MANAGE_BATCHES = "manage_batches"  # create, stop, restart
    MANAGE_COMPANY = "manage_company"  # settings, members, erasure, audit log
    VIEW_CREDITS = "view_credits"  # SMS credit balance, ledger and credits used per period


ROLE_PERMS: dict[str, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.SUPPORT: frozenset({Perm.VIEW_LOGS, Perm.VIEW_CONTENT, Perm.SEND}),
    Role.ACCOUNTANT: frozenset({Perm.VIEW_LOGS, Perm.EXPORT, Perm.VIEW_CREDITS}),
    Role.VIEWER: frozenset({Perm.VIEW_LOGS}),
}

WHY_NOT: dict[Perm, str] = {
    Perm.VIEW_CONTENT: "Your role does not include reading message content.",
    Perm.EXPORT: "Your role does not include exporting.",
    Perm.SEND: "Your role does not include sending messages.",
    Perm.MANAGE_BATCHES: "Only company admins can create, stop or restart batches.",
    Perm.MANAGE_COMPANY: "Only company admins can change company settings.",
    Perm.VIEW_LOGS: "You are not a member of this company.",
    Perm.VIEW_CREDITS: "Only admins and accountants can see the SMS credits.",
}


def perms_for(user, role: str | None) -> frozenset[Perm]:
    """What a user may do in the company they are looking at.

    Superusers are platform operators: everything, in every company.
    """
    if user is not None and user.is_authenticated and user.is_superuser:
        return frozenset(Perm)
    if role is None:
        return frozenset()
    return ROLE_PERMS.get(role, frozenset())


def can(request, perm: Perm | str) -> bool:
    """Whether the request's user may do `perm` in the request's current company."""
    return Perm(perm) in getattr(request, "perms", frozenset())
