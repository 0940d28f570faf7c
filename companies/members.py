"""A company's members: invite by email, change a role, remove; always one admin left.

Every change locks the company row first, so two admins demoting each other at the same
moment cannot leave the company without an admin, and every change is audited.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_scopes import scopes_disabled

from companies import audit
from companies.models import Company, Membership
from companies.roles import Role


class MemberError(ValueError):
    """A refused change to the members, worded for the admin who asked for it."""


LAST_ADMIN = "A company needs at least one admin: make someone else admin first."


def _locked(company: Company) -> Company:
    return Company.objects.select_for_update().get(pk=company.pk)


def _admins(company: Company) -> int:
    return Membership.objects.filter(company_id=company.pk, role=Role.ADMIN).count()


def invite(company: Company, email: str, role: str, *, request=None, actor=None) -> Membership:
    """Add the person with this email to the company, creating their account if needed.

    A new account gets no password: the invitation email links to a page where they set
    one (Django's password-reset token, valid for PASSWORD_RESET_TIMEOUT).
    """
    email = email.strip().lower()
    if role not in Role.values:
        raise MemberError("Choose one of the roles.")
    User = get_user_model()
    with transaction.atomic(), scopes_disabled():
        locked = _locked(company)
        user = (
            User.objects.filter(email__iexact=email).order_by("id").first()
            or User.objects.filter(username__iexact=email[:150]).first()
        )
        created = user is None
        if user is None:
            user = User(username=email[:150], email=email)
            user.set_unusable_password()
            user.save()
        elif Membership.objects.filter(company=locked, user=user).exists():
            raise MemberError(f"{email} is already a member of {locked.name}.")
        membership = Membership.objects.create(company=locked, user=user, role=role)
        audit.record(
            audit.Action.MEMBER_CHANGED,
            f"Invited {email} as {Role(role).label}",
            request=request,
            company=locked,
            actor=actor,
            details={"member": email, "change": "invited", "role": role},
        )
        transaction.on_commit(lambda: _send_invitation(locked, user, created))
    return membership


def _send_invitation(company: Company, user, new_account: bool) -> None:
    base = settings.PUBLIC_BASE_URL
    if new_account:
        link = base + reverse(
            "invitation",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        body = (
            f"You have been invited to {company.name} on Message Log.\n\n"
            f"Choose your password here: {link}\nYour username is {user.get_username()}."
        )
    else:
        body = f"You are now a member of {company.name} on Message Log: {base}/logs/"
    send_mail(f"Invitation to {company.name}", body, None, [user.email])


def change_role(membership: Membership, role: str, *, request=None, actor=None) -> Membership:
    if role not in Role.values:
        raise MemberError("Choose one of the roles.")
    with transaction.atomic(), scopes_disabled():
        _locked(membership.company)
        current = Membership.objects.select_related("user").get(pk=membership.pk)
        if current.role == role:
            return current
        if current.role == Role.ADMIN and _admins(current.company) <= 1:
            raise MemberError(LAST_ADMIN)
        before = current.role
        Membership.objects.filter(pk=current.pk).update(role=role)
        current.role = role
        audit.record(
            audit.Action.MEMBER_CHANGED,
            f"Changed {current.user.get_username()} from {Role(before).label} to "
            f"{Role(role).label}",
            request=request,
            company=current.company_id,
            actor=actor,
            details={
                "member": current.user.get_username(),
                "change": "role",
                "from": before,
                "to": role,
            },
        )
    return current


def remove(membership: Membership, *, request=None, actor=None) -> None:
    with transaction.atomic(), scopes_disabled():
        _locked(membership.company)
        current = Membership.objects.select_related("user").get(pk=membership.pk)
        if current.role == Role.ADMIN and _admins(current.company) <= 1:
            raise MemberError(LAST_ADMIN)
        Membership.objects.filter(pk=current.pk).delete()
        audit.record(
            audit.Action.MEMBER_CHANGED,
            f"Removed {current.user.get_username()} ({Role(current.role).label})",
            request=request,
            company=current.company_id,
            actor=actor,
            details={
                "member": current.user.get_username(),
                "change": "removed",
                "role": current.role,
            },
        )
