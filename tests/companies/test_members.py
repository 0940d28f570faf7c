"""An admin invites people, changes their roles and removes them; one admin always stays."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django_scopes import scopes_disabled

from companies import members
from companies.models import AuditEntry, Membership
from companies.roles import Role
from tests.factories import MembershipFactory, UserFactory
from tests.threads import in_threads


def membership(persona):
    with scopes_disabled():
        return Membership.objects.get(user=persona.user, company=persona.company)


def member_changes(company) -> list[str]:
    with scopes_disabled():
        return list(
            AuditEntry.objects.filter(company=company, action="member_changed")
            .order_by("id")
            .values_list("summary", flat=True)
        )


@pytest.mark.django_db
def test_an_invited_newcomer_sets_a_password_and_signs_in(
    acme, admin, settings, django_capture_on_commit_callbacks
):
    settings.PUBLIC_BASE_URL = "https://log.example"
    client = admin.client()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/settings/members/", {"email": "New.Person@Example.org", "role": "support"}
        )
    assert response.status_code == 302
    (invitation,) = mail.outbox
    assert invitation.to == ["new.person@example.org"]
    link = re.search(r"https://log\.example(/invitation/\S+)", invitation.body).group(1)

    newcomer = Client()
    form_page = newcomer.get(link, follow=True)
    assert "Choose a password" in form_page.content.decode()
    newcomer.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a long fresh secret 42", "new_password2": "a long fresh secret 42"},
    )
    assert newcomer.login(username="new.person@example.org", password="a long fresh secret 42")
    assert newcomer.get("/logs/").status_code == 200
    assert member_changes(acme) == ["Invited new.person@example.org as Support"]


@pytest.mark.django_db
def test_inviting_an_existing_user_adds_them_and_twice_is_refused(acme, rival, admin, outsider):
    client = admin.client()
    client.post("/settings/members/", {"email": outsider.user.email, "role": "viewer"})
    with scopes_disabled():
        assert Membership.objects.get(user=outsider.user, company=acme).role == "viewer"
    response = client.post("/settings/members/", {"email": outsider.user.email, "role": "admin"})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()
    bad = client.post("/settings/members/", {"email": "not-an-email", "role": "admin"})
    assert bad.status_code == 400 and "Enter a valid email address" in bad.content.decode()
    bad = client.post("/settings/members/", {"email": "x@example.org", "role": "owner"})
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()


@pytest.mark.django_db
def test_an_admin_changes_a_role_and_removes_a_member(acme, admin, support):
    client = admin.client()
    target = membership(support)
    client.post(f"/settings/members/{target.pk}/role/", {"role": "accountant"})
    assert membership(support).role == "accountant"
    client.post(f"/settings/members/{target.pk}/remove/")
    with scopes_disabled():
        assert not Membership.objects.filter(pk=target.pk).exists()
    assert member_changes(acme) == [
        "Changed sam.support from Support to Accountant",
        "Removed sam.support (Accountant)",
    ]
    assert support.client().get("/logs/").status_code == 403


@pytest.mark.django_db
def test_the_last_admin_can_be_neither_demoted_nor_removed(acme, admin):
    client = admin.client()
    mine = membership(admin)
    client.post(f"/settings/members/{mine.pk}/role/", {"role": "viewer"})
    client.post(f"/settings/members/{mine.pk}/remove/")
    assert membership(admin).role == "admin"
    page = client.get("/settings/members/").content.decode()
    assert "at least one admin" in page
    assert member_changes(acme) == []


@pytest.mark.django_db
def test_only_admins_manage_members(acme, admin, support, accountant, viewer):
    target = membership(admin)
    for persona in (support, accountant, viewer):
        client = persona.client()
        assert client.get("/settings/members/").status_code == 403
        assert client.post(f"/settings/members/{target.pk}/remove/").status_code == 403
        assert (
            client.post("/settings/members/", {"email": "x@y.org", "role": "admin"}).status_code
            == 403
        )
    assert membership(admin).role == "admin"


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(acme):
    pair = []
    for name in ("ann.admin", "bob.admin"):
        user = UserFactory(username=name)
        pair.append(MembershipFactory(user=user, company=acme, role=Role.ADMIN))

    def demote(i: int):
        try:
            return members.change_role(pair[1 - i], Role.VIEWER, actor=pair[i].user).role
        except members.MemberError as error:
            return str(error)

    outcomes = in_threads(2, demote)
    assert sorted(outcomes) == sorted([Role.VIEWER, members.LAST_ADMIN])
    with scopes_disabled():
        assert Membership.objects.filter(company=acme, role=Role.ADMIN).count() == 1
